"""The best-job record: what a finished tuning run leaves behind, in one JSON-serialisable dict.

`build_record` is pure. It takes SageMaker-shaped dicts (as boto3 returns them, or as the local
backend builds them for its trials) and returns the record the workflow writes to the results table,
puts on EventBridge and returns as the execution's output. The local backend writes the same record
to `summary.json`, so a run reads the same wherever it ran.

Inputs:
- `tuning_job`: a DescribeHyperParameterTuningJob response;
- `training_jobs`: the TrainingJobSummaries of ListTrainingJobsForHyperParameterTuningJob (any order).
  A summary may also carry `TrainingTimeInSeconds`/`BillableTimeInSeconds` (copied from
  DescribeTrainingJob); without them its training time is its end minus its start, billed in full;
- `best_training_job`: a DescribeTrainingJob response for the best job, or None when no job succeeded.

Cost figures follow the SageMaker console: spot savings = 1 - billable / training seconds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from rltune.hyperparameters import is_sagemaker_injected
from rltune.pricing import cost_usd

RECORD_VERSION = 1
TOP_JOBS = 5
# Statuses after which a tuning job bills nothing more.
TERMINAL_TUNING_STATUSES = frozenset({"Completed", "Failed", "Stopped"})
# Per-training-job statuses, as ListTrainingJobsForHyperParameterTuningJob reports them.
TRAINING_STATUSES = ("Completed", "Failed", "Stopped", "InProgress", "Stopping")


def iso(value: Any) -> str | None:
    """A datetime (or an ISO string, as the local backend may pass) as an ISO-8601 string in UTC."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        return value
    raise TypeError(f"expected a datetime or an ISO string, got {type(value).__name__}: {value!r}")


