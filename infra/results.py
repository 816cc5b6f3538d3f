"""The results table: one item per tuning run, written by the workflow (item format: the workflow issue)."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from constructs import Construct

PARTITION_KEY = "experiment"
SORT_KEY = "tuning_job"


class ResultsTable(Construct):
    """On-demand DynamoDB table keyed by (experiment, tuning_job), with point-in-time recovery.

    Encrypted with the AWS-managed `aws/dynamodb` KMS key (no key to pay for or manage, and every access is
    logged in CloudTrail), or with the environment's customer-managed key when `kms_key_arn` is set.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        removal_policy: RemovalPolicy,
        encryption_key: kms.IKey | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.partition_key = PARTITION_KEY
        self.sort_key = SORT_KEY
        self.table = dynamodb.Table(
            self,
            "Table",
            partition_key=dynamodb.Attribute(name=PARTITION_KEY, type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=SORT_KEY, type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True,
            ),
            encryption=(
                dynamodb.TableEncryption.CUSTOMER_MANAGED if encryption_key else dynamodb.TableEncryption.AWS_MANAGED
            ),
            encryption_key=encryption_key,
            deletion_protection=removal_policy == RemovalPolicy.RETAIN,
            removal_policy=removal_policy,
        )
