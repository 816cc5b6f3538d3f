"""SageMaker-shaped descriptions of a local sweep, and the summary built from them.

The local backend describes its tuning job and trials with the same fields DescribeHyperParameterTuningJob,
ListTrainingJobsForHyperParameterTuningJob and DescribeTrainingJob return, then calls the cloud's own
`rltune.record.build_record`, so `summary.json` has exactly the cloud record's format.
Local jobs run on this machine: the instance type reads "local" (no price), and nothing is billed as spot.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rltune.local.spec import TuningSpec, training_definition
from rltune.local.trial import TrialRecord, training_job_arn, tuning_job_arn
from rltune.record import build_record
from rltune.request import CHECKPOINT_LOCAL_PATH

LOCAL_INSTANCE_TYPE = "local"


def _objective_metric(spec: TuningSpec, record: TrialRecord) -> dict[str, Any] | None:
    if record.objective is None:
        return None
    return {"Type": spec.objective_type, "MetricName": spec.objective_metric, "Value": record.objective}


def training_job_summary(spec: TuningSpec, record: TrialRecord) -> dict[str, Any]:
    """One entry of ListTrainingJobsForHyperParameterTuningJob's TrainingJobSummaries."""
    summary: dict[str, Any] = {
        "TrainingJobName": record.name,
        "TrainingJobArn": training_job_arn(record.name),
        "TuningJobName": spec.tuning_job_name,
        "CreationTime": record.creation_time,
        "TrainingStartTime": record.start_time,
        "TrainingEndTime": record.end_time,
        "TrainingJobStatus": record.status,
        "TunedHyperParameters": dict(record.tuned),
        "ObjectiveStatus": record.objective_status,
        "TrainingTimeInSeconds": round(record.training_seconds, 3),
        "BillableTimeInSeconds": round(record.training_seconds, 3),
    }
    if record.failure_reason:
        summary["FailureReason"] = record.failure_reason
    metric = _objective_metric(spec, record)
    if metric is not None:
        summary["FinalHyperParameterTuningJobObjectiveMetric"] = metric
    return summary


def describe_training_job(
    spec: TuningSpec,
    request: Mapping[str, Any],
    record: TrialRecord,
    trial_dir: Path,
    hyperparameters: Mapping[str, str],
    *,
    training_image: str | None = None,
) -> dict[str, Any]:
    """DescribeTrainingJob for one trial; artifacts are file:// URIs of the trial directory."""
    definition = training_definition(request)
    resources = dict(definition.get("ResourceConfig") or {})
    resources.update({"InstanceType": LOCAL_INSTANCE_TYPE, "InstanceCount": 1})
    algorithm = copy.deepcopy(definition.get("AlgorithmSpecification") or {})
    if training_image:
        algorithm["TrainingImage"] = training_image
    described: dict[str, Any] = {
        "TrainingJobName": record.name,
        "TrainingJobArn": training_job_arn(record.name),
        "TuningJobArn": tuning_job_arn(spec.tuning_job_name),
        "ModelArtifacts": {"S3ModelArtifacts": (trial_dir / "model").resolve().as_uri()},
        "TrainingJobStatus": record.status,
        "SecondaryStatus": record.secondary_status,
        "HyperParameters": dict(hyperparameters),
        "AlgorithmSpecification": algorithm,
        "RoleArn": definition.get("RoleArn"),
        "ResourceConfig": resources,
        "StoppingCondition": {"MaxRuntimeInSeconds": spec.training_max_runtime_s},
        "CreationTime": record.creation_time,
        "TrainingStartTime": record.start_time,
        "TrainingEndTime": record.end_time,
        "TrainingTimeInSeconds": round(record.training_seconds, 3),
        "BillableTimeInSeconds": round(record.training_seconds, 3),
        "EnableManagedSpotTraining": False,
        "CheckpointConfig": {"S3Uri": (trial_dir / "checkpoints").resolve().as_uri(),
                             "LocalPath": CHECKPOINT_LOCAL_PATH},
        "FinalMetricDataList": [
            {"MetricName": name, "Value": value, "Timestamp": record.end_time}
            for name, value in sorted(record.final_metrics.items())
        ],
    }
    if record.failure_reason:
        described["FailureReason"] = record.failure_reason
    return described


