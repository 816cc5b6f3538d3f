"""The environment's notification topic: run outcomes for people (e-mail) and tools (any SNS subscriber)."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct


class Notifications(Construct):
    """An SNS topic, TLS-only and encrypted, with the environment's e-mail subscribed when one is set.

    Encrypted with a customer-managed key that rotates, not the AWS-managed `aws/sns` key: CloudWatch alarms
    cannot publish to a topic under an AWS-managed key (their service principal can't be granted on it), so
    the workflow's alarms would be dropped silently. The key costs about $1 a month.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        environment: str,
        email: str | None,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key(
            self,
            "TopicKey",
            description=f"rltune {environment}: encrypts the notification topic",
            enable_key_rotation=True,
            removal_policy=removal_policy,
            pending_window=Duration.days(7),
        )
        # CloudWatch alarms publish as the cloudwatch.amazonaws.com service; only from this account.
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsToPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=["*"],  # in a key policy, "*" means this key
                conditions={"StringEquals": {"aws:SourceAccount": Stack.of(self).account}},
            )
        )
        self.topic = sns.Topic(
            self,
            "Topic",
            display_name=f"rltune {environment}",
            master_key=self.key,
            enforce_ssl=True,
        )
        self.email = email
        if email:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))
