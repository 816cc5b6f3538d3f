"""cdk.json environment blocks → typed settings (what app.py does before any CDK code runs)."""

from __future__ import annotations

import json

import pytest

from infra.settings import SettingsError, resolve_environment
from tests.conftest import ROOT

ENVIRONMENTS = json.loads((ROOT / "cdk.json").read_text())["context"]["environments"]


def test_cdk_json_blocks_are_valid_and_differ_as_documented():
    dev = resolve_environment("dev", ENVIRONMENTS)
    prod = resolve_environment("prod", ENVIRONMENTS)
    assert (dev.name, prod.name) == ("dev", "prod")
    assert (dev.removal_policy, prod.removal_policy) == ("destroy", "retain")
    assert dev.checkpoint_expiry_days < prod.checkpoint_expiry_days
    assert dev.guardrails.max_jobs < prod.guardrails.max_jobs
    assert (dev.account, dev.region) == (None, None)  # nothing hard-coded: the CLI's defaults fill them


def test_default_environment_is_dev():
    assert resolve_environment(None, ENVIRONMENTS).name == "dev"


def test_account_and_region_default_to_the_cli_and_a_block_value_wins():
    config = resolve_environment("dev", {"dev": {"region": "eu-west-1"}},
                                 default_account="111122223333", default_region="us-east-1")
    assert (config.account, config.region) == ("111122223333", "eu-west-1")
    explicit_null = resolve_environment("dev", {"dev": {"account": None}}, default_account="111122223333")
    assert explicit_null.account == "111122223333"


def test_unknown_environment_names_the_known_ones_and_the_fix():
    with pytest.raises(SettingsError) as error:
        resolve_environment("staging", ENVIRONMENTS)
    message = str(error.value)
    assert "unknown environment 'staging'" in message
    assert "dev, prod" in message
    assert "context.environments.staging" in message


@pytest.mark.parametrize(
    ("block", "named"),
    [
        ({"checkpoint_expiry_days": 0}, "context.environments.dev.checkpoint_expiry_days"),
        ({"log_retention_days": 31}, "context.environments.dev.log_retention_days"),
        ({"removal_policy": "delete"}, "context.environments.dev.removal_policy"),
        ({"guardrails": {"max_job": 3}}, "context.environments.dev.guardrails.max_job"),
        ({"guardrails": {"allowed_instance_types": ["c5.xlarge"]}},
         "context.environments.dev.guardrails.allowed_instance_types"),
        ({"notification_email": "nope"}, "context.environments.dev.notification_email"),
        ({"account": "12"}, "context.environments.dev.account"),
        ({"spot_by_default": "sometimes"}, "context.environments.dev.spot_by_default"),
        ({"retention": 3}, "context.environments.dev.retention"),
        ({"vpc": {"subnet_ids": ["subnet-1"]}}, "context.environments.dev.vpc.security_group_ids"),
        ({"kms_key_arn": 5}, "context.environments.dev.kms_key_arn"),
        ({"kms_key_arn": "alias/ml"}, "context.environments.dev.kms_key_arn"),
        ({"vpc": {"subnet_ids": ["net-1"], "security_group_ids": ["sg-0a"]}},
         "context.environments.dev.vpc.subnet_ids"),
        ({"vpc": {"subnet_ids": ["subnet-0a"], "security_group_ids": ["0a"]}},
         "context.environments.dev.vpc.security_group_ids"),
    ],
)
def test_bad_settings_stop_with_the_field_named(block, named):
    with pytest.raises(SettingsError, match=named.replace(".", r"\.")):
        resolve_environment("dev", {"dev": block})


def test_unknown_setting_lists_the_allowed_ones():
    with pytest.raises(SettingsError) as error:
        resolve_environment("dev", {"dev": {"guardrails": {"max_job": 3}}})
    assert "allowed here: max_jobs, max_parallel_jobs" in str(error.value)
    with pytest.raises(SettingsError) as error:
        resolve_environment("dev", {"dev": {"retention": 3}})
    assert "checkpoint_expiry_days" in str(error.value)
    assert "allowed here: name" not in str(error.value)


def test_a_missing_required_setting_says_to_add_it():
    with pytest.raises(SettingsError, match=r"vpc\.security_group_ids: Field required \(add it to the block\)"):
        resolve_environment("dev", {"dev": {"vpc": {"subnet_ids": ["subnet-1"]}}})


def test_every_problem_is_reported_at_once():
    with pytest.raises(SettingsError) as error:
        resolve_environment("dev", {"dev": {"checkpoint_expiry_days": 0, "removal_policy": "gone"}})
    assert len(error.value.problems) == 2


@pytest.mark.parametrize("environments", [None, {}, [], "dev"])
def test_missing_environments_context_says_how_to_add_it(environments):
    with pytest.raises(SettingsError, match=r"context\.environments is missing"):
        resolve_environment("dev", environments)


def test_block_must_be_an_object_and_may_not_rename_itself():
    with pytest.raises(SettingsError, match="must be an object"):
        resolve_environment("dev", {"dev": ["destroy"]})
    with pytest.raises(SettingsError, match=r"context\.environments\.dev\.name: remove it"):
        resolve_environment("dev", {"dev": {"name": "prod"}})
