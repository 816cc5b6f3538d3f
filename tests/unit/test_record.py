"""The best-job record, from SageMaker-shaped responses (as boto3 returns them)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from rltune.record import build_record, rank_jobs, split_hyperparameters, spot_savings_percent

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TUNING = "rlt-dev-cartpole-1a2b3c4d"


def summary(index: int, value: float | None, status: str = "Completed", minutes: int = 10, **extra):
    job = {
        "TrainingJobName": f"{TUNING}-{index:03d}-deadbeef",
        "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{TUNING}-{index:03d}-deadbeef",
        "TuningJobName": TUNING,
        "CreationTime": T0,
        "TrainingStartTime": T0 + timedelta(minutes=1),
        "TrainingEndTime": T0 + timedelta(minutes=1 + minutes),
        "TrainingJobStatus": status,
        "TunedHyperParameters": {"rl.training.config.lr": str(0.001 * index), "_tuning_objective_metric": "x"},
        **extra,
    }
    if value is not None:
        job["FinalHyperParameterTuningJobObjectiveMetric"] = {"MetricName": "episode_reward_mean", "Value": value}
        job["ObjectiveStatus"] = "Succeeded"
    return job


def tuning_job(status: str = "Completed", objective_type: str = "Maximize", **extra):
    return {
        "HyperParameterTuningJobName": TUNING,
        "HyperParameterTuningJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:hyper-parameter-tuning-job/{TUNING}",
        "HyperParameterTuningJobConfig": {
            "Strategy": "Bayesian",
            "HyperParameterTuningJobObjective": {"Type": objective_type, "MetricName": "episode_reward_mean"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 8, "MaxParallelTrainingJobs": 2},
        },
        "TrainingJobDefinition": {
            "ResourceConfig": {"InstanceType": "ml.c5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 10},
            "EnableManagedSpotTraining": True,
        },
        "HyperParameterTuningJobStatus": status,
        "CreationTime": T0,
        "HyperParameterTuningEndTime": T0 + timedelta(hours=1),
        "TrainingJobStatusCounters": {"Completed": 3, "InProgress": 0, "RetryableError": 0,
                                      "NonRetryableError": 1, "Stopped": 1},
        "ObjectiveStatusCounters": {"Succeeded": 3, "Pending": 0, "Failed": 2},
        "ConsumedResources": {"RuntimeInSeconds": 3600},
        **extra,
    }


def described(job: dict, training_seconds: int, billable_seconds: int) -> dict:
    return {
        "TrainingJobName": job["TrainingJobName"],
        "TrainingJobArn": job["TrainingJobArn"],
        "TrainingJobStatus": job["TrainingJobStatus"],
        "SecondaryStatus": "Completed",
        "HyperParameters": {
            "rl.training.config.lr": job["TunedHyperParameters"]["rl.training.config.lr"],
            "rl.algorithm": "PPO",
            "rl.env": "CartPole-v1",
            "_tuning_objective_metric": "episode_reward_mean",
            "sagemaker_estimator_module": '"x"',
        },
        "AlgorithmSpecification": {"TrainingImage": "123.dkr.ecr.us-east-1.amazonaws.com/rltune:abc",
                                   "TrainingInputMode": "File"},
        "ModelArtifacts": {"S3ModelArtifacts": f"s3://bucket/rltune/output/{job['TrainingJobName']}/output/model.tar.gz"},
        "CheckpointConfig": {"S3Uri": "s3://bucket/rltune/checkpoints/x"},
        "ResourceConfig": {"InstanceType": "ml.c5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 10},
        "EnableManagedSpotTraining": True,
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200},
        "CreationTime": job["CreationTime"],
        "TrainingStartTime": job["TrainingStartTime"],
        "TrainingEndTime": job["TrainingEndTime"],
        "TrainingTimeInSeconds": training_seconds,
        "BillableTimeInSeconds": billable_seconds,
    }


def test_best_job_record_has_everything_needed_to_use_it_and_to_see_the_cost() -> None:
    jobs = [
        summary(1, 120.5, TrainingTimeInSeconds=600, BillableTimeInSeconds=216),
        summary(2, 480.0, TrainingTimeInSeconds=600, BillableTimeInSeconds=216),
        summary(3, 310.0, TrainingTimeInSeconds=600, BillableTimeInSeconds=216),
        summary(4, None, status="Failed", FailureReason="AlgorithmError: boom",
                TrainingTimeInSeconds=100, BillableTimeInSeconds=36),
        summary(5, None, status="Stopped", TrainingTimeInSeconds=100, BillableTimeInSeconds=36),
    ]
    best = described(jobs[1], 600, 216)
    record = build_record(experiment="cartpole", tuning_job=tuning_job(), training_jobs=list(reversed(jobs)),
                          best_training_job=best, execution_arn="arn:aws:states:us-east-1:1:execution:sm:run-1")

    assert json.loads(json.dumps(record)) == record  # JSON-serialisable as is
    assert record["experiment"] == "cartpole"
    assert record["tuning_job"] == TUNING
    assert record["execution_arn"].endswith(":run-1")
    assert record["status"] == "Completed"
    assert record["failure"] is None
    assert record["objective"] == {"name": "episode_reward_mean", "type": "Maximize", "value": 480.0}
    b = record["best_training_job"]
    assert b["name"] == jobs[1]["TrainingJobName"]
    assert b["tuned_hyperparameters"] == {"rl.training.config.lr": "0.002"}
    assert b["static_hyperparameters"] == {"rl.algorithm": "PPO", "rl.env": "CartPole-v1"}
    assert b["model_artifacts"].endswith(f"{jobs[1]['TrainingJobName']}/output/model.tar.gz")
    assert b["objective_value"] == 480.0
    assert record["counts"] == {"completed": 3, "failed": 1, "stopped": 1, "in_progress": 0, "stopping": 0,
                                "total": 5, "with_objective": 3}
    cost = record["cost"]
    assert cost["training_seconds"] == 2000
    assert cost["billable_seconds"] == 720
    assert cost["spot_savings_percent"] == 64.0  # the console's figure for the seed's example
    assert cost["instance_type"] == "ml.c5.xlarge"
    assert cost["estimated_cost_usd"] == pytest.approx(720 / 3600 * 0.204, abs=1e-4)
    assert [j["objective_value"] for j in record["top_jobs"]] == [480.0, 310.0, 120.5]
    assert record["top_jobs"][0]["tuned_hyperparameters"] == {"rl.training.config.lr": "0.002"}
    assert record["start_time"] == "2026-03-01T12:00:00+00:00"
    assert record["end_time"] == "2026-03-01T13:00:00+00:00"


def test_minimize_ranks_lowest_first_and_keeps_only_top_five() -> None:
    jobs = [summary(i, float(v)) for i, v in enumerate([9, 3, 7, 1, 5, 8, 2], start=1)]
    record = build_record(experiment="e", tuning_job=tuning_job(objective_type="Minimize"), training_jobs=jobs,
                          best_training_job=described(jobs[3], 60, 60))
    assert [j["objective_value"] for j in record["top_jobs"]] == [1.0, 2.0, 3.0, 5.0, 7.0]
    assert record["objective"]["value"] == 1.0
    assert record["cost"]["spot_savings_percent"] == 0.0  # billed in full: no figures -> end - start


def test_failed_tuning_job_carries_its_reason_and_no_best_job() -> None:
    job = tuning_job(status="Failed", FailureReason="All training jobs failed")
    record = build_record(experiment="e", tuning_job=job, training_jobs=[summary(1, None, status="Failed")],
                          best_training_job=None, failure="TuningJobFailed")
    assert record["status"] == "Failed"
    assert record["failure"] == "TuningJobFailed; All training jobs failed"
    assert record["best_training_job"] is None
    assert record["objective"]["value"] is None
    assert record["top_jobs"] == []
    assert record["counts"]["failed"] == 1


def test_stopped_without_reason_still_explains_itself() -> None:
    record = build_record(experiment="e", tuning_job=tuning_job(status="Stopped"), training_jobs=[],
                          best_training_job=None)
    assert record["failure"] == "the tuning job ended Stopped"
    assert record["cost"]["spot_savings_percent"] is None


def test_accepts_iso_strings_and_decimals_as_the_local_backend_and_dynamodb_give_them() -> None:
    job = summary(1, 10.0)
    job["TrainingStartTime"] = "2026-03-01T12:00:00Z"
    job["TrainingEndTime"] = "2026-03-01T12:01:40Z"
    job["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] = Decimal("10.0")
    record = build_record(experiment="e", tuning_job=tuning_job(), training_jobs=[job], best_training_job=None)
    assert record["cost"]["training_seconds"] == 100
    assert record["top_jobs"][0]["objective_value"] == 10.0
    assert isinstance(record["top_jobs"][0]["objective_value"], float)


def test_helpers() -> None:
    assert spot_savings_percent(1000, 360) == 64.0
    assert spot_savings_percent(0, 0) is None
    tuned, static = split_hyperparameters({"a": 1, "b": "x", "sagemaker_program": "p"}, {"a": "1"})
    assert tuned == {"a": "1"}
    assert static == {"b": "x"}
    ties = [summary(2, 1.0), summary(1, 1.0)]
    assert [j["TrainingJobName"] for j in rank_jobs(ties, "Maximize")] == sorted(j["TrainingJobName"] for j in ties)
    with pytest.raises(TypeError, match="datetime or an ISO string"):
        build_record(experiment="e", tuning_job={"CreationTime": 12}, training_jobs=[], best_training_job=None)
