"""Start step: validate the payload, build the request, create the tuning job (idempotent per execution).

Event (built by the state machine): {"payload": <execution input>, "execution_name": ..., "execution_arn": ...}.
Returns the small state the rest of the workflow carries: experiment, tuning job name and ARN, objective.
Raises `InvalidConfig` (every validation message) before any SageMaker call when the payload is bad.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.logging import Logger

from lambdas import _runtime
from rltune.steps import start_tuning_job

logger = Logger()


def _max_tuning_runtime() -> int | None:
    value = os.environ.get("RLTUNE_MAX_TUNING_RUNTIME_SECONDS")
    return int(value) if value else None


@logger.inject_lambda_context(log_event=False)
@_runtime.traced
@_runtime.retryable_aws_errors
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    logger.append_keys(execution_arn=event.get("execution_arn"))
    result = start_tuning_job(
        _runtime.client("sagemaker"),
        event["payload"],
        _runtime.deployment_target(),
        execution_name=event["execution_name"],
        execution_arn=event.get("execution_arn"),
        max_tuning_runtime=_max_tuning_runtime(),
    )
    # (LogRecord reserves names such as "created": prefix every extra key)
    logger.info("tuning job ready", extra={"tuning_job": result["tuning_job_name"], "job_created": result["created"],
                                           "experiment": result["experiment"]})
    return result
