"""The metric contract between the training image and SageMaker's tuning job.

This module is the single source of truth for:
- which metrics the trainer prints, and which RLlib result key each one comes from;
- the exact line format the trainer prints (`format_metric_line`);
- the regexes SageMaker uses to scrape those lines (`metric_definitions`).

It is pure standard library on purpose: the training image copies this one file, and the
Lambda bundles it, so both sides always agree.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# Every metric line starts with this tag. The closing "=" and ";" bound the name and the value,
# so `episode_reward_mean` can never match `episode_reward_mean_foo=...` or a truncated number.
LINE_TAG = "[rltune]"

# One capture group (the first) holds the whole number, as SageMaker's own RL regexes do.
FLOAT_REGEX = r"([-+]?[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?)"

# SageMaker API limits on MetricDefinitions (botocore model: max 40 items, Regex max 500 chars).
MAX_METRIC_DEFINITIONS = 40
MAX_REGEX_LENGTH = 500


@dataclass(frozen=True)
class Metric:
    """A metric the trainer emits: its public name and where it lives in RLlib's result dict."""

    name: str
    result_key: str  # slash-separated path into the new-API-stack result dict
    description: str


METRICS: tuple[Metric, ...] = (
    Metric(
        "episode_reward_mean",
        "env_runners/episode_return_mean",
        "Alias of episode_return_mean under the old RLlib name, so SageMaker SDK payloads keep working.",
    ),
    Metric("episode_return_mean", "env_runners/episode_return_mean", "Mean return of the last 100 episodes."),
    Metric("episode_return_max", "env_runners/episode_return_max", "Max episode return in the window."),
    Metric("episode_return_min", "env_runners/episode_return_min", "Min episode return in the window."),
    Metric("episode_len_mean", "env_runners/episode_len_mean", "Mean episode length."),
    Metric(
        "num_env_steps_sampled_lifetime",
        "num_env_steps_sampled_lifetime",
        "Environment steps sampled since the start (continues across spot restarts).",
    ),
    Metric("training_iteration", "training_iteration", "Iterations done (continues across spot restarts)."),
    Metric("time_total_s", "time_total_s", "Training seconds since the start, across spot restarts."),
    Metric("policy_loss", "learners/default_policy/policy_loss", "Policy loss of the default module."),
    Metric("vf_loss", "learners/default_policy/vf_loss", "Value-function loss of the default module."),
    Metric("entropy", "learners/default_policy/entropy", "Action distribution entropy."),
    Metric("mean_kl_loss", "learners/default_policy/mean_kl_loss", "Mean KL divergence term."),
    Metric("total_loss", "learners/default_policy/total_loss", "Total loss of the default module."),
    Metric(
        "learning_rate",
        "learners/default_policy/default_optimizer_learning_rate",
        "The optimizer's current learning rate: proof that a tuned lr reached the learner.",
    ),
)

METRICS_BY_NAME: dict[str, Metric] = {m.name: m for m in METRICS}
METRIC_NAMES: tuple[str, ...] = tuple(METRICS_BY_NAME)
DEFAULT_OBJECTIVE = "episode_reward_mean"


def metric_regex(name: str) -> str:
    """The regex SageMaker applies to each log line to capture `name`'s value."""
    return re.escape(f"{LINE_TAG} {name}=") + FLOAT_REGEX + ";"


def metric_definitions(names: Iterable[str] = METRIC_NAMES) -> list[dict[str, str]]:
    """MetricDefinitions for the tuning request, in the contract's order."""
    return [{"Name": name, "Regex": metric_regex(name)} for name in names]


def format_metric_line(name: str, value: float) -> str:
    """The exact line the trainer prints for one metric value (finite values only)."""
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"metric {name} is not finite: {value}")
    return f"{LINE_TAG} {name}={value!r};"


def lookup(result: Mapping[str, object], result_key: str) -> object | None:
    """Walk a slash-separated key through RLlib's nested result dict; None when absent."""
    node: object = result
    for part in result_key.split("/"):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def extract_metrics(result: Mapping[str, object]) -> dict[str, float]:
    """The contract's metrics present and finite in one RLlib result, cast to plain floats."""
    values: dict[str, float] = {}
    for metric in METRICS:
        raw = lookup(result, metric.result_key)
        try:
            value = float(raw)  # type: ignore[arg-type]  # numpy scalars cast too
        except (TypeError, ValueError):
            continue
        if math.isfinite(value):
            values[metric.name] = value
    return values


def parse_metric_lines(
    lines: Iterable[str], definitions: Iterable[Mapping[str, str]]
) -> dict[str, list[float]]:
    """Scrape values from log lines the way SageMaker does: each regex's first group, every match kept.

    SageMaker's final value of a metric is the last one emitted, so callers take `values[-1]`.
    """
    compiled = [(d["Name"], re.compile(d["Regex"])) for d in definitions]
    found: dict[str, list[float]] = {}
    for line in lines:
        for name, regex in compiled:
            match = regex.search(line)
            if match:
                found.setdefault(name, []).append(float(match.group(1)))
    return found
