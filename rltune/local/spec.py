"""The local backend's reading of a `CreateHyperParameterTuningJob` request.

The local backend never looks at the payload: it consumes the request the payload builder made for
SageMaker, so a request SageMaker would reject is rejected here too (with the field and the fix).
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from rltune.hyperparameters import encode_value

STRATEGIES = ("Bayesian", "Random", "Hyperband", "Grid")
SCALING_TYPES = ("Auto", "Linear", "Logarithmic", "ReverseLogarithmic")
# SageMaker's default tuning-job and training-job runtime caps when the request leaves them out.
DEFAULT_TRAINING_MAX_RUNTIME_S = 86_400
# A job only counts as improving when it beats the best so far by this fraction (SageMaker's rule).
IMPROVEMENT_FRACTION = 0.01


class RequestError(ValueError):
    """A tuning request the local backend (and SageMaker) cannot run. The message names the field."""


@dataclass(frozen=True)
class ParameterRange:
    """One tunable hyperparameter, typed the way the request declares it."""

    name: str
    kind: Literal["Integer", "Continuous", "Categorical"]
    min_value: float | None = None
    max_value: float | None = None
    scaling: str = "Auto"
    values: tuple[str, ...] = ()

    @property
    def effective_scaling(self) -> str:
        # SageMaker does not document how "Auto" chooses; locally it means Linear.
        return "Linear" if self.scaling == "Auto" else self.scaling


@dataclass(frozen=True)
class TuningSpec:
    """Everything the local sweep needs from a request, validated."""

    tuning_job_name: str
    strategy: str
    objective_metric: str
    objective_type: Literal["Maximize", "Minimize"]
    max_jobs: int | None
    max_parallel_jobs: int
    max_runtime_s: int | None
    ranges: tuple[ParameterRange, ...]
    static_hyperparameters: dict[str, str]
    metric_definitions: tuple[dict[str, str], ...]
    training_max_runtime_s: int
    early_stopping: Literal["Off", "Auto"]
    random_seed: int | None
    hyperband_min_resource: int | None = None
    hyperband_max_resource: int | None = None
    target_objective: float | None = None
    max_jobs_not_improving: int | None = None
    environment: dict[str, str] = field(default_factory=dict)
    training_image: str = ""

    @property
    def maximize(self) -> bool:
        return self.objective_type == "Maximize"

    def better(self, a: float, b: float) -> bool:
        """True when objective `a` is strictly better than `b`."""
        return a > b if self.maximize else a < b

    def improves(self, value: float, best: float | None) -> bool:
        """SageMaker's 'improving' test: better than the best so far by at least 1% of its magnitude."""
        if best is None:
            return True
        margin = IMPROVEMENT_FRACTION * abs(best)
        return value > best + margin if self.maximize else value < best - margin

    def reaches_target(self, value: float) -> bool:
        if self.target_objective is None:
            return False
        return value >= self.target_objective if self.maximize else value <= self.target_objective

    def grid_size(self) -> int:
        size = 1
        for r in self.ranges:
            size *= len(r.values)
        return size


def _get(mapping: Mapping[str, Any], key: str, path: str, required: bool = True) -> Any:
    if not isinstance(mapping, Mapping):
        raise RequestError(f"{path}: expected an object, got {type(mapping).__name__}")
    if key not in mapping:
        if required:
            raise RequestError(f"{path}.{key} is missing: rebuild the request with rltune.request.build_tuning_request")
        return None
    return mapping[key]


