"""The tuning payload: one JSON document, validated once, by the same code everywhere.

The Step Functions console, the `rltune` command and the local backend all accept this payload. The
start Lambda imports this module, so it depends only on the standard library, pydantic and rltune's
pure contracts (no typer, rich or boto3).

Validation runs in two stages and reports every problem at once:
1. pydantic checks shapes and types (unknown fields get a "did you mean");
2. semantic checks (ranges, SageMaker limits, strategy rules, the trainer's key namespaces and the RLlib
   config keys it accepts (`rllib_config_keys.json`), spot settings, per-environment guardrails) run on
   whatever parsed, skipping only checks whose inputs were already reported as broken.
Each problem becomes an `Issue(path, message)` whose message says how to fix it.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from rltune import hyperparameters as hp
from rltune import metrics
from rltune.environments import Guardrails
from rltune.errors import Issue, PayloadError
from rltune.naming import TUNING_JOB_NAME_PATTERN, slugify

# --- SageMaker limits (botocore model and the tuning docs; where they disagree, the stricter one) -------------

#: The old limits page allows 20 searchable hyperparameters and counts every categorical value; the API
#: reference allows 30 ranges in total. We enforce the stricter: numeric ranges + categorical values <= 20.
MAX_TUNABLE_PARAMETERS = 20
MAX_CATEGORICAL_VALUES = 30  # CategoricalParameterRange.Values: 1-30
MAX_TOTAL_HYPERPARAMETERS = 100  # static + tunable
#: SageMaker adds `_tuning_objective_metric` to every child job, and it counts against the 100.
RESERVED_BY_SAGEMAKER = 1
MAX_HYPERPARAMETER_VALUE = 2500  # HyperParameterValue max length
MAX_HYPERPARAMETER_KEY = 256  # HyperParameterKey / ParameterKey max length
MAX_RANGE_VALUE = 256  # ParameterValue max length
MAX_TRAINING_JOBS = 500  # default quota for Bayesian/Random (limits page); the API has no maximum
MAX_PARALLEL_TRAINING_JOBS = 10  # default quota per tuning job (limits page)
MIN_TUNING_RUNTIME, MAX_TUNING_RUNTIME = 120, 15_768_000  # ResourceLimits.MaxRuntimeInSeconds
MAX_TRAINING_RUNTIME = 28 * 24 * 3600  # StoppingCondition.MaxRuntimeInSeconds: 28 days
MAX_HYPERBAND_RESOURCE = 20_000
MAX_TAGS = 50
MAX_ENVIRONMENT_VARIABLES = 48
MAX_ENV_VALUE = 512
MAX_WARM_START_PARENTS = 5
MAX_RANDOM_SEED = 2**31 - 1

#: Open namespaces whose sub-keys the trainer checks against RLlib's config; the payload checks them against
#: `rllib_config_keys.json`, generated from the trainer's own routing (`make key-catalog`). rl.env_config.* stays open.
CONFIG_KEY_NAMESPACES = ("rl.training.config.", "rl.env_runners.", "rl.learners.", "rl.reporting.", "rl.rl_module.")
CONFIG_KEY_CATALOG = "rllib_config_keys.json"


@lru_cache(maxsize=1)
def rllib_config_keys() -> dict[str, Any]:
    """The committed catalog: {"ray_version", "renamed", "own_keys", "algorithms": {algorithm: {namespace: [key]}}}."""
    return json.loads(resources.files("rltune").joinpath(CONFIG_KEY_CATALOG).read_text(encoding="utf-8"))


#: Tags and container variables the request builder adds itself; they count against SageMaker's limits.
BUILTIN_TAG_KEYS = ("rltune:experiment", "rltune:environment")
RESERVED_TAG_PREFIXES = ("aws:", "rltune:")
BUILTIN_ENVIRONMENT = ("RLTUNE_EXPERIMENT", "RLTUNE_ENVIRONMENT", "RAY_USAGE_STATS_ENABLED")
RESERVED_ENV_PREFIXES = ("SM_", "SAGEMAKER_", "AWS_", "RLTUNE_", "TRAINING_JOB_")

DEFAULT_MAX_JOBS = 10
DEFAULT_MAX_PARALLEL_JOBS = 2
DEFAULT_MAX_RUN_SECONDS = 3600
DEFAULT_INSTANCE_TYPE = "ml.c5.xlarge"
DEFAULT_VOLUME_SIZE_GB = 30
DEFAULT_MAX_RETRIES = 2

EXPERIMENT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
INSTANCE_TYPE_PATTERN = re.compile(r"^ml\.[a-z0-9-]+\.[a-z0-9-]+$")
ENV_KEY_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
TAG_EXTRA_CHARS = set("_.:/=+-@")
#: SageMaker's hyperparameter patterns are `.*`, and its (Java) `.` matches no line terminator.
LINE_BREAKS = ("\n", "\r", "\u0085", "\u2028", "\u2029")

Scaling = Literal["Auto", "Linear", "Logarithmic", "ReverseLogarithmic"]
RangeType = Literal["Integer", "Continuous", "Categorical"]
Strategy = Literal["Bayesian", "Random", "Grid", "Hyperband"]

_NUMBER_SCHEMA = {"type": "number"}
_SCALAR_SCHEMA = {"type": ["string", "number", "boolean"]}
_JSON_VALUE_SCHEMA = {"type": ["string", "number", "boolean", "array", "object"]}
CategoricalValue = Annotated[Any, WithJsonSchema(_SCALAR_SCHEMA)]

# Hints appended to pydantic's messages for fields whose constraint alone does not say how to fix it.
_FIELD_HINTS: dict[str, str] = {
    "experiment": "use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit (e.g. 'cartpole-ppo')",
    "max_jobs": f"SageMaker's default quota is {MAX_TRAINING_JOBS} training jobs per tuning job",
    "max_parallel_jobs": f"SageMaker's default quota is {MAX_PARALLEL_TRAINING_JOBS} parallel training jobs",
    "max_tuning_runtime_seconds": f"SageMaker accepts {MIN_TUNING_RUNTIME}-{MAX_TUNING_RUNTIME} seconds",
    "max_run_seconds": f"SageMaker allows at most {MAX_TRAINING_RUNTIME} seconds (28 days) per training job",
    "max_retries": "SageMaker allows 1-30 retry attempts; 0 turns retries off",
    "random_seed": f"use an integer from 0 to {MAX_RANDOM_SEED}",
    "warm_start.parents": "parents are existing tuning job names: 1-32 letters, digits and hyphens",
    "hyperband.max_resource": f"Hyperband allows at most {MAX_HYPERBAND_RESOURCE} iterations",
    "completion_criteria.max_jobs_not_improving": "SageMaker needs at least 3",
    "hyperparameter_ranges": (
        'e.g. {"rl.training.config.lr": {"min_value": 1e-05, "max_value": 0.001}, '
        '"rl.training.config.num_epochs": [4, 8]}'
    ),
}


class _Model(BaseModel):
    # strict: JSON types are what they look like ("4" is not 4, 4.0 is not an Integer bound, true is not 1).
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


def _categorical_shorthand(value: Any) -> Any:
    """`"key": [a, b, c]` is a Categorical range; anything else must be an object."""
    if isinstance(value, list):
        return {"type": "Categorical", "values": value}
    if isinstance(value, Mapping):
        return value
    raise PydanticCustomError(
        "range_shape",
        "a range is an object such as {{\"min_value\": 1, \"max_value\": 10}} or a list of values; "
        "a fixed value belongs in static_hyperparameters",
    )


class ParameterRange(_Model):
    """One tunable hyperparameter.

    After `validate_payload`, `type` is always set; Integer bounds are ints, Continuous bounds are numbers as
    written, Categorical ranges have `values` (the JSON values, not yet strings) and no bounds.
    """

    type: RangeType | None = Field(
        default=None,
        description="Integer, Continuous or Categorical. Inferred when omitted: int bounds -> Integer, "
        "float bounds -> Continuous, a list (or `values`) -> Categorical.",
    )
    min_value: Annotated[Any, WithJsonSchema(_NUMBER_SCHEMA)] = Field(default=None, description="Lower bound.")
    max_value: Annotated[Any, WithJsonSchema(_NUMBER_SCHEMA)] = Field(default=None, description="Upper bound.")
    values: list[CategoricalValue] | None = Field(
        default=None, description=f"Categorical values (1-{MAX_CATEGORICAL_VALUES} strings, numbers or booleans)."
    )
    scaling: Scaling = Field(
        default="Auto",
        description="How SageMaker samples a numeric range. Logarithmic needs min > 0; ReverseLogarithmic needs "
        "a Continuous range within [0, 1).",
    )

    def encoded_values(self) -> list[str]:
        """Categorical values as the strings the trainer receives."""
        return [hp.encode_value(v) for v in self.values or ()]

    def as_sagemaker_range(self, name: str) -> dict[str, Any]:
        """This range in `ParameterRanges` shape (the same dict the SageMaker SDK's `as_tuning_range` builds)."""
        if self.type == "Categorical":
            return {"Name": name, "Values": self.encoded_values()}
        return {
            "Name": name,
            "MinValue": hp.encode_value(self.min_value),
            "MaxValue": hp.encode_value(self.max_value),
            "ScalingType": self.scaling,
        }


RangeField = Annotated[
    ParameterRange,
    BeforeValidator(_categorical_shorthand,
                    json_schema_input_type=ParameterRange | Annotated[list[CategoricalValue], Field(min_length=1)]),
]


class HyperbandConfig(_Model):
    """Hyperband's resource bounds, in training iterations (each iteration emits the objective once)."""

    min_resource: int = Field(default=1, ge=1, description="Iterations before Hyperband may stop a job.")
    max_resource: int | None = Field(
        default=None, ge=1, le=MAX_HYPERBAND_RESOURCE,
        description="Iterations after which a job is stopped. Defaults to static rl.stop.training_iteration.",
    )


class CompletionCriteria(_Model):
    """When the tuning job may finish before `max_jobs` training jobs ran."""

    target_objective_value: float | None = Field(default=None, description="Stop once a job reaches this value.")
    max_jobs_not_improving: int | None = Field(
        default=None, ge=3, description="Stop after this many jobs fail to improve the best objective by 1%."
    )
    complete_on_convergence: bool | None = Field(default=None, description="Stop when SageMaker detects convergence.")


class WarmStart(_Model):
    """Start from what earlier tuning jobs learnt."""

    parents: list[Annotated[str, Field(pattern=TUNING_JOB_NAME_PATTERN.pattern)]] = Field(
        min_length=1, max_length=MAX_WARM_START_PARENTS, description="Names of 1-5 finished tuning jobs."
    )
    type: Literal["IdenticalDataAndAlgorithm", "TransferLearning"] = Field(
        default="TransferLearning",
        description="IdenticalDataAndAlgorithm needs the same image and static hyperparameters; "
        "TransferLearning allows changes.",
    )


class TuningPayload(_Model):
    """A tuning run. Only `hyperparameter_ranges` is required."""

    model_config = ConfigDict(
        title="rltune tuning payload",
    )

    schema_: str | None = Field(
        default=None, alias="$schema", description="Path or URL of this JSON Schema, for editors. Ignored."
    )
    experiment: str | None = Field(
        default=None, pattern=EXPERIMENT_PATTERN,
        description="Name of the experiment; part of the tuning job name and a tag. Defaults to '<algorithm>-<env>'.",
    )
    hyperparameter_ranges: dict[str, RangeField] = Field(
        description="Tunable hyperparameters: {\"min_value\", \"max_value\"} (int bounds -> Integer, float bounds "
        "-> Continuous) or a list of values (Categorical). Keys use the trainer's rl.* namespaces.",
    )
    objective_metric: str = Field(
        default=metrics.DEFAULT_OBJECTIVE,
        json_schema_extra={"enum": list(metrics.METRIC_NAMES)},
        description="A metric the training image emits; episode_reward_mean is env_runners/episode_return_mean.",
    )
    objective_type: Literal["Maximize", "Minimize"] = "Maximize"
    strategy: Strategy = Field(default="Bayesian", description="How SageMaker picks the next hyperparameters.")
    hyperband: HyperbandConfig | None = Field(default=None, description="Only with strategy Hyperband.")
    early_stopping: Literal["Off", "Auto"] = Field(
        default="Off", description="Auto lets SageMaker stop jobs unlikely to beat the best; Hyperband needs Off."
    )
    completion_criteria: CompletionCriteria | None = None
    random_seed: int | None = Field(default=None, ge=0, le=MAX_RANDOM_SEED)
    warm_start: WarmStart | None = None
    max_jobs: int = Field(
        default=DEFAULT_MAX_JOBS, ge=1, le=MAX_TRAINING_JOBS,
        description="Training jobs to run. Grid computes it (every combination); do not set it with Grid.",
    )
    max_parallel_jobs: int = Field(
        default=DEFAULT_MAX_PARALLEL_JOBS, ge=1, le=MAX_PARALLEL_TRAINING_JOBS,
        description="Training jobs running at once (at most max_jobs).",
    )
    max_tuning_runtime_seconds: int | None = Field(
        default=None, ge=MIN_TUNING_RUNTIME, le=MAX_TUNING_RUNTIME,
        description="Cap on the whole tuning job. Defaults to enough for every wave of jobs.",
    )
    static_hyperparameters: dict[str, Annotated[Any, WithJsonSchema(_JSON_VALUE_SCHEMA)]] = Field(
        default_factory=dict,
        description="Fixed hyperparameters (rl.algorithm, rl.env, rl.stop.*, ...). Non-strings are sent as JSON.",
    )
    instance_type: str = Field(default=DEFAULT_INSTANCE_TYPE, description="SageMaker training instance type.")
    instance_count: int = Field(default=1, ge=1, description="Must be 1: multi-node training is not supported yet.")
    volume_size_gb: int = Field(default=DEFAULT_VOLUME_SIZE_GB, ge=1, le=16384)
    use_spot: bool | None = Field(
        default=None, description="Managed spot training. Unset means the environment's default (spot in most)."
    )
    max_run_seconds: int | None = Field(
        default=None, ge=60, le=MAX_TRAINING_RUNTIME,
        description=f"Training time per job. Defaults to {DEFAULT_MAX_RUN_SECONDS} (or the environment's cap).",
    )
    max_wait_seconds: int | None = Field(
        default=None, ge=60, le=MAX_TRAINING_RUNTIME,
        description="Spot only: training plus waiting for capacity, across retries. Defaults to 2x max_run_seconds.",
    )
    max_retries: int = Field(default=DEFAULT_MAX_RETRIES, ge=0, le=30, description="Retry attempts per job.")
    environment: dict[str, str] = Field(default_factory=dict, description="Extra container environment variables.")
    tags: dict[str, str] = Field(default_factory=dict, description="Tags on the tuning job (key: value).")

    # Set by validate_payload once ranges and defaults are resolved; a bare model_validate() is not enough.
    _validated: bool = PrivateAttr(default=False)

    @property
    def validated(self) -> bool:
        return self._validated

    # --- resolved views -----------------------------------------------------------------------------------

    @property
    def algorithm(self) -> str:
        value = self.static_hyperparameters.get(hp.ALGORITHM_KEY, hp.DEFAULT_ALGORITHM)
        return value if isinstance(value, str) else hp.DEFAULT_ALGORITHM

    @property
    def env(self) -> str:
        value = self.static_hyperparameters.get(hp.ENV_KEY, hp.DEFAULT_ENV)
        return value if isinstance(value, str) else hp.DEFAULT_ENV

    def parallel_jobs(self, guardrails: Guardrails | None = None) -> int:
        """`max_parallel_jobs` as given, or its default clamped to `max_jobs` and the environment's cap."""
        if "max_parallel_jobs" in self.model_fields_set or guardrails is None:
            return self.max_parallel_jobs
        return max(1, min(self.max_parallel_jobs, guardrails.max_parallel_jobs))

    def spot(self, spot_by_default: bool = True) -> bool:
        """Whether jobs run on spot: `use_spot`, or the environment's default when unset."""
        return spot_by_default if self.use_spot is None else self.use_spot

    def run_limits(self, guardrails: Guardrails | None = None, spot_by_default: bool = True) -> RunLimits:
        """Per-job and whole-run time limits, with defaults filled in."""
        spot = self.spot(spot_by_default)
        max_run = self.max_run_seconds
        if max_run is None:
            max_run = DEFAULT_MAX_RUN_SECONDS if guardrails is None else min(DEFAULT_MAX_RUN_SECONDS,
                                                                            guardrails.max_run_seconds)
        max_wait = None
        if spot:
            max_wait = self.max_wait_seconds
            if max_wait is None:
                max_wait = max(max_run, min(2 * max_run, MAX_TRAINING_RUNTIME))
        tuning = self.max_tuning_runtime_seconds
        if tuning is None:
            waves = math.ceil(self.max_jobs / self.parallel_jobs(guardrails))
            tuning = waves * (max_wait or max_run) + 600
            tuning = min(MAX_TUNING_RUNTIME, max(MIN_TUNING_RUNTIME, tuning))
        return RunLimits(spot=spot, max_run_seconds=max_run, max_wait_seconds=max_wait, tuning_runtime_seconds=tuning)

    def stop_time_total_s(self, limits: RunLimits) -> int | float:
        """The trainer's `rl.stop.time_total_s`: the user's, or a margin before SageMaker's MaxRuntime kills the job."""
        user = self.static_hyperparameters.get(hp.TIME_TOTAL_KEY)
        if user is not None:
            return user
        return auto_time_total_s(limits.max_run_seconds)

    def parameter_ranges(self) -> dict[str, list[dict[str, Any]]]:
        """`HyperParameterTuningJobConfig.ParameterRanges`, grouped by type, keys in payload order."""
        groups: dict[str, list[dict[str, Any]]] = {
            "IntegerParameterRanges": [], "ContinuousParameterRanges": [], "CategoricalParameterRanges": [],
        }
        for name, rng in self.hyperparameter_ranges.items():
            groups[f"{rng.type}ParameterRanges"].append(rng.as_sagemaker_range(name))
        return groups

    def grid_size(self) -> int:
        """How many combinations a Grid search runs (the product of the categorical value counts)."""
        return math.prod(len(r.values or ()) for r in self.hyperparameter_ranges.values())


@dataclass(frozen=True)
class RunLimits:
    spot: bool
    max_run_seconds: int
    max_wait_seconds: int | None
    tuning_runtime_seconds: int


def auto_time_total_s(max_run_seconds: int) -> int:
    """Stop training 10% (30 s to 10 min) before MaxRuntime, leaving time to checkpoint and export the model."""
    margin = min(600, max(30, max_run_seconds // 10))
    return max(1, max_run_seconds - margin)


# --- entry point ---------------------------------------------------------------------------------------------


def validate_payload(
    raw: Mapping[str, Any] | str | bytes,
    guardrails: Guardrails | None = None,
    environment: str | None = None,
    *,
    spot_by_default: bool = True,
) -> TuningPayload:
    """Parse and check a payload; raise `PayloadError` listing every problem, each with its path and fix.

    `guardrails` are the caps of the deployment `environment` (its name is used in messages). Without
    them only SageMaker's and the trainer's rules apply. `spot_by_default` is the environment's spot
    setting, which an unset `use_spot` follows.
    """
    issues: list[Issue] = []
    data = _load(raw, issues)
    if data is None:
        raise PayloadError(issues)

    broken: set[str] = set()
    try:
        payload = TuningPayload.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            issues.append(_issue_from_pydantic(error))
            broken.add(_broken_key(error["loc"]))
        payload = _partial(data, broken)

    if payload is not None:
        issues.extend(_Checker(payload, broken, guardrails, environment, spot_by_default=spot_by_default).run())
    if issues:
        raise PayloadError(_dedupe(issues))
    assert payload is not None
    payload._validated = True
    return payload


def load_payload_file(path: str) -> TuningPayload:
    """Read and validate a payload file (no guardrails)."""
    with open(path, "rb") as handle:
        return validate_payload(handle.read())


def payload_json_schema() -> dict[str, Any]:
    """The payload's JSON Schema (what `rltune schema` prints), stable across runs."""
    schema = TuningPayload.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def target_issues(
    payload: TuningPayload, guardrails: Guardrails | None, environment: str | None, spot_by_default: bool = True
) -> list[Issue]:
    """Problems that depend on where the payload runs: caps, spot default, time limits."""
    checker = _Checker(payload, set(), guardrails, environment, spot_by_default=spot_by_default)
    checker.check_run_limits()
    checker.check_guardrails()
    return checker.issues


# --- stage 0: raw input --------------------------------------------------------------------------------------


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"key {key!r} appears twice in one object; keep one")
        result[key] = value
    return result


def _load(raw: Any, issues: list[Issue]) -> dict[str, Any] | None:
    if isinstance(raw, bytes | bytearray):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            issues.append(Issue("", f"the payload is not UTF-8 text ({exc.reason} at byte {exc.start}); "
                                    "save the file as UTF-8"))
            return None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw, object_pairs_hook=_no_duplicate_keys)
        except json.JSONDecodeError as exc:
            issues.append(Issue("", f"the payload is not valid JSON: {exc.msg} at line {exc.lineno} column "
                                    f"{exc.colno}; fix the JSON syntax"))
            return None
        except ValueError as exc:  # duplicate keys
            issues.append(Issue("", f"the payload is ambiguous: {exc}"))
            return None
        except RecursionError:
            issues.append(Issue("", "the payload nests too deeply; flatten it"))
            return None
    if not isinstance(raw, Mapping):
        issues.append(Issue("", f"the payload must be a JSON object, got {_kind(raw)}; wrap it in {{...}} with at "
                                "least \"hyperparameter_ranges\""))
        return None
    return dict(raw)


# --- stage 1: pydantic errors -> issues ----------------------------------------------------------------------

_KINDS = {
    "int": "an integer", "float": "a number", "string": "a string", "bool": "true or false",
    "dict": "an object", "list": "a list", "model": "an object", "model_attributes": "an object",
}


def _kind(value: Any) -> str:  # noqa: PLR0911
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"number {value!r}"
    if isinstance(value, str):
        return f"string {_short(value)}"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _path(loc: Sequence[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "":
            out += '[""]'  # an empty key still gets a visible path
        else:
            out += ("." if out else "") + str(part)
    return out


def _schema_path(loc: Sequence[Any]) -> str:
    """The field path without user-chosen dict keys, for hint lookup (e.g. 'warm_start.parents')."""
    parts = [p for p in loc if isinstance(p, str)]
    if parts and parts[0] in _DICT_FIELDS:
        return parts[0] if len(parts) == 1 else parts[0] + ".*." + ".".join(parts[2:])
    return ".".join(parts)


_DICT_FIELDS = ("hyperparameter_ranges", "static_hyperparameters", "environment", "tags")


def _model_at(loc: Sequence[Any]) -> type[BaseModel] | None:
    """The pydantic model that owns the last element of `loc` (for listing its fields)."""
    model: type[BaseModel] | None = TuningPayload
    parts = list(loc[:-1])
    index = 0
    while index < len(parts) and model is not None:
        name = parts[index]
        field = _field_by_alias(model, name)
        if field is None:
            return None
        if name == "hyperparameter_ranges":
            model = ParameterRange
            index += 2  # skip the user's key
            continue
        model = {"hyperband": HyperbandConfig, "completion_criteria": CompletionCriteria,
                 "warm_start": WarmStart}.get(name)
        index += 1
    return model if index == len(parts) else None


def _field_by_alias(model: type[BaseModel], name: Any) -> Any:
    for field_name, field in model.model_fields.items():
        if (field.alias or field_name) == name:
            return field
    return None


def _field_names(model: type[BaseModel]) -> list[str]:
    return [field.alias or name for name, field in model.model_fields.items()]


def _did_you_mean(word: str, options: Sequence[str]) -> str | None:
    matches = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    if matches:
        return matches[0]
    lowered = {o.lower(): o for o in options}
    if word.lower() in lowered:
        return lowered[word.lower()]
    # An abbreviation ('log' -> 'Logarithmic') names the one option it starts.
    starts = [o for o in options if len(word) >= 3 and o.lower().startswith(word.lower())]
    return starts[0] if len(starts) == 1 else None


def _issue_from_pydantic(error: Mapping[str, Any]) -> Issue:  # noqa: PLR0911
    loc = tuple(error["loc"])
    path = _path(loc)
    kind = error["type"]
    ctx = error.get("ctx") or {}
    value = error.get("input")
    hint = _FIELD_HINTS.get(_schema_path(loc))

    if kind == "extra_forbidden":
        field = str(loc[-1])
        model = _model_at(loc)
        known = _field_names(model) if model else []
        known = [k for k in known if k != "$schema"]
        guess = _did_you_mean(field, known)
        if guess:
            return Issue(path, f"unknown field {field!r}; did you mean {guess!r}? Rename it.")
        return Issue(path, f"unknown field {field!r}; remove it (fields allowed here: {', '.join(known)})")
    if kind == "missing":
        field = str(loc[-1])
        example = f" ({hint})" if hint else ""
        return Issue(path, f"the required field {field!r} is missing; add it{example}")
    if kind == "literal_error":
        allowed = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        guess = _did_you_mean(str(value), allowed) if isinstance(value, str) else None
        tip = f"; did you mean {guess!r}?" if guess else ""
        return Issue(path, f"{_short(value)} is not allowed; use one of {', '.join(allowed)}{tip}")
    if kind == "range_shape":
        return Issue(path, f"got {_kind(value)}: {error['msg']}")
    for prefix, noun in _KINDS.items():
        if kind in (f"{prefix}_type", f"{prefix}_parsing", f"{prefix}_from_float"):
            if kind == "int_from_float":
                return Issue(path, f"must be a whole number, got {value!r}; drop the fraction (e.g. {int(value)})")
            return Issue(path, f"must be {noun}, got {_kind(value)}; write it as {noun}"
                               + (f" ({hint})" if hint else ""))
    bounds = {
        "greater_than_equal": ("at least", "ge"), "greater_than": ("greater than", "gt"),
        "less_than_equal": ("at most", "le"), "less_than": ("less than", "lt"),
    }
    if kind in bounds:
        words, key = bounds[kind]
        limit = ctx.get(key)
        extra = f"; {hint}" if hint else ""
        return Issue(path, f"must be {words} {limit}, got {value!r}; change it to a value {words} {limit}{extra}")
    if kind == "finite_number":
        return Issue(path, "must be a finite number (not NaN or infinity); use a real number")
    if kind in ("too_short", "too_long"):
        extra = f"; {hint}" if hint else ""
        return Issue(path, f"{error['msg'].rstrip('.').lower()}; adjust the number of items{extra}")
    if kind == "string_pattern_mismatch":
        extra = hint or f"match the pattern {ctx.get('pattern')}"
        return Issue(path, f"{_short(value)} is not a valid value; {extra}")
    return Issue(path, f"{error['msg'].rstrip('.')}; got {_kind(value)}" + (f" ({hint})" if hint else ""))


def _broken_key(loc: Sequence[Any]) -> str:
    """What a schema error invalidates: a dict entry ('static_hyperparameters.rl.x') or a whole top-level field."""
    if not loc:
        return ""
    head = str(loc[0])
    if head in _DICT_FIELDS and len(loc) >= 2:
        return f"{head}.{loc[1]}"
    return head


def _partial(data: Mapping[str, Any], broken: set[str]) -> TuningPayload | None:
    """The payload without the parts that failed the schema, so semantic checks can still run on the rest."""
    cleaned: dict[str, Any] = {}
    for key, value in data.items():
        if key in broken:
            continue
        if key in _DICT_FIELDS and isinstance(value, Mapping):
            cleaned[key] = {k: v for k, v in value.items() if f"{key}.{k}" not in broken}
        else:
            cleaned[key] = value
    cleaned.setdefault("hyperparameter_ranges", {})
    try:
        return TuningPayload.model_validate(cleaned)
    except ValidationError:
        return None


def _dedupe(issues: Sequence[Issue]) -> list[Issue]:
    seen: set[tuple[str, str]] = set()
    out = []
    for issue in issues:
        key = (issue.path, issue.message)
        if key not in seen:
            seen.add(key)
            out.append(issue)
    return out


# --- stage 2: semantic checks --------------------------------------------------------------------------------


def _tag_char(char: str) -> bool:
    """A letter, number or separator: the \\p{L}, \\p{N} and \\p{Z} of SageMaker's tag pattern."""
    return unicodedata.category(char)[0] in "LNZ"


def _has_line_break(text: str) -> bool:
    return any(brk in text for brk in LINE_BREAKS)


def _key_suggestion(key: str) -> str | None:
    """The understood key closest to a misspelt one ('rl.training.lr' -> 'rl.training.config.lr')."""
    tail = key.rsplit(".", 1)[-1]
    candidates = [*hp.EXACT_KEYS]
    for namespace in hp.NAMESPACES:
        allowed = hp.CLOSED_NAMESPACES.get(namespace)
        candidates += [namespace + k for k in allowed] if allowed else [namespace + tail]
    matches = difflib.get_close_matches(key, candidates, n=1, cutoff=0.75)
    return matches[0] if matches and matches[0] != key else None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_finite_number(value: Any) -> bool:
    return _is_number(value) and math.isfinite(value)


def _json_ok(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return False
    return True


class _Checker:
    """Semantic rules; each appends Issues and skips itself when an input it needs was already reported broken."""

    def __init__(
        self,
        payload: TuningPayload,
        broken: set[str],
        guardrails: Guardrails | None,
        environment: str | None,
        spot_by_default: bool = True,
    ) -> None:
        self.p = payload
        self.broken = broken
        self.guardrails = guardrails
        self.environment = environment
        self.spot_by_default = spot_by_default
        self.issues: list[Issue] = []
        self.ranges_ok = not any(b == "hyperparameter_ranges" or b.startswith("hyperparameter_ranges.")
                                 for b in broken)

    def ok(self, *fields: str) -> bool:
        return not any(f in self.broken for f in fields)

    def add(self, path: str, message: str) -> None:
        self.issues.append(Issue(path, message))

    def run(self) -> list[Issue]:
        self.check_ranges()
        self.check_static()
        self.check_counts()
        self.check_objective()
        self.check_strategy()
        self.check_jobs()
        self.check_resources()
        self.check_run_limits()
        self.check_tags_and_environment()
        self.check_misc()
        self.check_guardrails()
        self.resolve()
        return self.issues

    # ranges ---------------------------------------------------------------------------------------------------

    def check_ranges(self) -> None:
        ranges = self.p.hyperparameter_ranges
        if not ranges and self.ranges_ok:  # a range reported broken above was given, just not valid
            self.add("hyperparameter_ranges", "give at least one range to tune, e.g. "
                                              '{"rl.training.config.lr": {"min_value": 1e-05, "max_value": 0.001}}')
        for key, rng in ranges.items():
            base = f"hyperparameter_ranges.{key}"
            self._check_key(base, key)
            self._check_config_key(base, key)
            if key.startswith(("rl.stop.", "rl.checkpoint.")):
                self.add(base, f"{key!r} controls when training stops or checkpoints; it cannot be tuned. "
                               "Move it to static_hyperparameters")
            resolved = self._resolve_range(base, key, rng)
            if resolved is not None:
                ranges[key] = resolved

    def _check_key(self, path: str, key: str) -> None:
        problem = hp.key_problem(key)
        if problem:
            guess = _key_suggestion(key)
            self.add(path, f"did you mean {guess!r}? " + problem if guess else problem)
        if len(key) > MAX_HYPERPARAMETER_KEY:
            self.add(path, f"the key is {len(key)} characters; SageMaker allows {MAX_HYPERPARAMETER_KEY}. Shorten it")
        if _has_line_break(key):
            self.add(path, "the key contains a line break, which SageMaker rejects; remove it")

    def _config_key_algorithms(self) -> tuple[str, ...]:
        """The algorithms every child job may run: a tuned rl.algorithm's valid values, else the static one."""
        tuned = self.p.hyperparameter_ranges.get(hp.ALGORITHM_KEY)
        if tuned is not None:
            return tuple(dict.fromkeys(v for v in tuned.values or () if isinstance(v, str) and v in hp.ALGORITHMS))
        algorithm = self.p.static_hyperparameters.get(hp.ALGORITHM_KEY, hp.DEFAULT_ALGORITHM)
        return (algorithm,) if isinstance(algorithm, str) and algorithm in hp.ALGORITHMS else ()

    def _check_config_key(self, path: str, key: str) -> None:
        """A key in an RLlib namespace must be one the trainer accepts for the algorithm (typos fail here, before
        any training job is paid for). Only the first dotted segment names the setting (`model.fcnet_hiddens`)."""
        namespace = hp.namespace_of(key)
        if namespace not in CONFIG_KEY_NAMESPACES:  # not understood, an exact key, or a namespace without a catalog
            return
        name = key[len(namespace):].split(".", 1)[0]
        catalog = rllib_config_keys()
        renamed = catalog["renamed"]
        for algorithm in self._config_key_algorithms():
            accepted = catalog["algorithms"][algorithm]
            if name in accepted[namespace]:
                continue
            # The builder's own namespace first: rl.training.config.* accepts every builder's keys.
            elsewhere = [ns for ns in (*CONFIG_KEY_NAMESPACES[1:], CONFIG_KEY_NAMESPACES[0])
                         if ns != namespace and name in accepted[ns]]
            guess = _did_you_mean(name, accepted[namespace])
            if guess in renamed and renamed[guess] in accepted[namespace]:
                guess = renamed[guess]  # 'num_sgd' -> num_sgd_iter, whose current name is num_epochs
            message = (f"{name!r} is not among the {namespace}* keys {algorithm} accepts "
                       f"(RLlib {catalog['ray_version']}); ")
            if name in catalog["own_keys"]:
                message += f"set it with {catalog['own_keys'][name]} instead"
            elif elsewhere:
                message += f"it belongs under {elsewhere[0]}*: use {elsewhere[0] + name!r}"
            elif guess:
                message += f"did you mean {namespace + guess!r}? Rename it"
            else:
                others = [a for a in hp.ALGORITHMS if name in catalog["algorithms"][a][namespace]]
                message += (f"only {', '.join(others)} accept it; remove it or change rl.algorithm" if others else
                            f"remove it, or use a setting of {hp.NAMESPACES[namespace]}")
            self.add(path, message)
            return

    def _resolve_range(self, base: str, key: str, rng: ParameterRange) -> ParameterRange | None:
        has_bounds = rng.min_value is not None or rng.max_value is not None
        kind = rng.type or ("Categorical" if rng.values is not None else None)
        if rng.values is not None and has_bounds:
            self.add(base, "give either values (Categorical) or min_value/max_value (Integer/Continuous), not both")
            return None
        if kind == "Categorical":
            return self._resolve_categorical(base, key, rng)
        if rng.values is not None:
            self.add(f"{base}.values", f"values only apply to Categorical ranges; set \"type\": \"Categorical\" or "
                                       f"replace values with min_value/max_value for a {kind} range")
            return None
        return self._resolve_numeric(base, rng, kind)

    def _resolve_categorical(self, base: str, key: str, rng: ParameterRange) -> ParameterRange | None:
        values = rng.values
        if values is None or not values:
            self.add(f"{base}.values", "a Categorical range needs 1 or more values, e.g. [64, 128, 256]")
            return None
        good = True
        if rng.scaling != "Auto":
            self.add(f"{base}.scaling", "scaling applies to numeric ranges only; remove it from this Categorical range")
            good = False
        if len(values) > MAX_CATEGORICAL_VALUES:
            self.add(f"{base}.values", f"{len(values)} values; SageMaker allows at most {MAX_CATEGORICAL_VALUES} in a "
                                       "categorical range. Drop some, or use a numeric range")
            good = False
        seen: dict[str, int] = {}
        for index, value in enumerate(values):
            where = f"{base}.values[{index}]"
            if not (isinstance(value, str | bool) or _is_finite_number(value)):
                self.add(where, f"got {_kind(value)}; categorical values are strings, finite numbers or booleans")
                good = False
                continue
            text = hp.encode_value(value)
            if len(text) > MAX_RANGE_VALUE:
                self.add(where, f"the value is {len(text)} characters; SageMaker allows {MAX_RANGE_VALUE}. Shorten it")
                good = False
            if _has_line_break(text):
                self.add(where, "the value contains a line break, which SageMaker rejects; remove it")
                good = False
            if text in seen:
                self.add(where, f"duplicate of values[{seen[text]}] ({text!r}); remove one")
                good = False
            seen.setdefault(text, index)
            if key == hp.ALGORITHM_KEY and value not in hp.ALGORITHMS:
                self.add(where, f"unknown algorithm {_short(value)}; use one of {', '.join(hp.ALGORITHMS)}")
                good = False
        if not good:
            return None
        return ParameterRange.model_construct(type="Categorical", values=list(values), scaling="Auto",
                                              min_value=None, max_value=None)

    def _resolve_numeric(self, base: str, rng: ParameterRange, kind: str | None) -> ParameterRange | None:
        lo, hi = rng.min_value, rng.max_value
        good = True
        for name, value in (("min_value", lo), ("max_value", hi)):
            if value is None:
                self.add(f"{base}.{name}", f"{name} is missing; a numeric range needs min_value and max_value "
                                           "(or give a list of values for a Categorical range)")
                good = False
            elif not _is_finite_number(value):
                self.add(f"{base}.{name}", f"must be a finite number, got {_kind(value)}; write it without quotes, "
                                           "e.g. 0.001 or 64")
                good = False
        if not good:
            return None
        if kind is None:
            kind = "Integer" if isinstance(lo, int) and isinstance(hi, int) else "Continuous"
        if kind == "Integer":
            for name, value in (("min_value", lo), ("max_value", hi)):
                if isinstance(value, float) and not value.is_integer():
                    self.add(f"{base}.{name}", f"an Integer range needs whole-number bounds, got {value!r}; round "
                                               "it or use \"type\": \"Continuous\"")
                    good = False
            if not good:
                return None
            lo, hi = int(lo), int(hi)
        # Continuous bounds keep the number as written (1 stays "1"), exactly as the SageMaker SDK sends it.
        if lo >= hi:
            self.add(f"{base}.min_value", f"min_value ({lo!r}) must be less than max_value ({hi!r}); swap them or "
                                          "widen the range (a fixed value belongs in static_hyperparameters)")
            good = False
        if rng.scaling == "Logarithmic" and lo <= 0:
            self.add(f"{base}.scaling", f"Logarithmic scaling needs min_value > 0, got {lo!r}; raise min_value or "
                                        "use Linear scaling")
            good = False
        if rng.scaling == "ReverseLogarithmic":
            if kind == "Integer":
                self.add(f"{base}.scaling", "ReverseLogarithmic scaling works only for Continuous ranges within "
                                            "[0, 1); use Linear or Logarithmic for an Integer range")
                good = False
            elif not (lo >= 0 and hi < 1):
                self.add(f"{base}.scaling", f"ReverseLogarithmic scaling needs 0 <= min_value and max_value < 1, got "
                                            f"[{lo!r}, {hi!r}]; narrow the range or use Linear/Logarithmic scaling")
                good = False
        if not good:
            return None
        return ParameterRange.model_construct(type=kind, min_value=lo, max_value=hi, scaling=rng.scaling, values=None)

    # static hyperparameters -----------------------------------------------------------------------------------

    def check_static(self) -> None:
        for key, value in self.p.static_hyperparameters.items():
            path = f"static_hyperparameters.{key}"
            self._check_key(path, key)
            self._check_config_key(path, key)
            if key in self.p.hyperparameter_ranges or f"hyperparameter_ranges.{key}" in self.broken:
                self.add(path, f"{key!r} is also in hyperparameter_ranges; a key is either tuned or static. "
                               "Remove one of them")
            if value is None or not _json_ok(value):
                self.add(path, f"got {_kind(value)}; a static value is a string, a finite number, a boolean, "
                               "or a list/object of those")
                continue
            text = hp.encode_value(value)
            if len(text) > MAX_HYPERPARAMETER_VALUE:
                self.add(path, f"the value is {len(text)} characters once encoded; SageMaker allows "
                               f"{MAX_HYPERPARAMETER_VALUE}. Shorten it")
            if _has_line_break(text):
                self.add(path, "the value contains a line break, which SageMaker rejects; remove it (inside a "
                               "list or object it would be escaped)")
            self._check_known_static(path, key, value)

    def _check_known_static(self, path: str, key: str, value: Any) -> None:
        if key == hp.ALGORITHM_KEY and value not in hp.ALGORITHMS:
            self.add(path, f"unknown algorithm {_short(value)}; use one of {', '.join(hp.ALGORITHMS)}")
        elif key == hp.ENV_KEY and not (isinstance(value, str) and value):
            self.add(path, f"got {_kind(value)}; rl.env is a Gymnasium environment id such as 'CartPole-v1'")
        elif key == hp.SEED_KEY and not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
            self.add(path, f"got {_kind(value)}; rl.seed is a whole number >= 0")
        elif key.startswith("rl.stop.") and not (_is_finite_number(value) and value > 0):
            self.add(path, f"got {_kind(value)}; a stop criterion is a number > 0, written without quotes")
        elif key in ("rl.checkpoint.every_n_iterations", "rl.checkpoint.keep") and not (
            isinstance(value, int) and not isinstance(value, bool) and value >= 1
        ):
            self.add(path, f"got {_kind(value)}; {key} is a whole number >= 1")
        elif key == "rl.checkpoint.every_seconds" and not (_is_finite_number(value) and value > 0):
            self.add(path, f"got {_kind(value)}; rl.checkpoint.every_seconds is a number of seconds > 0")

    def check_counts(self) -> None:
        ranges = self.p.hyperparameter_ranges
        tunable = sum(len(r.values or ()) if r.type == "Categorical" else 1 for r in ranges.values())
        if tunable > MAX_TUNABLE_PARAMETERS:
            self.add("hyperparameter_ranges", f"{tunable} searchable values (each numeric range counts 1, each "
                                              f"categorical value counts 1); SageMaker allows at most "
                                              f"{MAX_TUNABLE_PARAMETERS}. Tune fewer hyperparameters or fewer values")
        statics = self.p.static_hyperparameters
        added = (0 if hp.TIME_TOTAL_KEY in statics else 1) + RESERVED_BY_SAGEMAKER
        total = len(statics) + len(ranges) + added
        if total > MAX_TOTAL_HYPERPARAMETERS:
            excess = total - MAX_TOTAL_HYPERPARAMETERS
            self.add("static_hyperparameters", f"{len(statics)} static + {len(ranges)} tunable + {added} added "
                                               f"by rltune/SageMaker = {total} hyperparameters; SageMaker allows "
                                               f"{MAX_TOTAL_HYPERPARAMETERS}. Remove {excess} of them")

    # objective, strategy, jobs --------------------------------------------------------------------------------

    def check_objective(self) -> None:
        name = self.p.objective_metric
        if self.ok("objective_metric") and name not in metrics.METRICS_BY_NAME:
            guess = _did_you_mean(name, metrics.METRIC_NAMES)
            tip = f"did you mean {guess!r}? " if guess else ""
            self.add("objective_metric", f"the training image does not emit {name!r}; {tip}use one of "
                                         f"{', '.join(metrics.METRIC_NAMES)}")

    def check_strategy(self) -> None:
        p = self.p
        if not self.ok("strategy"):
            return
        if p.strategy == "Grid":
            for key, rng in p.hyperparameter_ranges.items():
                if rng.type is not None and rng.type != "Categorical":
                    self.add(f"hyperparameter_ranges.{key}", "Grid search takes categorical ranges only; list the "
                                                             "values to try (e.g. [0.0001, 0.001]) or use strategy "
                                                             "Random/Bayesian")
            if "max_jobs" in p.model_fields_set:
                self.add("max_jobs", "SageMaker forbids max_jobs with Grid: it runs every combination of the "
                                     f"categorical values ({self._grid_size_text()}). Remove max_jobs")
            elif self.ranges_ok and p.grid_size() > MAX_TRAINING_JOBS:
                self.add("hyperparameter_ranges", f"Grid would run {p.grid_size()} combinations; SageMaker allows "
                                                  f"{MAX_TRAINING_JOBS} training jobs. Use fewer values")
        if p.strategy == "Hyperband":
            if p.early_stopping == "Auto" and self.ok("early_stopping"):
                self.add("early_stopping", "Hyperband stops jobs early itself and needs early_stopping Off; "
                                           "remove early_stopping or set it to \"Off\"")
            if self.ok("hyperband"):
                self._check_hyperband()
        elif p.hyperband is not None:
            self.add("hyperband", f"hyperband settings apply only with strategy Hyperband (strategy is "
                                  f"{p.strategy}); set \"strategy\": \"Hyperband\" or remove hyperband")

    def _grid_size_text(self) -> str:
        countable = self.ranges_ok and all(r.type == "Categorical" for r in self.p.hyperparameter_ranges.values())
        return f"{self.p.grid_size()} here" if countable else "the product of the value counts"

    def _check_hyperband(self) -> None:
        config = self.p.hyperband or HyperbandConfig()
        iterations = self.p.static_hyperparameters.get("rl.stop.training_iteration")
        max_resource = config.max_resource
        if max_resource is None:
            if isinstance(iterations, int) and not isinstance(iterations, bool) and iterations >= 1:
                max_resource = min(iterations, MAX_HYPERBAND_RESOURCE)
            else:
                self.add("hyperband.max_resource", "Hyperband needs a maximum number of training iterations: set "
                                                   "hyperband.max_resource or a static rl.stop.training_iteration")
                return
        if config.min_resource >= max_resource:
            self.add("hyperband.min_resource", f"min_resource ({config.min_resource}) must be less than "
                                               f"max_resource ({max_resource}); lower it")
            return
        if config.max_resource is None:  # also when hyperband was omitted
            resolved = HyperbandConfig(min_resource=config.min_resource, max_resource=max_resource)
            object.__setattr__(self.p, "hyperband", resolved)

    def _job_count(self) -> int:
        """Training jobs this run has: every Grid combination, else max_jobs."""
        p = self.p
        return p.grid_size() if p.strategy == "Grid" and self.ranges_ok else p.max_jobs

    def check_jobs(self) -> None:
        p = self.p
        if not self.ok("max_jobs", "max_parallel_jobs", "strategy"):
            return
        jobs = self._job_count()
        if "max_parallel_jobs" in p.model_fields_set and p.max_parallel_jobs > jobs >= 1:
            self.add("max_parallel_jobs", f"max_parallel_jobs ({p.max_parallel_jobs}) is more than the {jobs} "
                                          f"training jobs this run has; set it to {jobs} or less")

    def check_resources(self) -> None:
        p = self.p
        if self.ok("instance_type") and not INSTANCE_TYPE_PATTERN.match(p.instance_type):
            self.add("instance_type", f"{_short(p.instance_type)} is not a SageMaker instance type; use a name like "
                                      "'ml.c5.xlarge'")
        if self.ok("instance_count") and p.instance_count > 1:
            self.add("instance_count", "multi-node training is not supported yet; set instance_count to 1 and pick "
                                       "a larger instance_type instead")

    def check_run_limits(self) -> None:
        p = self.p
        if not self.ok("max_run_seconds", "max_wait_seconds", "use_spot"):
            return
        spot = p.spot(self.spot_by_default)
        if p.max_wait_seconds is not None and not spot:
            reason = "use_spot is false" if p.use_spot is False else (
                f"the {self.environment or 'target'} environment does not use spot by default")
            self.add("max_wait_seconds", f"max_wait_seconds only applies to spot training and {reason}; remove "
                                         "it or set use_spot to true")
            return
        limits = p.run_limits(self.guardrails, self.spot_by_default)
        if spot and limits.max_wait_seconds is not None and limits.max_wait_seconds < limits.max_run_seconds:
            self.add("max_wait_seconds", f"max_wait_seconds ({limits.max_wait_seconds}) must be at least "
                                         f"max_run_seconds ({limits.max_run_seconds}) with spot: it covers training "
                                         "plus waiting for capacity. Raise it or lower max_run_seconds")
        stop = p.static_hyperparameters.get(hp.TIME_TOTAL_KEY)
        if (self.ok(f"static_hyperparameters.{hp.TIME_TOTAL_KEY}") and _is_finite_number(stop)
                and stop >= limits.max_run_seconds):
            self.add(f"static_hyperparameters.{hp.TIME_TOTAL_KEY}",
                     f"{stop!r} s is not below max_run_seconds ({limits.max_run_seconds}); SageMaker would kill the "
                     f"job before it stops and saves its model. Lower it (e.g. to "
                     f"{auto_time_total_s(limits.max_run_seconds)}) or remove it to get that default")

    def check_tags_and_environment(self) -> None:
        tags = self.p.tags
        room = MAX_TAGS - len(BUILTIN_TAG_KEYS)
        if len(tags) > room:
            self.add("tags", f"{len(tags)} tags; SageMaker allows {MAX_TAGS} and rltune adds {len(BUILTIN_TAG_KEYS)} "
                             f"({', '.join(BUILTIN_TAG_KEYS)}), so keep at most {room}")
        for key, value in tags.items():
            path = f"tags.{key}"
            if not 1 <= len(key) <= 128:
                self.add(path, "tag keys are 1-128 characters; shorten or rename it")
            if key.lower().startswith(RESERVED_TAG_PREFIXES):
                self.add(path, f"tag keys starting with {' or '.join(RESERVED_TAG_PREFIXES)} are reserved; rename it")
            if len(value) > 256:
                self.add(path, f"tag values are at most 256 characters, got {len(value)}; shorten it")
            for text, what in ((key, "key"), (value, "value")):
                bad = sorted({c for c in text if not (_tag_char(c) or c in TAG_EXTRA_CHARS)})
                if bad:
                    self.add(path, f"the tag {what} contains {''.join(bad)!r}; tags allow letters, digits, spaces "
                                   "and _ . : / = + - @")
        env = self.p.environment
        room = MAX_ENVIRONMENT_VARIABLES - len(BUILTIN_ENVIRONMENT)
        if len(env) > room:
            self.add("environment", f"{len(env)} variables; SageMaker allows {MAX_ENVIRONMENT_VARIABLES} and rltune "
                                    f"sets {len(BUILTIN_ENVIRONMENT)}, so keep at most {room}")
        for key, value in env.items():
            path = f"environment.{key}"
            if not ENV_KEY_PATTERN.match(key) or len(key) > MAX_ENV_VALUE:
                self.add(path, "variable names are letters, digits and '_' and do not start with a digit; rename it")
            elif key.upper().startswith(RESERVED_ENV_PREFIXES) and key not in ("RAY_USAGE_STATS_ENABLED",):
                self.add(path, f"names starting with {', '.join(RESERVED_ENV_PREFIXES)} are set by SageMaker or "
                               "rltune; rename it")
            if len(value) > MAX_ENV_VALUE:
                self.add(path, f"values are at most {MAX_ENV_VALUE} characters, got {len(value)}; shorten it")

    def check_misc(self) -> None:
        criteria = self.p.completion_criteria
        if (criteria is not None and self.ok("completion_criteria")
                and all(getattr(criteria, name) is None for name in CompletionCriteria.model_fields)):
            self.add("completion_criteria", "set at least one of target_objective_value, max_jobs_not_improving, "
                                            "complete_on_convergence, or remove completion_criteria")
        warm = self.p.warm_start
        if warm is not None and self.ok("warm_start"):
            seen: set[str] = set()
            for index, parent in enumerate(warm.parents):
                if parent in seen:
                    self.add(f"warm_start.parents[{index}]", f"{parent!r} is listed twice; remove one")
                seen.add(parent)

    def check_guardrails(self) -> None:
        g = self.guardrails
        if g is None:
            return
        p = self.p
        where = f"the {self.environment!r} environment" if self.environment else "this environment"
        fix = "lower it, or raise the cap in cdk.json and redeploy"
        jobs = self._job_count()
        if self.ok("max_jobs", "strategy") and jobs > g.max_jobs:
            path = "hyperparameter_ranges" if p.strategy == "Grid" else "max_jobs"
            self.add(path, f"{jobs} training jobs is over {where}'s cap guardrails.max_jobs = {g.max_jobs}; {fix}")
        if (self.ok("max_parallel_jobs") and "max_parallel_jobs" in p.model_fields_set
                and p.max_parallel_jobs > g.max_parallel_jobs):
            self.add("max_parallel_jobs", f"max_parallel_jobs {p.max_parallel_jobs} is over {where}'s cap "
                                          f"guardrails.max_parallel_jobs = {g.max_parallel_jobs}; {fix}")
        if self.ok("instance_type") and p.instance_type not in g.allowed_instance_types:
            self.add("instance_type", f"{p.instance_type!r} is not allowed in {where} (guardrails."
                                      f"allowed_instance_types: {', '.join(g.allowed_instance_types)}); pick one of "
                                      "those, or add it to the list in cdk.json")
        if self.ok("max_run_seconds") and p.max_run_seconds is not None and p.max_run_seconds > g.max_run_seconds:
            self.add("max_run_seconds", f"max_run_seconds {p.max_run_seconds} is over {where}'s cap "
                                        f"guardrails.max_run_seconds = {g.max_run_seconds}; {fix}")

    def resolve(self) -> None:
        """Fill defaults that depend on other fields, once everything is known to be valid."""
        if self.issues or self.broken:
            return
        p = self.p
        # object.__setattr__ keeps model_fields_set meaning "what the user wrote".
        if p.experiment is None:
            object.__setattr__(p, "experiment", slugify(f"{p.algorithm}-{p.env}")[:64].strip("-") or "rltune")
        if p.strategy == "Grid":
            object.__setattr__(p, "max_jobs", p.grid_size())
        if "max_parallel_jobs" not in p.model_fields_set:
            object.__setattr__(p, "max_parallel_jobs", max(1, min(p.parallel_jobs(self.guardrails), p.max_jobs)))
