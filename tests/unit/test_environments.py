import pytest
from pydantic import ValidationError

from rltune.environments import DeploymentTarget, EnvironmentConfig, Guardrails, VpcSettings


def test_defaults_and_job_prefix():
    config = EnvironmentConfig(name="dev")
    assert config.resolved_job_prefix == "rlt-dev-"
    assert config.spot_by_default is True


@pytest.mark.parametrize(
    ("block", "field"),
    [
        ({"log_retention_days": 31}, "log_retention_days"),
        ({"removal_policy": "delete"}, "removal_policy"),
        ({"guardrails": {"max_job": 3}}, "max_job"),
        ({"notification_email": "nope"}, "notification_email"),
        ({"account": "12"}, "account"),
    ],
)
def test_bad_settings_name_the_field(block, field):
    with pytest.raises(ValidationError, match=field):
        EnvironmentConfig.model_validate({"name": "dev", **block})


def test_target_round_trips_through_lambda_environment():
    target = DeploymentTarget(
        environment="prod",
        image_uri="1.dkr.ecr.us-east-1.amazonaws.com/r:1",
        role_arn="arn:aws:iam::123456789012:role/r",
        bucket="b",
        job_prefix="rlt-prod-",
        guardrails=Guardrails(max_jobs=9, allowed_instance_types=("ml.c5.xlarge",)),
        kms_key_id="arn:aws:kms:us-east-1:123456789012:key/k",
        vpc=VpcSettings(subnet_ids=("subnet-1",), security_group_ids=("sg-1",)),
    )
    env = target.to_environment_variables()
    assert all(isinstance(v, str) for v in env.values())
    assert DeploymentTarget.from_environment_variables(env) == target