def _as_datetime(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise TypeError(f"expected a datetime or an ISO string, got {type(value).__name__}: {value!r}")


def plain(value: Any) -> Any:
    """Deep copy with JSON types only: datetimes to ISO strings, Decimals to int/float, tuples to lists."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, datetime | date):
        return iso(value)
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _objective_value(summary: Mapping[str, Any]) -> float | None:
    metric = summary.get("FinalHyperParameterTuningJobObjectiveMetric") or {}
    value = metric.get("Value")
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _seconds(summary: Mapping[str, Any]) -> tuple[float, float]:
    """(training seconds, billable seconds) of one job; billable = training when SageMaker gave no figure."""
    training = summary.get("TrainingTimeInSeconds")
    if training is None:
        start, end = _as_datetime(summary.get("TrainingStartTime")), _as_datetime(summary.get("TrainingEndTime"))
        training = max(0.0, (end - start).total_seconds()) if start and end else 0.0
    billable = summary.get("BillableTimeInSeconds")
    return float(training), float(training if billable is None else billable)


def rank_jobs(training_jobs: Sequence[Mapping[str, Any]], objective_type: str) -> list[Mapping[str, Any]]:
    """Jobs with a final objective value, best first (ties broken by name, so the order is stable)."""
    scored = [job for job in training_jobs if _objective_value(job) is not None]
    sign = -1.0 if objective_type == "Maximize" else 1.0
    return sorted(scored, key=lambda job: (sign * _objective_value(job), job.get("TrainingJobName", "")))  # type: ignore[operator]


def spot_savings_percent(training_seconds: float, billable_seconds: float) -> float | None:
    """The console's "managed spot training savings": 1 - billable/training, in percent (None if no training)."""
    if training_seconds <= 0:
        return None
    return round(100.0 * (1.0 - billable_seconds / training_seconds), 1)


def split_hyperparameters(
    all_hyperparameters: Mapping[str, Any], tuned: Mapping[str, Any]
) -> tuple[dict[str, str], dict[str, str]]:
    """(tuned, static) hyperparameters of a job, without the keys SageMaker injects itself."""
    tuned_out = {k: str(v) for k, v in tuned.items() if not is_sagemaker_injected(k)}
    static = {
        k: str(v) for k, v in all_hyperparameters.items() if k not in tuned_out and not is_sagemaker_injected(k)
    }
    return dict(sorted(tuned_out.items())), dict(sorted(static.items()))


def build_record(
    *,
    experiment: str,
    tuning_job: Mapping[str, Any],
    training_jobs: Sequence[Mapping[str, Any]],
    best_training_job: Mapping[str, Any] | None,
    execution_arn: str | None = None,
    failure: str | None = None,
) -> dict[str, Any]:
    """The record of one tuning run: best job, counts, cost and top jobs (see the module docstring)."""
    config = tuning_job.get("HyperParameterTuningJobConfig") or {}
    objective = config.get("HyperParameterTuningJobObjective") or {}
    objective_type = objective.get("Type", "Maximize")
    status = tuning_job.get("HyperParameterTuningJobStatus", "Unknown")

    ranked = rank_jobs(training_jobs, objective_type)
    summaries_by_name = {job.get("TrainingJobName"): job for job in training_jobs}

    counts = dict.fromkeys(("completed", "failed", "stopped", "in_progress", "stopping"), 0)
    for job in training_jobs:
        job_status = str(job.get("TrainingJobStatus", ""))
        key = "in_progress" if job_status == "InProgress" else job_status.lower()
        if key in counts:
            counts[key] += 1
    counts["total"] = len(training_jobs)
    counts["with_objective"] = len(ranked)

    training_seconds = billable_seconds = 0.0
    for job in training_jobs:
        job_training, job_billable = _seconds(job)
        training_seconds += job_training
        billable_seconds += job_billable

    best: dict[str, Any] | None = None
    if best_training_job is not None:
        name = best_training_job.get("TrainingJobName")
        summary = summaries_by_name.get(name) or tuning_job.get("BestTrainingJob") or {}
        tuned_source = summary.get("TunedHyperParameters") or {}
        tuned, static = split_hyperparameters(best_training_job.get("HyperParameters") or {}, tuned_source)
        best_training, best_billable = _seconds({**summary, **best_training_job})
        resources = best_training_job.get("ResourceConfig") or {}
        best = {
            "name": name,
            "arn": best_training_job.get("TrainingJobArn"),
            "status": best_training_job.get("TrainingJobStatus"),
            "objective_value": _objective_value(summary),
            "tuned_hyperparameters": tuned,
            "static_hyperparameters": static,
            "model_artifacts": (best_training_job.get("ModelArtifacts") or {}).get("S3ModelArtifacts"),
            "checkpoint_s3_uri": (best_training_job.get("CheckpointConfig") or {}).get("S3Uri"),
            "image": (best_training_job.get("AlgorithmSpecification") or {}).get("TrainingImage"),
            "instance_type": resources.get("InstanceType"),
            "instance_count": resources.get("InstanceCount"),
            "spot": bool(best_training_job.get("EnableManagedSpotTraining", False)),
            "training_seconds": best_training,
            "billable_seconds": best_billable,
            "training_start_time": iso(best_training_job.get("TrainingStartTime")),
            "training_end_time": iso(best_training_job.get("TrainingEndTime")),
        }

    definition = tuning_job.get("TrainingJobDefinition") or {}
    job_resources = definition.get("ResourceConfig") or (best_training_job or {}).get("ResourceConfig") or {}
    instance_type = job_resources.get("InstanceType")
    instance_count = int(job_resources.get("InstanceCount") or 1)

    reasons = [r for r in (failure, tuning_job.get("FailureReason")) if r]
    if not reasons and status in ("Failed", "Stopped"):
        reasons.append(f"the tuning job ended {status}")
    record: dict[str, Any] = {
        "record_version": RECORD_VERSION,
        "experiment": experiment,
        "tuning_job": tuning_job.get("HyperParameterTuningJobName"),
        "tuning_job_arn": tuning_job.get("HyperParameterTuningJobArn"),
        "execution_arn": execution_arn,
        "status": status,
        "failure": "; ".join(dict.fromkeys(reasons)) or None,
        "objective": {
            "name": objective.get("MetricName"),
            "type": objective_type,
            "value": best["objective_value"] if best else (_objective_value(ranked[0]) if ranked else None),
        },
        "best_training_job": best,
        "counts": counts,
        "cost": {
            "training_seconds": round(training_seconds, 3),
            "billable_seconds": round(billable_seconds, 3),
            "spot_savings_percent": spot_savings_percent(training_seconds, billable_seconds),
            "instance_type": instance_type,
            "instance_count": instance_count,
            "spot": bool(definition.get("EnableManagedSpotTraining", best["spot"] if best else False)),
            # billable seconds x on-demand price: what SageMaker charges (spot is billed as fewer seconds).
            "estimated_cost_usd": cost_usd(billable_seconds, instance_type, instance_count),
            "on_demand_cost_usd": cost_usd(training_seconds, instance_type, instance_count),
            "tuning_runtime_seconds": (tuning_job.get("ConsumedResources") or {}).get("RuntimeInSeconds"),
        },
        "top_jobs": [
            {
                "name": job.get("TrainingJobName"),
                "objective_value": _objective_value(job),
                "status": job.get("TrainingJobStatus"),
                "tuned_hyperparameters": split_hyperparameters({}, job.get("TunedHyperParameters") or {})[0],
            }
            for job in ranked[:TOP_JOBS]
        ],
        "start_time": iso(tuning_job.get("CreationTime")),
        "end_time": iso(tuning_job.get("HyperParameterTuningEndTime")),
    }
    return plain(record)