def best_record(spec: TuningSpec, records: Sequence[TrialRecord]) -> TrialRecord | None:
    """The best job with a final objective (SageMaker's BestTrainingJob); ties go to the earlier job."""
    best: TrialRecord | None = None
    for record in sorted(records, key=lambda r: r.index):
        if record.objective_status != "Succeeded" or record.objective is None:
            continue
        if best is None or spec.better(record.objective, best.objective):  # type: ignore[arg-type]
            best = record
    return best


def describe_tuning_job(
    spec: TuningSpec,
    request: Mapping[str, Any],
    records: Sequence[TrialRecord],
    *,
    status: str,
    creation_time: str,
    end_time: str | None,
    runtime_s: float,
    not_improving: int,
    failure: str | None = None,
    training_image: str | None = None,
) -> dict[str, Any]:
    """DescribeHyperParameterTuningJob for the local sweep."""
    counters = {"Completed": 0, "InProgress": 0, "RetryableError": 0, "NonRetryableError": 0, "Stopped": 0}
    objective_counters = {"Succeeded": 0, "Pending": 0, "Failed": 0}
    for record in records:
        if record.status == "Failed":
            counters["NonRetryableError"] += 1
        elif record.status in counters:
            counters[record.status] += 1
        objective_counters[record.objective_status] += 1
    definition = copy.deepcopy(training_definition(request))
    definition.setdefault("ResourceConfig", {}).update({"InstanceType": LOCAL_INSTANCE_TYPE, "InstanceCount": 1})
    definition["EnableManagedSpotTraining"] = False
    if training_image:
        definition.setdefault("AlgorithmSpecification", {})["TrainingImage"] = training_image
    described: dict[str, Any] = {
        "HyperParameterTuningJobName": spec.tuning_job_name,
        "HyperParameterTuningJobArn": tuning_job_arn(spec.tuning_job_name),
        "HyperParameterTuningJobConfig": copy.deepcopy(dict(request["HyperParameterTuningJobConfig"])),
        "TrainingJobDefinition": definition,
        "HyperParameterTuningJobStatus": status,
        "CreationTime": creation_time,
        "HyperParameterTuningEndTime": end_time,
        "LastModifiedTime": end_time or creation_time,
        "TrainingJobStatusCounters": counters,
        "ObjectiveStatusCounters": objective_counters,
        "TuningJobCompletionDetails": {"NumberOfTrainingJobsObjectiveNotImproving": not_improving},
        "ConsumedResources": {"RuntimeInSeconds": int(runtime_s)},
    }
    best = best_record(spec, records)
    if best is not None:
        described["BestTrainingJob"] = training_job_summary(spec, best)
    if failure:
        described["FailureReason"] = failure
    return described


def build_summary(
    *,
    experiment: str,
    spec: TuningSpec,
    request: Mapping[str, Any],
    records: Sequence[TrialRecord],
    trial_dirs: Mapping[str, Path],
    hyperparameters: Mapping[str, Mapping[str, str]],
    tuning_job: Mapping[str, Any],
    failure: str | None = None,
    training_image: str | None = None,
) -> dict[str, Any]:
    """summary.json: the cloud's best-job record, built by the cloud's code from these descriptions."""
    best = best_record(spec, records)
    best_description = None
    if best is not None:
        best_description = describe_training_job(spec, request, best, trial_dirs[best.name],
                                                 hyperparameters[best.name],
                                                 training_image=training_image)
    return build_record(
        experiment=experiment,
        tuning_job=tuning_job,
        training_jobs=[training_job_summary(spec, r) for r in records],
        best_training_job=best_description,
        failure=failure,
    )
