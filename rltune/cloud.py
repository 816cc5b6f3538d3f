"""Talking to a deployed environment: find its stack outputs, start a run, report its status, read records.

Every function takes its boto3 clients as arguments (the CLI builds them), so each is testable with moto.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rltune.pricing import REGION as PRICE_REGION
from rltune.pricing import hourly_price
from rltune.record import plain
from rltune.steps import from_dynamodb_item, tuning_job_of_execution

# Stack outputs the CLI reads (infra/stack.py publishes them under these names).
STATE_MACHINE_OUTPUT = "StateMachineArn"
TABLE_OUTPUT = "TableName"


class CloudError(RuntimeError):
    """A deployed environment is missing or not in the expected shape; the message says what to do."""


def stack_name(environment: str) -> str:
    """The environment's CloudFormation stack (infra/stack.py synthesizes it under this name)."""
    return f"RlTune-{environment}"


def stack_outputs(cloudformation: Any, environment: str) -> dict[str, str]:
    """{OutputKey: OutputValue} of the environment's stack."""
    name = stack_name(environment)
    try:
        stacks = cloudformation.describe_stacks(StackName=name)["Stacks"]
    except cloudformation.exceptions.ClientError as error:
        raise CloudError(
            f"stack {name} not found in this account/region ({error.response['Error'].get('Message', error)}); "
            f"deploy it with `make deploy ENV={environment}` or pass the right --env / AWS_REGION"
        ) from None
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}


def required_output(outputs: Mapping[str, str], key: str, environment: str) -> str:
    if key not in outputs:
        raise CloudError(f"stack {stack_name(environment)} has no output {key}: redeploy it "
                         f"(`make deploy ENV={environment}`) with this version of rltune")
    return outputs[key]


# ------------------------------------------------------------------------------------------------ cost


@dataclass(frozen=True)
class CostEstimate:
    instance_type: str
    instance_count: int
    max_jobs: int
    max_run_seconds: int
    hourly_usd: float | None
    spot: bool

    @property
    def instance_hours(self) -> float:
        return self.max_jobs * self.instance_count * self.max_run_seconds / 3600.0

    @property
    def worst_case_usd(self) -> float | None:
        """Every job running to its limit on demand: the ceiling of what the run can bill."""
        return None if self.hourly_usd is None else round(self.instance_hours * self.hourly_usd, 2)

    def describe(self) -> str:
        hours = (f"{self.max_jobs} jobs x {self.instance_count} x {self.instance_type} x "
                 f"{self.max_run_seconds / 3600:g} h")
        if self.worst_case_usd is None:
            price = f"no price for {self.instance_type} in rltune's table: check https://aws.amazon.com/sagemaker/pricing/"
        else:
            price = (f"at most ${self.worst_case_usd:,.2f} ({hours} at ${self.hourly_usd}/h on demand, "
                     f"{PRICE_REGION} list price)")
        note = (" Spot is on: SageMaker bills only the spot share (typically 60-70 % less); jobs stop early "
                "when a stop criterion is met." if self.spot else
                " Spot is off: on-demand prices apply; set use_spot to save typically 60-70 %.")
        return f"Worst case: {price}.{note}"


def estimate_cost(payload: Any, target_guardrails: Any = None, spot_by_default: bool = True) -> CostEstimate:
    """Worst-case cost of a validated payload: max jobs x max runtime x on-demand price of its instance."""
    limits = payload.run_limits(target_guardrails, spot_by_default)
    return CostEstimate(
        instance_type=payload.instance_type,
        instance_count=payload.instance_count,
        max_jobs=payload.max_jobs,
        max_run_seconds=limits.max_run_seconds,
        hourly_usd=hourly_price(payload.instance_type),
        spot=limits.spot,
    )


# ----------------------------------------------------------------------------------------------- start


