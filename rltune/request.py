"""The payload as a complete SageMaker `CreateHyperParameterTuningJob` request.

`build_tuning_request` is a pure function: the same payload, target and execution id always give the
same request, so a retried start asks for the same job name and SageMaker refuses a duplicate instead
of billing twice. Like `payload.py`, this module runs in the start Lambda: standard library, pydantic
and rltune's contracts only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rltune import hyperparameters as hp
from rltune import metrics
from rltune.environments import CHECKPOINTS_FOLDER, OUTPUT_FOLDER, DeploymentTarget
from rltune.errors import PayloadError
from rltune.naming import tuning_job_name
from rltune.payload import TuningPayload, target_issues, validate_payload

#: Where the container writes checkpoints; SageMaker syncs it with CheckpointConfig.S3Uri.
CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"

#: The default payload: the seed-compatible CartPole PPO example.
DEFAULT_PAYLOAD = Path(__file__).resolve().parent.parent / "examples" / "cartpole_ppo.json"


def load_default_payload() -> TuningPayload:
    """The validated default payload (examples/cartpole_ppo.json)."""
    return validate_payload(DEFAULT_PAYLOAD.read_bytes())


def s3_prefix(target: DeploymentTarget, kind: str, job_name: str) -> str:
    """`s3://<bucket>/<key_prefix>/<kind>/<job_name>/`: one prefix per tuning job, ending in '/'.

    The trailing slash matters: SageMaker syncs everything under a checkpoint prefix, and without it
    `.../job-1` would also match `.../job-10`.
    """
    key_prefix = target.key_prefix.strip("/")
    parts = [p for p in (key_prefix, kind, job_name) if p]
    return f"s3://{target.bucket}/{'/'.join(parts)}/"


def build_tuning_request(payload: TuningPayload, target: DeploymentTarget, execution_id: str) -> dict[str, Any]:
    """The exact kwargs for `boto3.client("sagemaker").create_hyper_parameter_tuning_job(**request)`.

    Raises `PayloadError` when the payload breaks the target environment's guardrails or spot default
    (the start Lambda validates with the same guardrails first, so this is a second line of defence).
    """
    if not payload.validated:  # built by hand: resolve ranges and defaults the one supported way
        raw = payload.model_dump(mode="json", by_alias=True, exclude_unset=True)
        payload = validate_payload(raw, target.guardrails, target.environment, spot_by_default=target.spot_by_default)
    issues = target_issues(payload, target.guardrails, target.environment, target.spot_by_default)
    if issues:
        raise PayloadError(issues)

    experiment = payload.experiment or "rltune"
    name = tuning_job_name(target.job_prefix, experiment, execution_id)
    limits = payload.run_limits(target.guardrails, target.spot_by_default)
    parallel = min(payload.parallel_jobs(target.guardrails), payload.max_jobs)

    config: dict[str, Any] = {
        "Strategy": payload.strategy,
        "HyperParameterTuningJobObjective": {"Type": payload.objective_type, "MetricName": payload.objective_metric},
        "ResourceLimits": {
            "MaxParallelTrainingJobs": parallel,
            "MaxRuntimeInSeconds": limits.tuning_runtime_seconds,
        },
        "ParameterRanges": payload.parameter_ranges(),
        "TrainingJobEarlyStoppingType": payload.early_stopping,
    }
    if payload.strategy != "Grid":  # Grid runs every combination; SageMaker rejects a job count with it
        config["ResourceLimits"]["MaxNumberOfTrainingJobs"] = payload.max_jobs
    if payload.strategy == "Hyperband" and payload.hyperband is not None:
        hyperband: dict[str, int] = {"MinResource": payload.hyperband.min_resource}
        if payload.hyperband.max_resource is not None:
            hyperband["MaxResource"] = payload.hyperband.max_resource
        config["StrategyConfig"] = {"HyperbandStrategyConfig": hyperband}
    criteria = payload.completion_criteria
    if criteria is not None:
        completion: dict[str, Any] = {}
        if criteria.target_objective_value is not None:
            completion["TargetObjectiveMetricValue"] = float(criteria.target_objective_value)
        if criteria.max_jobs_not_improving is not None:
            completion["BestObjectiveNotImproving"] = {
                "MaxNumberOfTrainingJobsNotImproving": criteria.max_jobs_not_improving
            }
        if criteria.complete_on_convergence is not None:
            completion["ConvergenceDetected"] = {
                "CompleteOnConvergence": "Enabled" if criteria.complete_on_convergence else "Disabled"
            }
        if completion:
            config["TuningJobCompletionCriteria"] = completion
    if payload.random_seed is not None:
        config["RandomSeed"] = payload.random_seed

    static = {key: hp.encode_value(value) for key, value in payload.static_hyperparameters.items()}
    if hp.TIME_TOTAL_KEY not in static:
        static[hp.TIME_TOTAL_KEY] = hp.encode_value(payload.stop_time_total_s(limits))

    output: dict[str, Any] = {"S3OutputPath": s3_prefix(target, OUTPUT_FOLDER, name)}
    resources: dict[str, Any] = {
        "InstanceType": payload.instance_type,
        "InstanceCount": payload.instance_count,
        "VolumeSizeInGB": payload.volume_size_gb,
    }
    if target.kms_key_id:
        output["KmsKeyId"] = target.kms_key_id
        resources["VolumeKmsKeyId"] = target.kms_key_id
    stopping: dict[str, int] = {"MaxRuntimeInSeconds": limits.max_run_seconds}
    if limits.spot and limits.max_wait_seconds is not None:
        stopping["MaxWaitTimeInSeconds"] = limits.max_wait_seconds

    environment = {
        "RLTUNE_EXPERIMENT": experiment,
        "RLTUNE_ENVIRONMENT": target.environment,
        "RAY_USAGE_STATS_ENABLED": "0",  # network isolation: nothing to phone home to
        **payload.environment,
    }

    definition: dict[str, Any] = {
        "AlgorithmSpecification": {
            "TrainingImage": target.image_uri,
            "TrainingInputMode": "File",
            "MetricDefinitions": metrics.metric_definitions(),
        },
        "RoleArn": target.role_arn,
        "StaticHyperParameters": static,
        "OutputDataConfig": output,
        "ResourceConfig": resources,
        "StoppingCondition": stopping,
        # The trainer needs no network; SageMaker still syncs checkpoints, output and the model.
        "EnableNetworkIsolation": True,
        "EnableInterContainerTrafficEncryption": True,
        "EnableManagedSpotTraining": limits.spot,
        "CheckpointConfig": {
            "S3Uri": s3_prefix(target, CHECKPOINTS_FOLDER, name),
            "LocalPath": CHECKPOINT_LOCAL_PATH,
        },
        "Environment": environment,
    }
    if payload.max_retries > 0:
        definition["RetryStrategy"] = {"MaximumRetryAttempts": payload.max_retries}
    if target.vpc is not None:
        definition["VpcConfig"] = {
            "SecurityGroupIds": list(target.vpc.security_group_ids),
            "Subnets": list(target.vpc.subnet_ids),
        }

    request: dict[str, Any] = {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": config,
        "TrainingJobDefinition": definition,
        "Tags": [
            {"Key": "rltune:experiment", "Value": experiment},
            {"Key": "rltune:environment", "Value": target.environment},
            *({"Key": key, "Value": value} for key, value in payload.tags.items()),
        ],
    }
    if payload.warm_start is not None:
        request["WarmStartConfig"] = {
            "ParentHyperParameterTuningJobs": [
                {"HyperParameterTuningJobName": parent} for parent in payload.warm_start.parents
            ],
            "WarmStartType": payload.warm_start.type,
        }
    return request
