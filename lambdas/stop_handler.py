"""No orphans: on an ABORTED or TIMED_OUT execution, stop its tuning job and record the stop.

Triggered by an EventBridge rule ("Step Functions Execution Status Change" of this state machine).
The tuning job name is derived from the execution's input exactly as the start derived it (so even a
job whose start never returned is found); the execution history is the fallback. Idempotent: a job
that already ended is left alone and recorded as it is.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.logging import Logger

from lambdas import _runtime
from rltune.steps import derive_run, publish_record, record_run, stop_tuning_job, tuning_job_of_execution

logger = Logger()


def _execution_input(detail: dict[str, Any]) -> Any:
    raw = detail.get("input")
    if raw is None:  # EventBridge leaves out inputs over its size limit: ask Step Functions
        raw = _runtime.client("stepfunctions").describe_execution(executionArn=detail["executionArn"]).get("input")
    try:
        return json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return raw


@logger.inject_lambda_context(log_event=False)
@_runtime.traced
@_runtime.retryable_aws_errors
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    detail = event["detail"]
    execution_arn, status = detail["executionArn"], detail.get("status", "ABORTED")
    logger.append_keys(execution_arn=execution_arn, execution_status=status)
    derived = derive_run(_execution_input(detail), _runtime.deployment_target(), detail["name"])
    if derived:
        experiment, name = derived
    else:
        experiment, name = "unknown", tuning_job_of_execution(_runtime.client("stepfunctions"), execution_arn)
    if name is None:
        logger.info("no tuning job was started by this execution; nothing to stop")
        return {"action": "none", "tuning_job": None}
    sagemaker = _runtime.client("sagemaker")
    action = stop_tuning_job(sagemaker, name)
    logger.info("stop requested", extra={"tuning_job": name, "action": action})
    record = record_run(sagemaker, experiment=experiment, tuning_job_name=name, execution_arn=execution_arn,
                        failure=f"execution {status}: tuning job {action}")
    if record["status"] == "NotStarted":
        return {"action": action, "tuning_job": name}
    stored = publish_record(record, table=_runtime.table(), events=_runtime.client("events"),
                            event_bus=_runtime.event_bus())
    return {"action": action, "tuning_job": name, "status": stored["status"]}
