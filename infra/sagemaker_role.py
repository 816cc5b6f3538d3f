"""The execution role SageMaker training jobs run with: least privilege, no AWS-managed policies."""

from __future__ import annotations

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from rltune.environments import VpcSettings

SAGEMAKER_SERVICE = "sagemaker.amazonaws.com"
TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"
METRIC_NAMESPACE_PATTERN = "/aws/sagemaker/*"

# Actions AWS does not let any policy scope to a resource: the only `Resource: *` statements in this role.
ECR_AUTH_ACTIONS = ("ecr:GetAuthorizationToken",)
VPC_NETWORK_ACTIONS = (
    "ec2:CreateNetworkInterface",
    "ec2:CreateNetworkInterfacePermission",
    "ec2:DeleteNetworkInterface",
    "ec2:DeleteNetworkInterfacePermission",
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSubnets",
    "ec2:DescribeVpcs",
)


class SageMakerExecutionRole(Construct):
    """Role trusted by SageMaker only, limited to the bucket's prefixes, the image, its logs and metrics."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bucket: s3.IBucket,
        prefixes: tuple[str, ...],
        writable_prefixes: tuple[str, ...],
        repository: ecr.IRepository,
        encryption_key: kms.IKey | None = None,
        vpc: VpcSettings | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal(SAGEMAKER_SERVICE),
            description="rltune: SageMaker training jobs (checkpoints/output prefixes, image pull, logs, metrics)",
        )
        statements: list[iam.PolicyStatement] = []

        # S3: only the checkpoint and output prefixes. Listing is limited to them by condition; GetBucketLocation
        # is what SageMaker calls to check the bucket's region before a job starts.
        statements.append(iam.PolicyStatement(
            sid="ListOwnPrefixes",
            actions=["s3:ListBucket"],
            resources=[bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [p for prefix in prefixes for p in (prefix, f"{prefix}*")]}},
        ))
        statements.append(iam.PolicyStatement(
            sid="BucketLocation",
            actions=["s3:GetBucketLocation"],
            resources=[bucket.bucket_arn],
        ))
        statements.append(iam.PolicyStatement(
            sid="ReadWriteOwnPrefixes",
            actions=["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
            resources=[bucket.arn_for_objects(f"{prefix}*") for prefix in prefixes],
        ))
        # Checkpoint sync replaces files the trainer prunes (rl.checkpoint.keep); nothing else is deletable.
        statements.append(iam.PolicyStatement(
            sid="DeleteCheckpoints",
            actions=["s3:DeleteObject"],
            resources=[bucket.arn_for_objects(f"{prefix}*") for prefix in writable_prefixes],
        ))

        # ECR: pull the training image from its repository. GetAuthorizationToken cannot be scoped (AWS requires *).
        statements.append(iam.PolicyStatement(
            sid="PullTrainingImage",
            actions=["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
            resources=[repository.repository_arn],
        ))
        statements.append(iam.PolicyStatement(
            sid="EcrAuthorizationToken",
            actions=list(ECR_AUTH_ACTIONS),
            resources=["*"],
        ))

        # CloudWatch Logs: the training jobs' log group and its streams only.
        log_group_arn = stack.format_arn(
            service="logs", resource="log-group", resource_name=TRAINING_LOG_GROUP,
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        statements.append(iam.PolicyStatement(
            sid="TrainingLogGroup",
            actions=["logs:CreateLogGroup", "logs:DescribeLogStreams"],
            resources=[log_group_arn, f"{log_group_arn}:*"],
        ))
        statements.append(iam.PolicyStatement(
            sid="TrainingLogStreams",
            actions=["logs:CreateLogStream", "logs:PutLogEvents"],
            resources=[f"{log_group_arn}:log-stream:*"],
        ))

        # CloudWatch metrics: PutMetricData has no resource; the namespace condition confines it to SageMaker's.
        statements.append(iam.PolicyStatement(
            sid="SageMakerMetrics",
            actions=["cloudwatch:PutMetricData"],
            resources=["*"],
            conditions={"StringLike": {"cloudwatch:namespace": METRIC_NAMESPACE_PATTERN}},
        ))

        if encryption_key is not None:
            # Training volumes and output are encrypted with the environment's key; CreateGrant lets SageMaker
            # attach it to the instance's EBS volume, and only for AWS resources.
            statements.append(iam.PolicyStatement(
                sid="UseEnvironmentKey",
                actions=["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey",
                         "kms:GenerateDataKeyWithoutPlaintext", "kms:ReEncryptFrom", "kms:ReEncryptTo"],
                resources=[encryption_key.key_arn],
            ))
            statements.append(iam.PolicyStatement(
                sid="GrantEnvironmentKeyToVolumes",
                actions=["kms:CreateGrant"],
                resources=[encryption_key.key_arn],
                conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
            ))

        if vpc is not None:
            # Training containers in the environment's subnets: SageMaker manages their network interfaces.
            # These EC2 actions do not support resource-level scoping for this use (AWS requires *).
            statements.append(iam.PolicyStatement(
                sid="TrainingInVpc",
                actions=list(VPC_NETWORK_ACTIONS),
                resources=["*"],
            ))

        self.policy = iam.Policy(self, "Policy", statements=statements)
        self.policy.attach_to_role(self.role)
        self.role_arn = self.role.role_arn

