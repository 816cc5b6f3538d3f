"""Per-environment settings: the typed form of a `cdk.json` `environments` block.

One model serves every reader:
- `app.py` turns the block into an `EnvironmentConfig` and passes it to the stack (infra never reads
  context itself);
- the validator enforces its `Guardrails`;
- the request builder takes a `DeploymentTarget` (what a deployed stack provides: image, role,
  bucket...), which the start Lambda rebuilds from its environment variables.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rltune.naming import validate_job_prefix

# CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192,
                      2557, 2922, 3288, 3653)
# The bucket layout shared by the request builder (S3 URIs) and the stack (lifecycle rules, IAM scoping):
# s3://<bucket>/<key_prefix>/{checkpoints,output}/<tuning job>/
DEFAULT_KEY_PREFIX = "rltune"
CHECKPOINTS_FOLDER = "checkpoints"
OUTPUT_FOLDER = "output"
ENV_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]{0,9}$")
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Guardrails(_Strict):
    """Caps an environment puts on every payload; a payload over a cap is rejected before any AWS call."""

    max_jobs: int = Field(default=50, ge=1, le=10_000)
    max_parallel_jobs: int = Field(default=4, ge=1, le=100)
    allowed_instance_types: tuple[str, ...] = Field(default=("ml.c5.xlarge", "ml.c5.2xlarge", "ml.m5.xlarge"),
                                                    min_length=1)
    max_run_seconds: int = Field(default=4 * 3600, ge=60, le=28 * 24 * 3600)

    @field_validator("allowed_instance_types")
    @classmethod
    def _instance_types_are_sagemaker_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [t for t in value if not t.startswith("ml.")]
        if bad:
            raise ValueError(f"instance types must be SageMaker names starting with 'ml.', got {bad}")
        return value


class VpcSettings(_Strict):
    """Optional VPC placement of training containers (subnets and security groups of an existing VPC)."""

    subnet_ids: tuple[str, ...] = Field(min_length=1, max_length=16)
    security_group_ids: tuple[str, ...] = Field(min_length=1, max_length=5)


class EnvironmentConfig(_Strict):
    """One deployment environment, as written under `context.environments.<name>` in cdk.json."""

    name: str
    account: str | None = Field(default=None, pattern=r"^\d{12}$")
    region: str | None = Field(default=None, pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    guardrails: Guardrails = Guardrails()
    spot_by_default: bool = True
    checkpoint_expiry_days: int = Field(default=14, ge=1, le=3650)
    log_retention_days: int = 30
    removal_policy: Literal["destroy", "retain"] = "retain"
    notification_email: str | None = None
    job_prefix: str | None = None  # defaults to "rlt-<name>-"
    poll_interval_seconds: int = Field(default=60, ge=5, le=3600)
    kms_key_arn: str | None = None  # an existing customer-managed key for training volumes and output
    vpc: VpcSettings | None = None

    @field_validator("name")
    @classmethod
    def _name_is_short_lowercase(cls, value: str) -> str:
        if not ENV_NAME_PATTERN.match(value):
            raise ValueError("environment names are 1-10 lowercase letters or digits, starting with a letter")
        return value

    @field_validator("log_retention_days")
    @classmethod
    def _retention_is_a_cloudwatch_value(cls, value: int) -> int:
        if value not in LOG_RETENTION_DAYS:
            raise ValueError(f"log_retention_days must be one CloudWatch accepts: {list(LOG_RETENTION_DAYS)}")
        return value

    @field_validator("notification_email")
    @classmethod
    def _email_looks_like_one(cls, value: str | None) -> str | None:
        if value is not None and not EMAIL_PATTERN.match(value):
            raise ValueError(f"notification_email {value!r} is not an email address")
        return value

    @model_validator(mode="after")
    def _default_job_prefix(self) -> EnvironmentConfig:
        if self.job_prefix is None:
            object.__setattr__(self, "job_prefix", f"rlt-{self.name}-")
        validate_job_prefix(self.job_prefix)  # type: ignore[arg-type]
        return self

    @property
    def resolved_job_prefix(self) -> str:
        assert self.job_prefix is not None
        return self.job_prefix


def load_environments(cdk_json: Path) -> dict[str, EnvironmentConfig]:
    """Every environment block in a cdk.json, validated (used by the command line, not by infra)."""
    context = json.loads(cdk_json.read_text()).get("context", {})
    blocks = context.get("environments", {})
    return {name: EnvironmentConfig.model_validate({"name": name, **block}) for name, block in blocks.items()}


class DeploymentTarget(_Strict):
    """What a deployed environment gives the request builder: where jobs run, and under which caps."""

    environment: str
    image_uri: str
    role_arn: str
    bucket: str
    key_prefix: str = DEFAULT_KEY_PREFIX
    job_prefix: str
    guardrails: Guardrails = Guardrails()
    spot_by_default: bool = True
    kms_key_id: str | None = None
    vpc: VpcSettings | None = None

    @classmethod
    def placeholder(cls, config: EnvironmentConfig) -> DeploymentTarget:
        """Stand-ins for `rltune render` when no deployed stack is known."""
        account = config.account or "123456789012"
        region = config.region or "us-east-1"
        return cls(
            environment=config.name,
            image_uri=f"{account}.dkr.ecr.{region}.amazonaws.com/rltune-training:PLACEHOLDER",
            role_arn=f"arn:aws:iam::{account}:role/PLACEHOLDER-sagemaker-execution-role",
            bucket="placeholder-rltune-bucket",
            job_prefix=config.resolved_job_prefix,
            guardrails=config.guardrails,
            spot_by_default=config.spot_by_default,
            kms_key_id=config.kms_key_arn,
            vpc=config.vpc,
        )

    def to_environment_variables(self) -> dict[str, str]:
        """Lambda environment variables: one per field, JSON for the nested ones."""
        return {
            f"RLTUNE_{key.upper()}": value if isinstance(value, str) else json.dumps(value)
            for key, value in self.model_dump(mode="json").items()
            if value is not None
        }

    @classmethod
    def from_environment_variables(cls, env: Mapping[str, str]) -> DeploymentTarget:
        """Inverse of `to_environment_variables`."""
        data: dict[str, object] = {}
        for name, field in cls.model_fields.items():
            raw = env.get(f"RLTUNE_{name.upper()}")
            if raw is None:
                continue
            data[name] = raw if field.annotation in (str, str | None) else json.loads(raw)
        return cls.model_validate(data)
