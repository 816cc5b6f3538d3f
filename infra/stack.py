"""`RlTune-<env>`: everything one environment needs, composed from one construct per capability.

The stack is thin: it turns the typed `EnvironmentConfig` into construct arguments, keeps every construct
the workflow needs as an attribute, and publishes the outputs. It never reads context or environment
variables (app.py does, and passes `config` in).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, RemovalPolicy, Stack
from aws_cdk import aws_kms as kms
from constructs import Construct

from infra import nag
from infra.image import DOCKERFILE, REPO_ROOT, TrainingImage
from infra.notifications import Notifications
from infra.results import ResultsTable
from infra.sagemaker_role import SageMakerExecutionRole
from infra.storage import Storage
from infra.workflow import TuningWorkflow
from rltune.cloud import STATE_MACHINE_OUTPUT, TABLE_OUTPUT, stack_name
from rltune.environments import DeploymentTarget, EnvironmentConfig

PROJECT = "rltune"


class RlTuneStack(Stack):
    """One environment's stack. Attributes the workflow builds on:

    - `config`: the environment's `EnvironmentConfig` (guardrails, spot default, poll interval, log retention...)
    - `bucket`, `access_log_bucket`, `storage` (prefixes: `storage.checkpoint_prefix`, `storage.output_prefix`)
    - `table` (the results table; keys `experiment` / `tuning_job`)
    - `image_uri`, `image` (the `DockerImageAsset`)
    - `sagemaker_role` (the `iam.Role` to pass to SageMaker)
    - `encryption_key` (the environment's imported customer-managed key, or None)
    - `topic` (notifications; the environment's e-mail is subscribed)
    - `deployment_target()`: the `DeploymentTarget` for the start Lambda's environment variables
    - `add_output(name, value, description)`: an output exported as `RlTune-<env>-<name>`
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        image_directory: Path = REPO_ROOT,
        image_file: str = DOCKERFILE,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        self.removal_policy = RemovalPolicy.DESTROY if config.removal_policy == "destroy" else RemovalPolicy.RETAIN

        self.encryption_key: kms.IKey | None = (
            kms.Key.from_key_arn(self, "EnvironmentKey", config.kms_key_arn) if config.kms_key_arn else None
        )

        self.storage = Storage(
            self,
            "Storage",
            checkpoint_expiry_days=config.checkpoint_expiry_days,
            removal_policy=self.removal_policy,
            encryption_key=self.encryption_key,
        )
        self.bucket = self.storage.bucket
        self.access_log_bucket = self.storage.access_log_bucket

        self.results = ResultsTable(self, "Results", removal_policy=self.removal_policy,
                                    encryption_key=self.encryption_key)
        self.table = self.results.table

        self.image = TrainingImage(self, "TrainingImage", directory=image_directory, file=image_file)
        self.image_uri = self.image.image_uri

        self.sagemaker = SageMakerExecutionRole(
            self,
            "SageMaker",
            bucket=self.bucket,
            prefixes=(self.storage.checkpoint_prefix, self.storage.output_prefix),
            writable_prefixes=(self.storage.checkpoint_prefix,),
            repository=self.image.repository,
            encryption_key=self.encryption_key,
            vpc=config.vpc,
        )
        self.sagemaker_role = self.sagemaker.role

        self.notifications = Notifications(self, "Notifications", environment=config.name,
                                           email=config.notification_email, removal_policy=self.removal_policy)
        self.topic = self.notifications.topic

        self.add_output("BucketName", self.bucket.bucket_name, "Checkpoints and training output")
        self.add_output(TABLE_OUTPUT, self.table.table_name, "Results table (one item per tuning run)")
        self.add_output("ImageUri", self.image_uri, "SageMaker training image")
        self.add_output("SageMakerRoleArn", self.sagemaker_role.role_arn, "SageMaker training job execution role")
        self.add_output("NotificationTopicArn", self.topic.topic_arn, "Run notifications")

        # ---- The workflow is composed here (workflow issue), from the attributes above.
        self.workflow = TuningWorkflow(
            self, "Workflow", config=config, target=self.deployment_target(), table=self.table, topic=self.topic,
            sagemaker_role=self.sagemaker_role, encryption_key=self.encryption_key,
            removal_policy=self.removal_policy,
        )
        self.add_output(STATE_MACHINE_OUTPUT, self.workflow.state_machine.state_machine_arn, "Tuning workflow")

        # Last: every cdk-nag acknowledgement and checkov skip, from the one module that holds them.
        nag.apply(self)

    def add_output(self, name: str, value: str, description: str) -> CfnOutput:
        """A stack output exported as `RlTune-<env>-<name>` (unique per environment within an account)."""
        return CfnOutput(self, name, value=value, description=description,
                         export_name=f"{stack_name(self.config.name)}-{name}")

    def deployment_target(self) -> DeploymentTarget:
        """What the start Lambda needs to build requests (values are CloudFormation tokens until deploy)."""
        return DeploymentTarget(
            environment=self.config.name,
            image_uri=self.image_uri,
            role_arn=self.sagemaker_role.role_arn,
            bucket=self.bucket.bucket_name,
            key_prefix=self.storage.key_prefix,
            job_prefix=self.config.resolved_job_prefix,
            guardrails=self.config.guardrails,
            spot_by_default=self.config.spot_by_default,
            kms_key_id=self.config.kms_key_arn,
            vpc=self.config.vpc,
        )
