"""The request builder: SageMaker SDK oracle, botocore Stubber, and the API model's own constraints."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rltune import metrics
from rltune.environments import DeploymentTarget, EnvironmentConfig, Guardrails
from rltune.errors import PayloadError
from rltune.naming import tuning_job_name
from rltune.payload import (
    BUILTIN_ENVIRONMENT,
    BUILTIN_TAG_KEYS,
    TuningPayload,
    auto_time_total_s,
    validate_payload,
)
from rltune.request import DEFAULT_PAYLOAD, build_tuning_request, load_default_payload

from .payload_strategies import (
    INPUT_SHAPE,
    SEED,
    categorical_ranges,
    continuous_ranges,
    integer_ranges,
    model_violations,
    permissive_target,
    valid_payloads,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.json") if p.name != "payload.schema.json")
OPERATION = "create_hyper_parameter_tuning_job"


def render(raw: Any, target: DeploymentTarget | None = None, execution_id: str = "exec-1") -> dict[str, Any]:
    target = target or permissive_target()
    return build_tuning_request(validate_payload(raw, target.guardrails, target.environment), target, execution_id)


# --- botocore: the model's constraints, read from the model ------------------------------------------------


def stub_call(request: dict[str, Any]) -> None:
    client = boto3.client("sagemaker", region_name="us-east-1")
    name = request["HyperParameterTuningJobName"]
    arn = f"arn:aws:sagemaker:us-east-1:123456789012:hyper-parameter-tuning-job/{name}"
    with Stubber(client) as stubber:
        stubber.add_response(OPERATION, {"HyperParameterTuningJobArn": arn}, copy.deepcopy(request))
        assert client.create_hyper_parameter_tuning_job(**request)["HyperParameterTuningJobArn"] == arn
        stubber.assert_no_pending_responses()


def test_the_model_walker_can_fail() -> None:
    request = render(SEED)
    request["HyperParameterTuningJobName"] = "x" * 33
    request["TrainingJobDefinition"]["StaticHyperParameters"]["rl.env_config.big"] = "y" * 2501
    request["Tags"] = [{"Key": "bad#", "Value": ""}]
    request["TrainingJobDefinition"]["ResourceConfig"]["InstanceType"] = "ml.nonsense"
    problems = "\n".join(model_violations(INPUT_SHAPE, request))
    for fragment in ("HyperParameterTuningJobName: 33 is above the maximum 32", "'rl.env_config.big']: 2501",
                     "Tags[0].Key", "InstanceType: 'ml.nonsense' not in the enum"):
        assert fragment in problems


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_every_example_renders_a_request_sagemaker_accepts(path: Path, environment: str) -> None:
    from rltune.environments import load_environments

    config = load_environments(ROOT / "cdk.json")[environment]
    target = DeploymentTarget.placeholder(config)
    request = build_tuning_request(validate_payload(path.read_bytes(), config.guardrails, environment), target, "e1")
    assert model_violations(INPUT_SHAPE, request) == []
    stub_call(request)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=valid_payloads(), execution_id=st.text(min_size=1, max_size=80))
def test_generated_payloads_render_requests_that_pass_stubber_and_model(raw: dict[str, Any], execution_id: str) -> None:
    request = render(raw, execution_id=execution_id)
    assert model_violations(INPUT_SHAPE, request) == []
    stub_call(request)


# --- the oracle: the SageMaker SDK builds the same ParameterRanges ------------------------------------------


def sdk_range(name: str, spec: Any) -> tuple[str, dict[str, Any]]:
    from sagemaker.core.parameter import CategoricalParameter, ContinuousParameter, IntegerParameter

    if isinstance(spec, list):
        return "CategoricalParameterRanges", CategoricalParameter(spec).as_tuning_range(name)
    scaling = spec.get("scaling", "Auto")
    lo, hi = spec["min_value"], spec["max_value"]
    if spec.get("type") != "Continuous" and isinstance(lo, int) and isinstance(hi, int):
        return "IntegerParameterRanges", IntegerParameter(lo, hi, scaling_type=scaling).as_tuning_range(name)
    return "ContinuousParameterRanges", ContinuousParameter(lo, hi, scaling_type=scaling).as_tuning_range(name)


@settings(max_examples=150, deadline=None)
@given(specs=st.lists(st.one_of(integer_ranges(), continuous_ranges(), categorical_ranges), min_size=1, max_size=5))
def test_parameter_ranges_equal_what_the_sagemaker_sdk_builds(specs: list[Any]) -> None:
    ranges = {f"rl.env_config.p{i}": spec for i, spec in enumerate(specs)}
    expected: dict[str, list[dict[str, Any]]] = {
        "IntegerParameterRanges": [], "ContinuousParameterRanges": [], "CategoricalParameterRanges": []}
    for name, spec in ranges.items():
        group, built = sdk_range(name, spec)
        expected[group].append(built)
    request = render({"hyperparameter_ranges": ranges, "max_jobs": 5, "max_parallel_jobs": 1})
    assert request["HyperParameterTuningJobConfig"]["ParameterRanges"] == expected


def test_booleans_are_sent_as_json_not_python_reprs() -> None:
    # Deliberate difference from the SDK's str(True) == "True": the trainer decodes JSON, so "true" -> True.
    request = render({"hyperparameter_ranges": {"rl.rl_module.vf_share_layers": [True, False]}})
    assert request["HyperParameterTuningJobConfig"]["ParameterRanges"]["CategoricalParameterRanges"] == [
        {"Name": "rl.rl_module.vf_share_layers", "Values": ["true", "false"]}]


# --- what the request contains ------------------------------------------------------------------------------


def test_seed_renders_a_complete_request() -> None:
    target = permissive_target()
    request = render(SEED, target, "exec-42")
    name = tuning_job_name("rlt-dev-", "ppo-cartpole-v1", "exec-42")
    assert request["HyperParameterTuningJobName"] == name
    config = request["HyperParameterTuningJobConfig"]
    assert config["Strategy"] == "Bayesian"
    assert config["HyperParameterTuningJobObjective"] == {"Type": "Maximize", "MetricName": "episode_reward_mean"}
    assert config["ResourceLimits"]["MaxNumberOfTrainingJobs"] == 2
    assert config["ResourceLimits"]["MaxParallelTrainingJobs"] == 1
    assert config["ParameterRanges"]["ContinuousParameterRanges"] == [
        {"Name": "rl.training.config.lr", "MinValue": "1e-06", "MaxValue": "0.01", "ScalingType": "Auto"}]
    assert config["TrainingJobEarlyStoppingType"] == "Off"
    definition = request["TrainingJobDefinition"]
    assert definition["AlgorithmSpecification"] == {"TrainingImage": target.image_uri, "TrainingInputMode": "File",
                                                    "MetricDefinitions": metrics.metric_definitions()}
    assert definition["RoleArn"] == target.role_arn
    assert definition["StaticHyperParameters"] == {"rl.stop.time_total_s": str(auto_time_total_s(3600))}
    assert definition["EnableNetworkIsolation"] is True
    assert definition["EnableManagedSpotTraining"] is True
    assert definition["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}
    assert definition["RetryStrategy"] == {"MaximumRetryAttempts": 2}
    assert definition["CheckpointConfig"] == {"S3Uri": f"s3://{target.bucket}/rltune/checkpoints/{name}/",
                                              "LocalPath": "/opt/ml/checkpoints"}
    assert definition["OutputDataConfig"] == {"S3OutputPath": f"s3://{target.bucket}/rltune/output/{name}/",
                                              "KmsKeyId": target.kms_key_id}
    assert definition["ResourceConfig"]["VolumeKmsKeyId"] == target.kms_key_id
    assert definition["VpcConfig"] == {"SecurityGroupIds": ["sg-0123"], "Subnets": ["subnet-0abc", "subnet-0def"]}
    assert {"Key": "rltune:experiment", "Value": "ppo-cartpole-v1"} in request["Tags"]


def test_what_rltune_adds_is_what_the_validator_reserves_room_for() -> None:
    request = render({**SEED, "tags": {"team": "rl"}, "environment": {"EXTRA": "1"}})
    assert [tag["Key"] for tag in request["Tags"]] == [*BUILTIN_TAG_KEYS, "team"]
    assert list(request["TrainingJobDefinition"]["Environment"]) == [*BUILTIN_ENVIRONMENT, "EXTRA"]


def test_same_inputs_same_request_and_other_executions_get_other_prefixes() -> None:
    first, again, other = render(SEED, execution_id="a"), render(SEED, execution_id="a"), render(SEED, execution_id="b")
    assert first == again
    assert first["HyperParameterTuningJobName"] != other["HyperParameterTuningJobName"]
    uri = first["TrainingJobDefinition"]["CheckpointConfig"]["S3Uri"]
    other_uri = other["TrainingJobDefinition"]["CheckpointConfig"]["S3Uri"]
    assert uri.endswith("/")
    assert not other_uri.startswith(uri)
    assert not uri.startswith(other_uri)


def test_without_kms_or_vpc_those_blocks_are_absent() -> None:
    request = render(SEED, permissive_target(kms_key_id=None, vpc=None))
    definition = request["TrainingJobDefinition"]
    assert "VpcConfig" not in definition
    assert "KmsKeyId" not in definition["OutputDataConfig"]
    assert "VolumeKmsKeyId" not in definition["ResourceConfig"]


def test_spot_follows_the_environment_default_when_unset() -> None:
    on_demand = permissive_target(spot_by_default=False)
    definition = render(SEED, on_demand)["TrainingJobDefinition"]
    assert definition["EnableManagedSpotTraining"] is False
    assert "MaxWaitTimeInSeconds" not in definition["StoppingCondition"]
    assert render({**SEED, "use_spot": True}, on_demand)["TrainingJobDefinition"]["EnableManagedSpotTraining"]
    with pytest.raises(PayloadError, match="does not use spot by default"):
        render({**SEED, "max_wait_seconds": 7200}, on_demand)


def test_user_time_stop_is_kept() -> None:
    raw = {**SEED, "static_hyperparameters": {"rl.stop.time_total_s": 100, "rl.rl_module.fcnet_hiddens": [32, 32]}}
    static = render(raw)["TrainingJobDefinition"]["StaticHyperParameters"]
    assert static == {"rl.stop.time_total_s": "100", "rl.rl_module.fcnet_hiddens": "[32,32]"}


def test_grid_omits_the_job_count_and_hyperband_sets_its_config() -> None:
    grid = render({"strategy": "Grid", "hyperparameter_ranges": {"rl.training.config.lr": [0.001, 0.01]}})
    limits = grid["HyperParameterTuningJobConfig"]["ResourceLimits"]
    assert "MaxNumberOfTrainingJobs" not in limits
    assert limits["MaxParallelTrainingJobs"] == 2
    band = render({**SEED, "strategy": "Hyperband", "static_hyperparameters": {"rl.stop.training_iteration": 50}})
    config = band["HyperParameterTuningJobConfig"]
    assert config["StrategyConfig"] == {"HyperbandStrategyConfig": {"MinResource": 1, "MaxResource": 50}}
    assert config["TrainingJobEarlyStoppingType"] == "Off"


def test_completion_criteria_seed_warm_start_and_tags() -> None:
    request = render(json.loads((ROOT / "examples" / "random_completion.json").read_text()))
    config = request["HyperParameterTuningJobConfig"]
    assert config["TuningJobCompletionCriteria"] == {
        "TargetObjectiveMetricValue": 475.0,
        "BestObjectiveNotImproving": {"MaxNumberOfTrainingJobsNotImproving": 6},
        "ConvergenceDetected": {"CompleteOnConvergence": "Enabled"},
    }
    assert config["RandomSeed"] == 1234
    assert config["ResourceLimits"]["MaxRuntimeInSeconds"] == 36000
    warm = render({**SEED, "warm_start": {"parents": ["rlt-dev-old-1234abcd"]}, "tags": {"team": "rl"}})
    assert warm["WarmStartConfig"] == {
        "ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": "rlt-dev-old-1234abcd"}],
        "WarmStartType": "TransferLearning"}
    assert warm["Tags"][-1] == {"Key": "team", "Value": "rl"}


def test_the_target_guardrails_are_enforced_again_at_build_time() -> None:
    payload = validate_payload({**SEED, "max_jobs": 30, "max_parallel_jobs": 3})
    strict = permissive_target(guardrails=Guardrails(max_jobs=20, max_parallel_jobs=2))
    with pytest.raises(PayloadError) as info:
        build_tuning_request(payload, strict, "exec")
    assert {i.path for i in info.value.issues} == {"max_jobs", "max_parallel_jobs"}


def test_default_parallelism_is_clamped_to_the_target_cap() -> None:
    payload = validate_payload({"hyperparameter_ranges": SEED["hyperparameter_ranges"]})
    request = build_tuning_request(payload, permissive_target(guardrails=Guardrails(max_parallel_jobs=1)), "e")
    assert request["HyperParameterTuningJobConfig"]["ResourceLimits"]["MaxParallelTrainingJobs"] == 1


def test_a_hand_built_payload_is_validated_before_rendering() -> None:
    request = build_tuning_request(TuningPayload.model_validate(SEED), permissive_target(), "e")
    assert request["HyperParameterTuningJobConfig"]["ParameterRanges"]["ContinuousParameterRanges"]


def test_placeholder_target_and_default_payload() -> None:
    assert DEFAULT_PAYLOAD.name == "cartpole_ppo.json"
    payload = load_default_payload()
    target = DeploymentTarget.placeholder(EnvironmentConfig(name="dev"))
    request = build_tuning_request(payload, target, "e")
    assert request["HyperParameterTuningJobName"].startswith("rlt-dev-cartpole-ppo-")
    assert model_violations(INPUT_SHAPE, request) == []
