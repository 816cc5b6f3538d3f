"""The payload validator: seed compatibility, every documented rule, messages with a path and a fix."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rltune import metrics
from rltune.environments import Guardrails
from rltune.errors import Issue, PayloadError
from rltune.payload import (
    MAX_CATEGORICAL_VALUES,
    MAX_TUNABLE_PARAMETERS,
    TuningPayload,
    payload_json_schema,
    validate_payload,
)

from .payload_strategies import SEED

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
LR = "rl.training.config.lr"


def issues_of(raw: Any, **kwargs: Any) -> list[Issue]:
    with pytest.raises(PayloadError) as info:
        validate_payload(raw, **kwargs)
    return list(info.value.issues)


def paths_of(raw: Any, **kwargs: Any) -> dict[str, str]:
    return {issue.path: issue.message for issue in issues_of(raw, **kwargs)}


def with_(**changes: Any) -> dict[str, Any]:
    payload = copy.deepcopy(SEED)
    payload.update(changes)
    return payload


def ranges(**named: Any) -> dict[str, Any]:
    return {key.replace("__", "."): value for key, value in named.items()}


# --- seed compatibility and defaults -------------------------------------------------------------------------


def test_the_exact_seed_dict_validates_with_sagemaker_sdk_semantics() -> None:
    payload = validate_payload(SEED)
    lr = payload.hyperparameter_ranges[LR]
    assert (lr.type, lr.min_value, lr.max_value, lr.scaling) == ("Continuous", 1e-6, 0.01, "Auto")
    assert (payload.objective_metric, payload.objective_type) == ("episode_reward_mean", "Maximize")
    assert (payload.max_jobs, payload.max_parallel_jobs, payload.strategy) == (2, 1, "Bayesian")
    assert payload.experiment == "ppo-cartpole-v1"  # defaulted from the algorithm and environment
    assert payload.use_spot is None
    assert payload.spot(True) is True
    assert payload.spot(False) is False


@pytest.mark.parametrize("raw", [json.dumps(SEED), json.dumps(SEED).encode()])
def test_json_text_and_bytes_are_accepted(raw: str | bytes) -> None:
    assert validate_payload(raw).max_jobs == 2


def test_only_ranges_are_required() -> None:
    payload = validate_payload({"hyperparameter_ranges": {LR: {"min_value": 1e-5, "max_value": 1e-3}}})
    assert payload.max_jobs == 10
    assert payload.max_parallel_jobs == 2
    assert payload.early_stopping == "Off"


def test_range_types_are_inferred_from_bounds_and_lists() -> None:
    payload = validate_payload({"hyperparameter_ranges": {
        "rl.training.config.num_epochs": {"min_value": 2, "max_value": 9},
        "rl.training.config.gamma": {"min_value": 0.9, "max_value": 1},  # mixed -> Continuous
        "rl.training.config.minibatch_size": [64, 128],
        "rl.training.config.lambda_": {"type": "Continuous", "min_value": 0, "max_value": 1},
        "rl.training.config.train_batch_size_per_learner": {"type": "Integer", "min_value": 1.0, "max_value": 4.0},
        "rl.rl_module.fcnet_activation": {"type": "Categorical", "values": ["relu", "tanh"]},
    }})
    got = {k: (r.type, r.min_value, r.max_value, r.values) for k, r in payload.hyperparameter_ranges.items()}
    assert got == {
        "rl.training.config.num_epochs": ("Integer", 2, 9, None),
        "rl.training.config.gamma": ("Continuous", 0.9, 1.0, None),
        "rl.training.config.minibatch_size": ("Categorical", None, None, [64, 128]),
        "rl.training.config.lambda_": ("Continuous", 0.0, 1.0, None),
        "rl.training.config.train_batch_size_per_learner": ("Integer", 1, 4, None),
        "rl.rl_module.fcnet_activation": ("Categorical", None, None, ["relu", "tanh"]),
    }
    assert isinstance(payload.hyperparameter_ranges["rl.training.config.train_batch_size_per_learner"].min_value, int)


def test_schema_key_is_accepted_and_ignored() -> None:
    assert validate_payload(with_(**{"$schema": "./payload.schema.json"})).max_jobs == 2


@pytest.mark.parametrize("path", sorted(p for p in EXAMPLES.glob("*.json") if p.name != "payload.schema.json"),
                         ids=lambda p: p.name)
@pytest.mark.parametrize("environment", ["dev", "prod", None])
def test_every_example_is_valid_in_every_environment(path: Path, environment: str | None) -> None:
    from rltune.environments import load_environments

    guardrails = load_environments(ROOT / "cdk.json")[environment].guardrails if environment else None
    payload = validate_payload(path.read_bytes(), guardrails, environment)
    assert payload.hyperparameter_ranges
    assert all(r.type for r in payload.hyperparameter_ranges.values())


def test_examples_cover_the_documented_strategies() -> None:
    loaded = {p.name: json.loads(p.read_text()) for p in EXAMPLES.glob("*.json") if p.name != "payload.schema.json"}
    seed_like = loaded["cartpole_ppo.json"]
    assert seed_like["objective_metric"] == "episode_reward_mean"
    assert seed_like["$schema"] == "./payload.schema.json"
    for spec in seed_like["hyperparameter_ranges"].values():
        assert set(spec) <= {"min_value", "max_value"}  # the seed's own shape, no extensions
    assert {d.get("strategy", "Bayesian") for d in loaded.values()} >= {"Bayesian", "Random", "Hyperband"}
    assert any("warm_start" in d for d in loaded.values())
    assert any("completion_criteria" in d for d in loaded.values())
    assert all(d.get("$schema") == "./payload.schema.json" for d in loaded.values())


# --- the documented rules ------------------------------------------------------------------------------------


def test_unknown_fields_get_did_you_mean() -> None:
    raw = {k if k != "max_jobs" else "max_job": v for k, v in SEED.items()}
    raw["hyperparameter_ranges"] = {LR: {"min_value": 1e-6, "max_vlaue": 0.01}}
    found = paths_of(raw)
    assert "did you mean 'max_jobs'" in found["max_job"]
    assert "did you mean 'max_value'" in found[f"hyperparameter_ranges.{LR}.max_vlaue"]


def test_unknown_field_without_a_near_match_lists_allowed_fields() -> None:
    found = paths_of(with_(completion_criteria={"zzz": 1}))
    assert "target_objective_value" in found["completion_criteria.zzz"]


def test_min_not_below_max() -> None:
    message = paths_of(with_(hyperparameter_ranges={LR: {"min_value": 0.01, "max_value": 0.01}}))[
        f"hyperparameter_ranges.{LR}.min_value"]
    assert "less than max_value" in message
    assert "swap" in message


@pytest.mark.parametrize(("spec", "fragment"), [
    ({"min_value": 0.0, "max_value": 1.0, "scaling": "Logarithmic"}, "min_value > 0"),
    ({"min_value": -1, "max_value": 5, "scaling": "Logarithmic"}, "min_value > 0"),
    ({"min_value": 0.5, "max_value": 1.0, "scaling": "ReverseLogarithmic"}, "max_value < 1"),
    ({"min_value": -0.1, "max_value": 0.5, "scaling": "ReverseLogarithmic"}, "0 <= min_value"),
    ({"min_value": 0, "max_value": 5, "scaling": "ReverseLogarithmic"}, "Continuous"),
])
def test_scaling_rules(spec: dict[str, Any], fragment: str) -> None:
    message = paths_of(with_(hyperparameter_ranges={LR: spec}))[f"hyperparameter_ranges.{LR}.scaling"]
    assert fragment in message


def test_valid_log_and_reverse_log_ranges() -> None:
    validate_payload(with_(hyperparameter_ranges={
        LR: {"min_value": 1e-6, "max_value": 0.01, "scaling": "Logarithmic"},
        "rl.training.config.gamma": {"min_value": 0.0, "max_value": 0.999, "scaling": "ReverseLogarithmic"},
    }))


def test_max_parallel_over_max_jobs() -> None:
    assert "set it to 2 or less" in paths_of(with_(max_parallel_jobs=3))["max_parallel_jobs"]


def test_default_parallelism_is_clamped_not_rejected() -> None:
    payload = validate_payload({"hyperparameter_ranges": SEED["hyperparameter_ranges"], "max_jobs": 1})
    assert payload.max_parallel_jobs == 1


def test_grid_needs_categorical_ranges_and_no_max_jobs() -> None:
    found = paths_of(with_(strategy="Grid", max_parallel_jobs=1))
    assert "Grid search takes categorical ranges only" in found[f"hyperparameter_ranges.{LR}"]
    assert "forbids max_jobs with Grid" in found["max_jobs"]
    assert "(0 here)" not in found["max_jobs"], "no grid size is counted from a numeric range"


def test_grid_runs_every_combination() -> None:
    payload = validate_payload({"strategy": "Grid", "hyperparameter_ranges": {
        LR: [0.0001, 0.001, 0.01], "rl.training.config.num_epochs": [4, 8]}})
    assert payload.max_jobs == 6
    assert payload.max_parallel_jobs == 2


def test_grid_over_the_environment_cap_names_it() -> None:
    message = paths_of({"strategy": "Grid", "hyperparameter_ranges": {
        LR: [1, 2, 3, 4, 5], "rl.training.config.num_epochs": [1, 2, 3, 4, 5]}},
        guardrails=Guardrails(max_jobs=20), environment="dev")["hyperparameter_ranges"]
    assert "25 training jobs" in message
    assert "'dev'" in message
    assert "guardrails.max_jobs = 20" in message


def test_hyperband_with_early_stopping() -> None:
    found = paths_of(with_(strategy="Hyperband", early_stopping="Auto", hyperband={"max_resource": 10}))
    assert "needs early_stopping Off" in found["early_stopping"]


def test_hyperband_needs_a_max_resource_or_an_iteration_stop() -> None:
    assert "hyperband.max_resource" in paths_of(with_(strategy="Hyperband"))["hyperband.max_resource"]
    payload = validate_payload(with_(strategy="Hyperband",
                                     static_hyperparameters={"rl.stop.training_iteration": 40}))
    assert payload.hyperband is not None
    assert payload.hyperband.max_resource == 40


def test_hyperband_settings_without_hyperband() -> None:
    assert "strategy Hyperband" in paths_of(with_(hyperband={"max_resource": 5}))["hyperband"]


def test_categorical_value_limits() -> None:
    values = list(range(MAX_CATEGORICAL_VALUES + 1))
    found = paths_of(with_(hyperparameter_ranges={LR: values}))
    assert f"at most {MAX_CATEGORICAL_VALUES}" in found[f"hyperparameter_ranges.{LR}.values"]
    assert "searchable values" in found["hyperparameter_ranges"]  # also over the tunable limit


def test_tunable_parameter_limit_counts_categorical_values() -> None:
    many = {f"rl.env_config.p{i}": {"min_value": 0, "max_value": 9} for i in range(MAX_TUNABLE_PARAMETERS)}
    validate_payload(with_(hyperparameter_ranges=many))
    many["rl.env_config.extra"] = ["a", "b"]
    message = paths_of(with_(hyperparameter_ranges=many))["hyperparameter_ranges"]
    assert f"{MAX_TUNABLE_PARAMETERS + 2} searchable values" in message


def test_static_plus_tunable_limit() -> None:
    static = {f"rl.env_config.s{i}": i for i in range(98)}
    message = paths_of(with_(static_hyperparameters=static))["static_hyperparameters"]
    assert "= 101 hyperparameters" in message
    assert "allows 100" in message
    static.pop("rl.env_config.s0")
    validate_payload(with_(static_hyperparameters=static))  # 97 + 1 tuned + time stop + SageMaker's = 100


def test_value_over_2500_characters() -> None:
    message = paths_of(with_(static_hyperparameters={"rl.env_config.blob": "x" * 2501}))[
        "static_hyperparameters.rl.env_config.blob"]
    assert "2501 characters" in message
    assert "2500" in message


def test_tunable_key_also_static() -> None:
    message = paths_of(with_(static_hyperparameters={LR: 0.001}))[f"static_hyperparameters.{LR}"]
    assert "either tuned or static" in message


def test_keys_outside_the_trainer_namespaces() -> None:
    found = paths_of(with_(hyperparameter_ranges={"learning_rate": {"min_value": 0.1, "max_value": 0.2}},
                           static_hyperparameters={"rl.stop.reward": 5, "epochs": 3}))
    assert "does not understand 'learning_rate'" in found["hyperparameter_ranges.learning_rate"]
    assert "rl.stop.training_iteration" in found["static_hyperparameters.rl.stop.reward"]
    assert "rl.training.config.<key>" in found["static_hyperparameters.epochs"]


def test_stop_criteria_cannot_be_tuned() -> None:
    found = paths_of(with_(hyperparameter_ranges={"rl.stop.training_iteration": {"min_value": 1, "max_value": 5}}))
    assert "static_hyperparameters" in found["hyperparameter_ranges.rl.stop.training_iteration"]


def test_objective_the_image_does_not_emit() -> None:
    message = paths_of(with_(objective_metric="episode_reward_mean_foo"))["objective_metric"]
    assert "does not emit" in message
    assert "did you mean 'episode_reward_mean'" in message
    for name in metrics.METRIC_NAMES:
        validate_payload(with_(objective_metric=name))


def test_spot_wait_rules() -> None:
    assert "at least max_run_seconds" in paths_of(with_(max_run_seconds=3600, max_wait_seconds=1800))[
        "max_wait_seconds"]
    assert "only applies to spot" in paths_of(with_(use_spot=False, max_wait_seconds=7200))["max_wait_seconds"]
    limits = validate_payload(with_(use_spot=False)).run_limits()
    assert limits.spot is False
    assert limits.max_wait_seconds is None


def test_run_limit_defaults() -> None:
    limits = validate_payload(SEED).run_limits()
    assert (limits.max_run_seconds, limits.max_wait_seconds) == (3600, 7200)
    capped = validate_payload(SEED).run_limits(Guardrails(max_run_seconds=1200))
    assert capped.max_run_seconds == 1200


def test_time_stop_must_come_before_max_runtime() -> None:
    message = paths_of(with_(max_run_seconds=600, static_hyperparameters={"rl.stop.time_total_s": 600}))[
        "static_hyperparameters.rl.stop.time_total_s"]
    assert "kill the job" in message
    assert "540" in message


def test_more_than_50_tags() -> None:
    tags = {f"k{i}": "v" for i in range(49)}
    assert "at most 48" in paths_of(with_(tags=tags))["tags"]
    found = paths_of(with_(tags={"aws:owner": "me", "bad#key": "x"}))
    assert "reserved" in found["tags.aws:owner"]
    assert "'#'" in found["tags.bad#key"]


def test_multi_node_is_not_supported_yet() -> None:
    assert "multi-node training is not supported yet" in paths_of(with_(instance_count=2))["instance_count"]


def test_environment_variables() -> None:
    found = paths_of(with_(environment={"SM_HOSTS": "x", "1BAD": "y", "OK_VAR": "z" * 513}))
    assert "set by SageMaker or rltune" in found["environment.SM_HOSTS"]
    assert "letters, digits" in found["environment.1BAD"]
    assert "512" in found["environment.OK_VAR"]


def test_warm_start_shape() -> None:
    found = paths_of(with_(warm_start={"parents": ["a_b"], "type": "Transfer"}))
    assert "tuning job names" in found["warm_start.parents[0]"]
    assert "did you mean 'TransferLearning'" in found["warm_start.type"]
    assert "at most 5" in paths_of(with_(warm_start={"parents": [f"p{i}" for i in range(6)]}))["warm_start.parents"]


def test_completion_criteria_needs_one_criterion() -> None:
    assert "at least one" in paths_of(with_(completion_criteria={}))["completion_criteria"]
    assert "at least 3" in paths_of(with_(completion_criteria={"max_jobs_not_improving": 2}))[
        "completion_criteria.max_jobs_not_improving"]


def test_algorithm_values_are_checked() -> None:
    found = paths_of(with_(static_hyperparameters={"rl.algorithm": "PPX"}))
    assert "PPO" in found["static_hyperparameters.rl.algorithm"]


@pytest.mark.parametrize(("field", "value", "fragment"), [
    ("max_jobs", "4", "must be an integer, got string '4'"),
    ("max_jobs", 4.0, "must be an integer"),
    ("max_jobs", True, "must be an integer, got boolean true"),
    ("max_jobs", 0, "at least 1"),
    ("max_jobs", 501, "quota"),
    ("strategy", "bayesian", "did you mean 'Bayesian'"),
    ("use_spot", "yes", "true or false"),
    ("experiment", "-bad name", "letters, digits"),
    ("hyperparameter_ranges", [], "must be an object"),
])
def test_type_errors_name_the_field_and_the_fix(field: str, value: Any, fragment: str) -> None:
    assert fragment in paths_of(with_(**{field: value}))[field]


def test_abbreviated_enum_values_get_did_you_mean() -> None:
    found = paths_of(with_(hyperparameter_ranges={LR: {"min_value": 1e-5, "max_value": 1e-3, "scaling": "log"}},
                           strategy="hyper"))
    assert "did you mean 'Logarithmic'" in found[f"hyperparameter_ranges.{LR}.scaling"]
    assert "did you mean 'Hyperband'" in found["strategy"]


def test_a_range_that_is_a_bare_value() -> None:
    message = paths_of(with_(hyperparameter_ranges={LR: 0.01}))[f"hyperparameter_ranges.{LR}"]
    assert "static_hyperparameters" in message


def test_not_json_and_not_an_object() -> None:
    assert "not valid JSON" in issues_of("{")[0].message
    assert "must be a JSON object" in issues_of("[1]")[0].message
    assert "appears twice" in issues_of('{"max_jobs": 1, "max_jobs": 2}')[0].message
    assert "not UTF-8" in issues_of(b"\xff\xfe")[0].message


def test_missing_ranges() -> None:
    found = paths_of({"max_jobs": 2})
    assert "required" in found["hyperparameter_ranges"]
    assert "rl.training.config.lr" in found["hyperparameter_ranges"]


def test_schema_and_semantic_errors_are_reported_together() -> None:
    raw = with_(max_job=3, objective_metric="nope", instance_count=2, use_spot="maybe",
                hyperparameter_ranges={LR: {"min_value": 1, "max_value": 0.5}, "x.y": [1, 2]})
    found = paths_of(raw)
    assert {"max_job", "objective_metric", "instance_count", "use_spot", f"hyperparameter_ranges.{LR}.min_value",
            "hyperparameter_ranges.x.y"} <= set(found)


def test_a_broken_field_does_not_cause_knock_on_errors() -> None:
    found = paths_of(with_(max_jobs="two", max_parallel_jobs=2))
    assert set(found) == {"max_jobs"}  # no "max_parallel_jobs > max_jobs" from a defaulted max_jobs


def test_a_broken_range_is_not_also_reported_as_no_ranges() -> None:
    found = paths_of(with_(hyperparameter_ranges={LR: {"min_valu": 1e-5, "max_value": 1e-3}}))
    assert set(found) == {f"hyperparameter_ranges.{LR}.min_valu"}  # not "give at least one range to tune"
    assert "at least one range" in paths_of(with_(hyperparameter_ranges={}))["hyperparameter_ranges"]


def test_every_message_has_a_path_and_says_what_to_do() -> None:
    raw = with_(max_job=3, objective_metric="nope", instance_count=2, strategy="Grid", early_stopping="Sometimes",
                tags={f"t{i}": "v" for i in range(60)}, static_hyperparameters={LR: None, "bogus": 1})
    for issue in issues_of(raw):
        assert issue.path
        assert any(word in issue.message for word in ("use ", "set ", "remove", "Remove", "rename", "Rename",
                                                      "lower", "raise", "add ", "change", "keep", "write", "list"))


# --- guardrails ----------------------------------------------------------------------------------------------


def test_guardrails_name_the_cap_and_the_environment() -> None:
    guardrails = Guardrails(max_jobs=3, max_parallel_jobs=1, allowed_instance_types=("ml.c5.xlarge",),
                            max_run_seconds=600)
    found = paths_of(with_(max_jobs=4, max_parallel_jobs=2, instance_type="ml.p3.2xlarge", max_run_seconds=900),
                     guardrails=guardrails, environment="dev")
    assert "guardrails.max_jobs = 3" in found["max_jobs"]
    assert "'dev'" in found["max_jobs"]
    assert "guardrails.max_parallel_jobs = 1" in found["max_parallel_jobs"]
    assert "allowed_instance_types" in found["instance_type"]
    assert "ml.c5.xlarge" in found["instance_type"]
    assert "guardrails.max_run_seconds = 600" in found["max_run_seconds"]


def test_defaults_fit_under_guardrails() -> None:
    payload = validate_payload({"hyperparameter_ranges": SEED["hyperparameter_ranges"]},
                               Guardrails(max_parallel_jobs=1, max_run_seconds=900), "dev")
    assert payload.max_parallel_jobs == 1
    assert payload.run_limits(Guardrails(max_run_seconds=900)).max_run_seconds == 900


# --- schema and imports --------------------------------------------------------------------------------------


def test_committed_schema_matches_the_model() -> None:
    from rltune.cli.payload_commands import schema_text

    committed = (EXAMPLES / "payload.schema.json").read_text()
    assert committed == schema_text(), "examples/payload.schema.json is stale: run `make schema`"


def test_schema_describes_the_seed_shape() -> None:
    schema = payload_json_schema()
    assert schema["required"] == ["hyperparameter_ranges"]
    assert "$schema" in schema["properties"]
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]["objective_metric"]["enum"]) == set(metrics.METRIC_NAMES)
    range_schema = json.dumps(schema["properties"]["hyperparameter_ranges"])
    assert "ParameterRange" in range_schema
    assert "array" in range_schema


def test_lambda_safe_imports() -> None:
    code = ("import sys, rltune.payload, rltune.request; "
            "print(sorted(m for m in ('typer', 'rich', 'boto3', 'botocore', 'sagemaker', 'ray') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_model_validate_alone_is_not_marked_validated() -> None:
    assert not TuningPayload.model_validate(SEED).validated
    assert validate_payload(SEED).validated


def test_readme_documents_every_field() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Payload reference", 1)[1].split("\n## ", 1)[0]
    for model in (TuningPayload, *(m for m in _nested_models())):
        for name, field in model.model_fields.items():
            assert f"`{field.alias or name}`" in section, f"README's payload reference misses {name}"


def _nested_models() -> list[type]:
    from rltune.payload import CompletionCriteria, HyperbandConfig, ParameterRange, WarmStart

    return [CompletionCriteria, HyperbandConfig, ParameterRange, WarmStart]


def test_examples_validate_against_the_committed_schema() -> None:
    import jsonschema

    validator = jsonschema.Draft202012Validator(json.loads((EXAMPLES / "payload.schema.json").read_text()))
    for path in EXAMPLES.glob("*.json"):
        if path.name != "payload.schema.json":
            assert list(validator.iter_errors(json.loads(path.read_text()))) == [], path.name
    assert list(validator.iter_errors({"max_job": 1, "hyperparameter_ranges": {}}))  # editors flag typos too


def test_misspelt_keys_get_a_suggestion() -> None:
    found = paths_of(with_(hyperparameter_ranges={"rl.training.lr": {"min_value": 0.1, "max_value": 0.2}},
                           static_hyperparameters={"rl.stop.training_iterations": 5}))
    assert "did you mean 'rl.training.config.lr'" in found["hyperparameter_ranges.rl.training.lr"]
    assert "did you mean 'rl.stop.training_iteration'" in found["static_hyperparameters.rl.stop.training_iterations"]


def test_line_breaks_are_rejected_where_sagemaker_patterns_are_single_line() -> None:
    found = paths_of(with_(hyperparameter_ranges={LR: ["a\nb", "c"]}, static_hyperparameters={"rl.env": "x\r\ny"}))
    assert "line break" in found[f"hyperparameter_ranges.{LR}.values[0]"]
    assert "line break" in found["static_hyperparameters.rl.env"]
    validate_payload(with_(static_hyperparameters={"rl.env_config.lines": ["a\nb"]}))  # JSON escapes it