def _number(text: Any, path: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise RequestError(f"{path}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise RequestError(f"{path}: {text!r} is not a finite number")
    return value


def _positive_int(value: Any, path: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise RequestError(f"{path}: must be an integer >= {minimum}, got {value!r}")
    return value


def _parse_ranges(config: Mapping[str, Any]) -> tuple[ParameterRange, ...]:
    ranges_block = _get(config, "ParameterRanges", "HyperParameterTuningJobConfig", required=False) or {}
    base = "HyperParameterTuningJobConfig.ParameterRanges"
    ranges: list[ParameterRange] = []
    for kind, key in (("Integer", "IntegerParameterRanges"), ("Continuous", "ContinuousParameterRanges")):
        for i, item in enumerate(ranges_block.get(key, []) or []):
            path = f"{base}.{key}[{i}]"
            name = _get(item, "Name", path)
            low = _number(_get(item, "MinValue", path), f"{path}.MinValue")
            high = _number(_get(item, "MaxValue", path), f"{path}.MaxValue")
            scaling = item.get("ScalingType", "Auto")
            if scaling not in SCALING_TYPES:
                raise RequestError(f"{path}.ScalingType: {scaling!r} is not one of {', '.join(SCALING_TYPES)}")
            if low > high:
                raise RequestError(f"{path}: MinValue {low} is above MaxValue {high}; swap them")
            if kind == "Integer" and (low != int(low) or high != int(high)):
                raise RequestError(f"{path}: integer ranges need whole-number bounds, got {low}..{high}")
            if scaling == "Logarithmic" and low <= 0:
                raise RequestError(f"{path}: Logarithmic scaling needs MinValue > 0, got {low}; use Linear")
            if scaling == "ReverseLogarithmic":
                if kind == "Integer":
                    raise RequestError(f"{path}: ReverseLogarithmic applies to continuous ranges only")
                if low < 0 or high >= 1:
                    raise RequestError(f"{path}: ReverseLogarithmic needs 0 <= MinValue <= MaxValue < 1, "
                                       f"got {low}..{high}; use Linear or Logarithmic")
            ranges.append(ParameterRange(name, kind, low, high, scaling))  # type: ignore[arg-type]
    for i, item in enumerate(ranges_block.get("CategoricalParameterRanges", []) or []):
        path = f"{base}.CategoricalParameterRanges[{i}]"
        name = _get(item, "Name", path)
        values = _get(item, "Values", path)
        if not isinstance(values, list | tuple) or not values:
            raise RequestError(f"{path}.Values: needs at least one value")
        ranges.append(ParameterRange(name, "Categorical", values=tuple(str(v) for v in values)))
    names = [r.name for r in ranges]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise RequestError(f"{base}: {', '.join(duplicates)} declared in more than one range; keep one")
    return tuple(ranges)


def parse_request(request: Mapping[str, Any]) -> TuningSpec:
    """Read and check a CreateHyperParameterTuningJob request (the dict boto3 would receive)."""
    name = _get(request, "HyperParameterTuningJobName", "request")
    config = _get(request, "HyperParameterTuningJobConfig", "request")
    definition = request.get("TrainingJobDefinition")
    if definition is None:
        definitions = request.get("TrainingJobDefinitions") or []
        if len(definitions) != 1:
            raise RequestError("request.TrainingJobDefinition is missing (the local backend runs exactly one "
                               "training job definition)")
        definition = definitions[0]

    strategy = _get(config, "Strategy", "HyperParameterTuningJobConfig")
    if strategy not in STRATEGIES:
        raise RequestError(f"HyperParameterTuningJobConfig.Strategy: {strategy!r} is not one of "
                           f"{', '.join(STRATEGIES)}")
    objective = _get(config, "HyperParameterTuningJobObjective", "HyperParameterTuningJobConfig")
    objective_path = "HyperParameterTuningJobConfig.HyperParameterTuningJobObjective"
    objective_type = _get(objective, "Type", objective_path)
    if objective_type not in ("Maximize", "Minimize"):
        raise RequestError(f"{objective_path}.Type: {objective_type!r} must be Maximize or Minimize")
    metric = _get(objective, "MetricName", objective_path)

    algorithm = _get(definition, "AlgorithmSpecification", "TrainingJobDefinition")
    metric_definitions = tuple(dict(d) for d in (algorithm.get("MetricDefinitions") or []))
    if metric not in {d.get("Name") for d in metric_definitions}:
        raise RequestError(f"{objective_path}.MetricName: {metric!r} has no entry in "
                           "TrainingJobDefinition.AlgorithmSpecification.MetricDefinitions, so no value could ever "
                           "be scraped; add its regex or pick a defined metric")

    limits = _get(config, "ResourceLimits", "HyperParameterTuningJobConfig")
    limits_path = "HyperParameterTuningJobConfig.ResourceLimits"
    max_parallel = _positive_int(_get(limits, "MaxParallelTrainingJobs", limits_path),
                                 f"{limits_path}.MaxParallelTrainingJobs")
    max_jobs = limits.get("MaxNumberOfTrainingJobs")
    if max_jobs is not None:
        max_jobs = _positive_int(max_jobs, f"{limits_path}.MaxNumberOfTrainingJobs")
    max_runtime = limits.get("MaxRuntimeInSeconds")
    if max_runtime is not None:
        max_runtime = _positive_int(max_runtime, f"{limits_path}.MaxRuntimeInSeconds")

    ranges = _parse_ranges(config)
    if strategy == "Grid":
        not_categorical = [r.name for r in ranges if r.kind != "Categorical"]
        if not_categorical:
            raise RequestError(f"HyperParameterTuningJobConfig.ParameterRanges: the Grid strategy takes categorical "
                               f"ranges only; make {', '.join(not_categorical)} categorical or use Bayesian")
    if not ranges:
        raise RequestError("HyperParameterTuningJobConfig.ParameterRanges: nothing to tune; add at least one range")
    if max_jobs is None and strategy != "Grid":
        raise RequestError(f"{limits_path}.MaxNumberOfTrainingJobs is required for the {strategy} strategy")

    early = config.get("TrainingJobEarlyStoppingType", "Off")
    early = {"OFF": "Off", "AUTO": "Auto"}.get(early, early)
    if early not in ("Off", "Auto"):
        raise RequestError(f"HyperParameterTuningJobConfig.TrainingJobEarlyStoppingType: {early!r} must be Off or Auto")

    hb_min = hb_max = None
    if strategy == "Hyperband":
        if early != "Off":
            raise RequestError("HyperParameterTuningJobConfig.TrainingJobEarlyStoppingType must be Off with the "
                               "Hyperband strategy (Hyperband stops jobs by itself)")
        hb = ((config.get("StrategyConfig") or {}).get("HyperbandStrategyConfig") or {})
        hb_path = "HyperParameterTuningJobConfig.StrategyConfig.HyperbandStrategyConfig"
        hb_min = _positive_int(hb.get("MinResource", 1), f"{hb_path}.MinResource")
        max_resource = hb.get("MaxResource")
        if max_resource is None:  # SageMaker infers it from the job's iteration count
            iterations = (definition.get("StaticHyperParameters") or {}).get("rl.stop.training_iteration")
            with contextlib.suppress(TypeError, ValueError):
                max_resource = int(float(iterations))
        if max_resource is None:
            raise RequestError(f"{hb_path}.MaxResource: set it, or a static rl.stop.training_iteration, so "
                               "Hyperband knows the most iterations a job may run")
        hb_max = _positive_int(max_resource, f"{hb_path}.MaxResource")
        if hb_min > hb_max:
            raise RequestError(f"{hb_path}: MinResource {hb_min} is above MaxResource {hb_max}")

    criteria = config.get("TuningJobCompletionCriteria") or {}
    target = criteria.get("TargetObjectiveMetricValue")
    if target is not None:
        target = _number(target, "HyperParameterTuningJobConfig.TuningJobCompletionCriteria.TargetObjectiveMetricValue")
    not_improving = (criteria.get("BestObjectiveNotImproving") or {}).get("MaxNumberOfTrainingJobsNotImproving")
    if not_improving is not None:
        not_improving = _positive_int(
            not_improving,
            "HyperParameterTuningJobConfig.TuningJobCompletionCriteria.BestObjectiveNotImproving."
            "MaxNumberOfTrainingJobsNotImproving",
        )

    seed = config.get("RandomSeed")
    if seed is not None:
        seed = _positive_int(seed, "HyperParameterTuningJobConfig.RandomSeed", minimum=0)

    static = definition.get("StaticHyperParameters") or {}
    bad = [k for k, v in static.items() if not isinstance(v, str)]
    if bad:
        raise RequestError(f"TrainingJobDefinition.StaticHyperParameters: SageMaker takes string values only; encode "
                           f"{', '.join(bad)} with rltune.hyperparameters.encode_value")
    overlap = sorted(set(static) & {r.name for r in ranges})
    if overlap:
        raise RequestError(f"TrainingJobDefinition.StaticHyperParameters: {', '.join(overlap)} is also tuned; "
                           "remove it from the static hyperparameters")
    stopping = definition.get("StoppingCondition") or {}
    training_max_runtime = stopping.get("MaxRuntimeInSeconds", DEFAULT_TRAINING_MAX_RUNTIME_S)
    training_max_runtime = _positive_int(training_max_runtime,
                                         "TrainingJobDefinition.StoppingCondition.MaxRuntimeInSeconds")

    return TuningSpec(
        tuning_job_name=name,
        strategy=strategy,
        objective_metric=metric,
        objective_type=objective_type,
        max_jobs=max_jobs,
        max_parallel_jobs=max_parallel,
        max_runtime_s=max_runtime,
        ranges=ranges,
        static_hyperparameters=dict(static),
        metric_definitions=metric_definitions,
        training_max_runtime_s=training_max_runtime,
        early_stopping=early,  # type: ignore[arg-type]
        random_seed=seed,
        hyperband_min_resource=hb_min,
        hyperband_max_resource=hb_max,
        target_objective=target,
        max_jobs_not_improving=not_improving,
        environment={str(k): str(v) for k, v in (definition.get("Environment") or {}).items()},
        training_image=str(algorithm.get("TrainingImage", "")),
    )


def training_definition(request: Mapping[str, Any]) -> dict[str, Any]:
    """The request's single training job definition (either spelling)."""
    definition = request.get("TrainingJobDefinition")
    if definition is None:
        definition = (request.get("TrainingJobDefinitions") or [{}])[0]
    return dict(definition)


def apply_overrides(
    request: Mapping[str, Any],
    *,
    max_jobs: int | None = None,
    max_parallel_jobs: int | None = None,
    budget_steps: int | None = None,
) -> dict[str, Any]:
    """A copy of the request with the command line's local caps applied (never loosening the payload's stop)."""
    out = copy.deepcopy(dict(request))
    limits = out["HyperParameterTuningJobConfig"]["ResourceLimits"]
    if max_jobs is not None:
        limits["MaxNumberOfTrainingJobs"] = _positive_int(max_jobs, "--max-jobs")
    if max_parallel_jobs is not None:
        limits["MaxParallelTrainingJobs"] = _positive_int(max_parallel_jobs, "--max-parallel-jobs")
    if budget_steps is not None:
        budget = _positive_int(budget_steps, "--budget-steps")
        key = "rl.stop.num_env_steps_sampled_lifetime"
        definition = out.get("TrainingJobDefinition") or out["TrainingJobDefinitions"][0]
        static = definition.setdefault("StaticHyperParameters", {})
        current = static.get(key)
        if current is not None:
            with contextlib.suppress(ValueError):
                budget = min(budget, int(float(current)))
        static[key] = encode_value(budget)
    return out
