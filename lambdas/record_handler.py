"""Record step: describe the run, pick the best job, write the record to the table and to EventBridge.

Event (built by the state machine):
    {"execution_arn", "execution_name", "input": <execution input>,
     "tuning_job_name"?, "experiment"?, "error"?: {"Error", "Cause"}}
Without a tuning job name (the start failed) the name is derived from the input, exactly as the start
did, so a job the start created before failing is found, stopped and recorded. Returns the record: it
is the execution's output.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import Logger

from lambdas import _runtime
from rltune.steps import derive_run, describe_failure, publish_record, record_run

logger = Logger()


def _experiment_hint(raw: Any) -> str:
    return raw["experiment"] if isinstance(raw, dict) and isinstance(raw.get("experiment"), str) else "unknown"


@logger.inject_lambda_context(log_event=False)
@_runtime.traced
@_runtime.retryable_aws_errors
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    logger.append_keys(execution_arn=event.get("execution_arn"))
    failure = describe_failure(event.get("error"))
    experiment, name = event.get("experiment"), event.get("tuning_job_name")
    if name is None:
        derived = derive_run(event.get("input"), _runtime.deployment_target(), event["execution_name"])
        experiment, name = derived if derived else (_experiment_hint(event.get("input")), None)
    record = record_run(
        _runtime.client("sagemaker"),
        experiment=experiment or "unknown",
        tuning_job_name=name,
        execution_arn=event.get("execution_arn"),
        failure=failure,
        # An error path must not leave a job running: stop it before recording.
        stop_if_running=failure is not None,
    )
    stored = publish_record(record, table=_runtime.table(), events=_runtime.client("events"),
                            event_bus=_runtime.event_bus())
    logger.info("run recorded", extra={"tuning_job": stored["tuning_job"], "status": stored["status"]})
    return stored
