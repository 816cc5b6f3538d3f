"""Hypothesis strategies for payloads: valid ones (for the request tests) and malformed ones (for fuzzing)."""

from __future__ import annotations

from typing import Any

import botocore.session
import regex
from hypothesis import strategies as st

from rltune import metrics
from rltune.environments import DeploymentTarget, Guardrails, VpcSettings
from rltune.payload import MAX_TRAINING_RUNTIME, rllib_config_keys

#: The seed project's payload, verbatim: it must keep validating with SageMaker SDK semantics.
SEED = {
    "hyperparameter_ranges": {"rl.training.config.lr": {"min_value": 1e-6, "max_value": 0.01}},
    "objective_metric": "episode_reward_mean",
    "max_jobs": 2,
    "max_parallel_jobs": 1,
}

IDENT = st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True)
NAMESPACES = ("rl.training.config.", "rl.env_config.", "rl.rl_module.", "rl.learners.", "rl.env_runners.")
#: Valid payloads draw RLlib keys every algorithm they may name accepts (the validator checks them against the
#: catalog); rl.env_config.* is open, so any identifier goes there.
_ALGORITHMS = ("PPO", "DQN", "SAC")
_CATALOG = rllib_config_keys()["algorithms"]
CONFIG_KEYS = sorted(ns + key for ns in NAMESPACES if ns != "rl.env_config."
                     for key in set.intersection(*(set(_CATALOG[a][ns]) for a in _ALGORITHMS)))
KEYS = st.one_of(st.builds(lambda ident: "rl.env_config." + ident, IDENT), st.sampled_from(CONFIG_KEYS))
#: CreateHyperParameterTuningJob's input shape, from the installed botocore model.
INPUT_SHAPE = (botocore.session.get_session().get_service_model("sagemaker")
               .operation_model("CreateHyperParameterTuningJob").input_shape)
FINITE = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12)


@st.composite
def integer_ranges(draw: st.DrawFn) -> dict[str, Any]:
    lo = draw(st.integers(-10**9, 10**9))
    hi = draw(st.integers(lo + 1, lo + 10**9))
    scalings = ["Auto", "Linear"] + (["Logarithmic"] if lo > 0 else [])
    spec: dict[str, Any] = {"min_value": lo, "max_value": hi}
    scaling = draw(st.sampled_from([None, *scalings]))
    if scaling:
        spec["scaling"] = scaling
    return spec


@st.composite
def continuous_ranges(draw: st.DrawFn) -> dict[str, Any]:
    numbers = st.one_of(FINITE, st.integers(-10**6, 10**6))
    lo = draw(numbers)
    hi = draw(numbers.filter(lambda x: x > lo))
    spec: dict[str, Any] = {"min_value": lo, "max_value": hi}
    if isinstance(lo, int) and isinstance(hi, int):
        spec["type"] = "Continuous"
    scalings = ["Auto", "Linear"]
    if lo > 0:
        scalings.append("Logarithmic")
    if lo >= 0 and hi < 1:
        scalings.append("ReverseLogarithmic")
    scaling = draw(st.sampled_from([None, *scalings]))
    if scaling:
        spec["scaling"] = scaling
    return spec


LINE_BREAKS = "\n\r\x85\u2028\u2029"
ONE_LINE = st.characters(codec="utf-8", exclude_characters=LINE_BREAKS)
TAG_TEXT = st.characters(categories=("L", "N", "Zs"), include_characters="_.:/=+-@")
CATEGORICAL_VALUE = st.one_of(
    st.text(ONE_LINE, max_size=30),
    st.integers(-10**6, 10**6),
    FINITE,
)


def _distinct(values: list[Any]) -> list[Any]:
    import json

    seen, out = set(), []
    for value in values:
        key = value if isinstance(value, str) else json.dumps(value)
        if key not in seen:
            seen.add(key)
            out.append(value)
    return out


categorical_ranges = st.lists(CATEGORICAL_VALUE, min_size=1, max_size=4).map(_distinct)


@st.composite
def range_maps(draw: st.DrawFn, categorical_only: bool = False) -> dict[str, Any]:
    # Grid runs every combination: 4 ranges of <= 4 values stay within SageMaker's 500 jobs.
    keys = draw(st.lists(KEYS, min_size=1, max_size=4 if categorical_only else 5, unique=True))
    kinds = [categorical_ranges] if categorical_only else [integer_ranges(), continuous_ranges(), categorical_ranges]
    return {key: draw(st.one_of(*kinds)) for key in keys}


