"""The bucket for checkpoints and training output, and its server-access-log bucket."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from rltune.environments import CHECKPOINTS_FOLDER, DEFAULT_KEY_PREFIX, OUTPUT_FOLDER

# The bucket layout (rltune.environments, shared with the request builder): SageMaker writes spot-resume
# checkpoints under CHECKPOINT_PREFIX and model/output archives under OUTPUT_PREFIX. The SageMaker role may
# touch nothing else in the bucket.
KEY_PREFIX = DEFAULT_KEY_PREFIX
CHECKPOINT_PREFIX = f"{KEY_PREFIX}/{CHECKPOINTS_FOLDER}/"
OUTPUT_PREFIX = f"{KEY_PREFIX}/{OUTPUT_FOLDER}/"

NONCURRENT_VERSION_DAYS = 7
ABORT_MULTIPART_DAYS = 1
ACCESS_LOG_DAYS = 90


class Storage(Construct):
    """Versioned, TLS-only, non-public bucket with lifecycle rules, logging to a separate bucket.

    Encryption: S3-managed keys (SSE-S3) unless the environment names an existing customer-managed KMS key.
    Why not a key created here: a customer-managed key costs $1/month per environment plus a KMS request per
    checkpoint object written or read (checkpoints are written every few minutes by every training job), and
    every principal that touches the bucket (SageMaker, Step Functions, Lambdas, people) would then need key
    grants on top of its S3 grants. SSE-S3 encrypts every object at rest with AES-256 at no cost, and the data
    here (RL checkpoints and models) carries no regulated content. Teams whose policy requires a CMK set
    `kms_key_arn` in their environment block: the bucket then defaults to SSE-KMS with that key (with an S3
    bucket key, to cut KMS calls), and SageMaker encrypts training volumes and output with it too.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        checkpoint_expiry_days: int,
        removal_policy: RemovalPolicy,
        encryption_key: kms.IKey | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        destroy = removal_policy == RemovalPolicy.DESTROY
        self.checkpoint_prefix = CHECKPOINT_PREFIX
        self.output_prefix = OUTPUT_PREFIX
        self.key_prefix = KEY_PREFIX

        # The log bucket: S3 server access logging delivers with SSE-S3 only (it cannot use SSE-KMS), so this
        # bucket stays SSE-S3 whatever the data bucket uses. It cannot log to itself (that would loop).
        self.access_log_bucket = s3.Bucket(
            self,
            "AccessLogs",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-access-logs",
                    expiration=Duration.days(ACCESS_LOG_DAYS),
                    noncurrent_version_expiration=Duration.days(NONCURRENT_VERSION_DAYS),
                    abort_incomplete_multipart_upload_after=Duration.days(ABORT_MULTIPART_DAYS),
                ),
            ],
            removal_policy=removal_policy,
            auto_delete_objects=destroy,
        )

        self.bucket = s3.Bucket(
            self,
            "Bucket",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.KMS if encryption_key else s3.BucketEncryption.S3_MANAGED,
            encryption_key=encryption_key,
            bucket_key_enabled=True if encryption_key else None,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.access_log_bucket,
            server_access_logs_prefix="bucket/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-checkpoints",
                    prefix=CHECKPOINT_PREFIX,
                    expiration=Duration.days(checkpoint_expiry_days),
                ),
                s3.LifecycleRule(
                    id="expire-noncurrent-versions",
                    noncurrent_version_expiration=Duration.days(NONCURRENT_VERSION_DAYS),
                    expired_object_delete_marker=True,
                ),
                s3.LifecycleRule(
                    id="abort-incomplete-multipart-uploads",
                    abort_incomplete_multipart_upload_after=Duration.days(ABORT_MULTIPART_DAYS),
                ),
            ],
            removal_policy=removal_policy,
            auto_delete_objects=destroy,
        )
