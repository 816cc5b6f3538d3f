"""What every handler shares: AWS clients built once per container, and the deployment target.

Copied into every asset. boto3 is imported lazily so a module import stays cheap for tests and tools.
"""

# ruff: noqa: PLC0415  (boto3 and pydantic are imported on first use: cold-start cost)
from __future__ import annotations

import functools
import os
from collections.abc import Callable
from functools import cache
from typing import Any

# Step Functions retries throttling with backoff and jitter; the SDK retries once more inside the call.
CLIENT_CONFIG = {"retries": {"mode": "standard", "total_max_attempts": 2}, "connect_timeout": 5, "read_timeout": 30}


@cache
def client(service: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(service, config=Config(**CLIENT_CONFIG))  # type: ignore[arg-type]


@cache
def table() -> Any:
    import boto3
    from botocore.config import Config

    resource = boto3.resource("dynamodb", config=Config(**CLIENT_CONFIG))  # type: ignore[arg-type]
    return resource.Table(os.environ["RLTUNE_TABLE_NAME"])


def event_bus() -> str:
    return os.environ.get("RLTUNE_EVENT_BUS", "default")


def deployment_target() -> Any:
    from rltune.environments import DeploymentTarget

    return DeploymentTarget.from_environment_variables(os.environ)


def traced(handler: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """Powertools Tracer around `handler`, built on the first invocation.

    Building a Tracer imports the X-Ray SDK, which creates a botocore client (~0.3-0.6 s). Deferring it keeps
    the module import cheap; the first invocation pays it together with its own boto3 clients, which it
    needs anyway (and which the Tracer, built first, then traces).
    """
    wrapped: list[Callable[[Any, Any], Any]] = []

    @functools.wraps(handler)
    def run(event: Any, context: Any) -> Any:
        if not wrapped:
            from aws_lambda_powertools.tracing import Tracer

            wrapped.append(Tracer().capture_lambda_handler(handler, capture_response=False))
        return wrapped[0](event, context)

    return run


def retryable_aws_errors(handler: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """Re-raise a transient AWS error from anywhere in the handler (throttling, an internal error or a lost
    connection on SageMaker, DynamoDB or EventBridge, after the SDK's own retry) under the name the state
    machine retries with backoff and jitter (`SageMakerThrottling`/`SageMakerUnavailable`). Any other error
    propagates as it is: the state machine catches it, records the run and fails."""

    @functools.wraps(handler)
    def run(event: Any, context: Any) -> Any:
        try:
            return handler(event, context)
        except Exception as error:
            from rltune.steps import translate_aws_error

            transient = translate_aws_error(error)
            if transient is None:
                raise
            raise transient from error

    return run


def reset() -> None:
    """Forget cached clients (tests switch between mocked backends)."""
    client.cache_clear()
    table.cache_clear()
