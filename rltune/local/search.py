"""The search: SageMaker's strategies, ranges and early stopping expressed with optuna.

- Bayesian -> TPE (seeded by RandomSeed), Random -> RandomSampler, Grid -> GridSampler over the
  categorical values, Hyperband -> TPE plus optuna's HyperbandPruner on the per-iteration objective.
- Integer -> suggest_int, Continuous -> suggest_float, Categorical -> suggest_categorical; Logarithmic
  -> log=True; ReverseLogarithmic -> 1 - x searched on a log scale (SageMaker's transform for 0 <= x < 1).
- Early stopping Auto -> `MedianRunningAveragePruner`, SageMaker's documented median rule.

optuna is imported lazily by callers (this module is imported only when a sweep runs).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, TrialState

from rltune.hyperparameters import encode_value
from rltune.local.spec import ParameterRange, TuningSpec

REVERSE_LOG_SUFFIX = "::one_minus"
# 1 - x must stay > 0 for a log scale; SageMaker's ranges end below 1, so this only guards x == 1.
_EPS = 1e-12


class MedianRunningAveragePruner(optuna.pruners.BasePruner):
    """SageMaker's early-stopping rule for TrainingJobEarlyStoppingType=Auto.

    After each epoch (here: each emission of the objective), compute for every previous training job
    the running average of its objective up to the same epoch, take the median of those averages, and
    stop the current job when its objective is worse than that median.
    `min_previous_jobs` previous jobs must have reached the epoch before any job is stopped.
    """

    def __init__(self, maximize: bool, min_previous_jobs: int = 2, warmup_steps: int = 1) -> None:
        self.maximize = maximize
        self.min_previous_jobs = min_previous_jobs
        self.warmup_steps = warmup_steps

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is None or step < self.warmup_steps:
            return False
        current = trial.intermediate_values[step]
        finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        averages = []
        for other in finished:
            history = [v for s, v in other.intermediate_values.items() if s <= step and math.isfinite(v)]
            if other.number != trial.number and history and max(other.intermediate_values) >= step:
                averages.append(sum(history) / len(history))
        if len(averages) < self.min_previous_jobs:
            return False
        median = statistics.median(averages)
        return current < median if self.maximize else current > median


class _GridSampler(optuna.samplers.GridSampler):
    """optuna's GridSampler without its `study.stop()` (only valid inside `optimize`): the sweep counts jobs."""

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Any) -> None:
        return None


def grid_attrs(study: optuna.Study, params: Mapping[str, Any]) -> dict[str, Any]:
    """For a Grid study, the system attributes that mark `params` as its grid point (so a resumed sweep
    neither repeats finished combinations nor re-assigns the one an interrupted trial holds)."""
    sampler = study.sampler
    if not isinstance(sampler, optuna.samplers.GridSampler):
        return {}
    point = tuple(params[name] for name in sampler._param_names)
    return {"grid_id": sampler._all_grids.index(point), "search_space": sampler._search_space}


def mark_grid_point(study: optuna.Study, trial: optuna.Trial, params: Mapping[str, Any]) -> None:
    for key, value in grid_attrs(study, params).items():
        study._storage.set_trial_system_attr(trial._trial_id, key, value)


def make_sampler(spec: TuningSpec, seed: int | None) -> optuna.samplers.BaseSampler:
    if spec.strategy == "Random":
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.strategy == "Grid":
        space = {r.name: list(r.values) for r in spec.ranges}
        return _GridSampler(space, seed=seed)
    # Bayesian and Hyperband: TPE; a few random jobs first, fewer when the budget is small.
    budget = spec.max_jobs or 10
    startup = max(1, min(10, budget // 2))
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, constant_liar=True)


def make_pruner(spec: TuningSpec) -> optuna.pruners.BasePruner:
    if spec.strategy == "Hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=spec.hyperband_min_resource or 1, max_resource=spec.hyperband_max_resource or "auto"
        )
    if spec.early_stopping == "Auto":
        return MedianRunningAveragePruner(maximize=spec.maximize)
    return optuna.pruners.NopPruner()


def make_study(spec: TuningSpec, seed: int | None) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        study_name=spec.tuning_job_name,
        direction="maximize" if spec.maximize else "minimize",
        sampler=make_sampler(spec, seed),
        pruner=make_pruner(spec),
    )


def distribution(r: ParameterRange) -> tuple[str, BaseDistribution]:
    """The optuna parameter name and distribution a range is searched with."""
    assert r.min_value is not None or r.kind == "Categorical"
    if r.kind == "Categorical":
        return r.name, CategoricalDistribution(list(r.values))
    low, high = float(r.min_value), float(r.max_value)  # type: ignore[arg-type]
    scaling = r.effective_scaling
    if r.kind == "Integer":
        return r.name, IntDistribution(int(low), int(high), log=scaling == "Logarithmic")
    if scaling == "ReverseLogarithmic":
        return r.name + REVERSE_LOG_SUFFIX, FloatDistribution(max(1.0 - high, _EPS), 1.0 - low, log=True)
    return r.name, FloatDistribution(low, high, log=scaling == "Logarithmic")


def distributions(spec: TuningSpec) -> dict[str, BaseDistribution]:
    return dict(distribution(r) for r in spec.ranges)


def suggest(trial: optuna.Trial, spec: TuningSpec) -> dict[str, Any]:
    """Sample one configuration; returns the tuned values in their natural types."""
    values: dict[str, Any] = {}
    for r in spec.ranges:
        name, dist = distribution(r)
        if isinstance(dist, CategoricalDistribution):
            values[r.name] = trial.suggest_categorical(name, dist.choices)
        elif isinstance(dist, IntDistribution):
            values[r.name] = trial.suggest_int(name, dist.low, dist.high, log=dist.log)
        else:
            raw = trial.suggest_float(name, dist.low, dist.high, log=dist.log)
            values[r.name] = 1.0 - raw if name.endswith(REVERSE_LOG_SUFFIX) else raw
    return values


def tuned_strings(values: Mapping[str, Any]) -> dict[str, str]:
    """Tuned values as SageMaker passes them (strings); categorical values are already strings."""
    return {k: encode_value(v) for k, v in values.items()}


def optuna_params(spec: TuningSpec, values: Mapping[str, Any]) -> dict[str, Any]:
    """Inverse of `suggest`: the optuna params that produce `values` (for resuming a sweep)."""
    params: dict[str, Any] = {}
    for r in spec.ranges:
        name, _ = distribution(r)
        value = values[r.name]
        params[name] = 1.0 - value if name.endswith(REVERSE_LOG_SUFFIX) else value
    return params