def console_link(execution_arn: str) -> str:
    region = execution_arn.split(":")[3]
    return (f"https://{region}.console.aws.amazon.com/states/home?region={region}"
            f"#/v2/executions/details/{execution_arn}")


def start_execution(stepfunctions: Any, state_machine_arn: str, payload: Mapping[str, Any] | str,
                    name: str | None = None) -> str:
    """StartExecution with the payload as input; returns the execution ARN. The name makes it idempotent."""
    kwargs: dict[str, Any] = {
        "stateMachineArn": state_machine_arn,
        "input": payload if isinstance(payload, str) else json.dumps(payload),
    }
    if name:
        kwargs["name"] = name
    return stepfunctions.start_execution(**kwargs)["executionArn"]


# ---------------------------------------------------------------------------------------------- status


def execution_status(stepfunctions: Any, sagemaker: Any, execution_arn: str) -> dict[str, Any]:
    """Execution state, and (once started) the tuning job's status, counters and best job so far."""
    execution = stepfunctions.describe_execution(executionArn=execution_arn)
    status: dict[str, Any] = {
        "execution_arn": execution_arn,
        "state": execution["status"],
        "started": execution.get("startDate"),
        "stopped": execution.get("stopDate"),
        "error": execution.get("error"),
        "cause": execution.get("cause"),
        "tuning_job": None,
    }
    name = tuning_job_of_execution(stepfunctions, execution_arn)
    if name:
        job = sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
        best = job.get("BestTrainingJob") or {}
        metric = best.get("FinalHyperParameterTuningJobObjectiveMetric") or {}
        status["tuning_job"] = {
            "name": name,
            "status": job["HyperParameterTuningJobStatus"],
            "counters": job.get("TrainingJobStatusCounters", {}),
            "objective": job.get("HyperParameterTuningJobConfig", {}).get("HyperParameterTuningJobObjective"),
            "best_so_far": {
                "name": best.get("TrainingJobName"),
                "objective_value": metric.get("Value"),
                "tuned_hyperparameters": best.get("TunedHyperParameters", {}),
            } if best else None,
            "failure": job.get("FailureReason"),
        }
    if execution.get("output"):
        status["record"] = json.loads(execution["output"])
    return plain(status)


# ------------------------------------------------------------------------------------------------ best


def latest_records(table: Any, experiment: str, limit: int = 10) -> list[dict[str, Any]]:
    """The experiment's records, newest first (by end, then record time)."""
    from boto3.dynamodb.conditions import Key  # noqa: PLC0415  (boto3 only when talking to AWS)

    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"KeyConditionExpression": Key("experiment").eq(experiment)}
    while True:
        page = table.query(**kwargs)
        items.extend(from_dynamodb_item(i) for i in page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    items.sort(key=lambda r: (r.get("end_time") or r.get("recorded_at") or "", r.get("recorded_at") or ""),
               reverse=True)
    return items[:limit]


def record_row(record: Mapping[str, Any]) -> list[str]:
    """One table row per record: when, job, status, objective, best job, jobs, savings, cost."""
    objective = record.get("objective") or {}
    best = record.get("best_training_job") or {}
    counts = record.get("counts") or {}
    cost = record.get("cost") or {}
    value = objective.get("value")
    savings = cost.get("spot_savings_percent")
    usd = cost.get("estimated_cost_usd")
    return [
        str(record.get("end_time") or record.get("recorded_at") or "")[:19],
        str(record.get("tuning_job", "")),
        str(record.get("status", "")),
        "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:g}",
        str(best.get("name") or "-"),
        f"{counts.get('completed', 0)}/{counts.get('failed', 0)}/{counts.get('stopped', 0)}",
        "" if savings is None else f"{savings:g} %",
        "" if usd is None else f"${usd:,.2f}",
    ]


RECORD_COLUMNS: Sequence[str] = ("ended", "tuning job", "status", "objective", "best training job",
                                 "ok/failed/stopped", "spot savings", "cost")