@st.composite
def valid_payloads(draw: st.DrawFn) -> dict[str, Any]:
    strategy = draw(st.sampled_from(["Bayesian", "Random", "Grid", "Hyperband"]))
    ranges = draw(range_maps(categorical_only=strategy == "Grid"))
    payload: dict[str, Any] = {"hyperparameter_ranges": ranges, "strategy": strategy}
    if strategy != "Grid":
        payload["max_jobs"] = draw(st.integers(1, 50))
        payload["max_parallel_jobs"] = draw(st.integers(1, min(payload["max_jobs"], 10)))
    if strategy == "Hyperband":
        payload["hyperband"] = {"min_resource": 1, "max_resource": draw(st.integers(2, 20_000))}
    elif draw(st.booleans()):
        payload["early_stopping"] = draw(st.sampled_from(["Off", "Auto"]))
    payload["objective_metric"] = draw(st.sampled_from(metrics.METRIC_NAMES))
    payload["objective_type"] = draw(st.sampled_from(["Maximize", "Minimize"]))
    if draw(st.booleans()):
        payload["completion_criteria"] = {"target_objective_value": draw(FINITE),
                                          "max_jobs_not_improving": draw(st.integers(3, 100)),
                                          "complete_on_convergence": draw(st.booleans())}
    if draw(st.booleans()):
        payload["random_seed"] = draw(st.integers(0, 2**31 - 1))
    if draw(st.booleans()):
        parents = draw(st.lists(st.from_regex(r"[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?", fullmatch=True),
                                min_size=1, max_size=5, unique=True))
        payload["warm_start"] = {"parents": parents,
                                 "type": draw(st.sampled_from(["IdenticalDataAndAlgorithm", "TransferLearning"]))}
    static_keys = draw(st.lists(KEYS, max_size=5, unique=True).map(lambda ks: [k for k in ks if k not in ranges]))
    static: dict[str, Any] = {key: draw(st.one_of(st.text(ONE_LINE, max_size=40), st.integers(), FINITE, st.booleans(),
                                                  st.lists(st.integers(0, 512), max_size=4)))
                              for key in static_keys}
    static["rl.algorithm"] = draw(st.sampled_from(_ALGORITHMS))
    static["rl.env"] = "CartPole-v1"
    payload["static_hyperparameters"] = static
    payload["use_spot"] = draw(st.sampled_from([None, True, False]))
    if payload["use_spot"] is None:
        del payload["use_spot"]
    run = draw(st.integers(60, 28 * 24 * 3600))
    payload["max_run_seconds"] = run
    if payload.get("use_spot", True) and draw(st.booleans()):
        payload["max_wait_seconds"] = draw(st.integers(run, 28 * 24 * 3600))
    payload["max_retries"] = draw(st.integers(0, 30))
    payload["volume_size_gb"] = draw(st.integers(1, 16384))
    payload["instance_type"] = draw(st.sampled_from(["ml.c5.xlarge", "ml.m5.large", "ml.g4dn.xlarge"]))
    payload["tags"] = draw(st.dictionaries(st.text(TAG_TEXT, min_size=1, max_size=20)
                                           .filter(lambda k: not k.lower().startswith(("aws:", "rltune:"))),
                                           st.text(TAG_TEXT, max_size=30), max_size=5))
    payload["environment"] = draw(st.dictionaries(st.from_regex(r"MY_[A-Z0-9_]{1,10}", fullmatch=True),
                                                  st.text(max_size=50), max_size=4))
    if draw(st.booleans()):
        payload["experiment"] = draw(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,40}", fullmatch=True))
    return payload


def permissive_target(**changes: Any) -> DeploymentTarget:
    """A target whose caps never bind, with a KMS key and a VPC so every optional block renders."""
    base: dict[str, Any] = {
        "environment": "dev",
        "image_uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/rltune-training:abc123",
        "role_arn": "arn:aws:iam::123456789012:role/rltune-dev-sagemaker",
        "bucket": "rltune-dev-123456789012",
        "key_prefix": "rltune",
        "job_prefix": "rlt-dev-",
        "guardrails": Guardrails(max_jobs=10_000, max_parallel_jobs=100,
                                 allowed_instance_types=("ml.c5.xlarge", "ml.m5.large", "ml.g4dn.xlarge"),
                                 max_run_seconds=MAX_TRAINING_RUNTIME),
        "kms_key_id": "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "vpc": VpcSettings(subnet_ids=("subnet-0abc", "subnet-0def"), security_group_ids=("sg-0123",)),
    }
    base.update(changes)
    return DeploymentTarget(**base)


def model_violations(shape: Any, value: Any, path: str = "") -> list[str]:  # noqa: PLR0911
    """Every way `value` breaks `shape`: type, required, min/max, enum and (full-match) pattern."""
    problems: list[str] = []
    meta = shape.metadata
    kind = shape.type_name
    where = path or "<request>"
    if kind == "structure":
        if not isinstance(value, dict):
            return [f"{where}: expected an object"]
        for name in shape.required_members:
            if name not in value:
                problems.append(f"{where}: missing required {name}")
        for name, member in value.items():
            if name not in shape.members:
                problems.append(f"{where}: unknown member {name}")
                continue
            problems += model_violations(shape.members[name], member, f"{path}.{name}" if path else name)
        return problems
    if kind == "list":
        if not isinstance(value, list):
            return [f"{where}: expected a list"]
        size = len(value)
        for index, item in enumerate(value):
            problems += model_violations(shape.member, item, f"{path}[{index}]")
    elif kind == "map":
        if not isinstance(value, dict):
            return [f"{where}: expected a map"]
        size = len(value)
        for key, item in value.items():
            problems += model_violations(shape.key, key, f"{path}{{key {key!r}}}")
            problems += model_violations(shape.value, item, f"{path}[{key!r}]")
    elif kind == "string":
        if not isinstance(value, str):
            return [f"{where}: expected a string, got {type(value).__name__}"]
        size = len(value)
        if "enum" in meta and value not in meta["enum"]:
            problems.append(f"{where}: {value!r} not in the enum")
        if "pattern" in meta and not regex.fullmatch(meta["pattern"], value):
            problems.append(f"{where}: {value!r} does not match {meta['pattern']}")
    elif kind in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            return [f"{where}: expected an integer"]
        size = value
    elif kind in ("float", "double"):
        if not isinstance(value, int | float) or isinstance(value, bool):
            return [f"{where}: expected a number"]
        size = None
    elif kind == "boolean":
        if not isinstance(value, bool):
            problems.append(f"{where}: expected a boolean")
        size = None
    else:
        size = None
    if size is not None:
        if "min" in meta and size < meta["min"]:
            problems.append(f"{where}: {size} is below the minimum {meta['min']}")
        if "max" in meta and size > meta["max"]:
            problems.append(f"{where}: {size} is above the maximum {meta['max']}")
    return problems
