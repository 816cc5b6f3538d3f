"""The workflow's three steps as plain functions over injected AWS clients: start, record, stop.

The Lambda handlers in `lambdas/` only parse their event, build clients and call these, so every
decision here is tested with moto or botocore's Stubber. Import cost matters (this runs at every cold
start): the module imports only the standard library and `rltune.record` at the top; pydantic
(payload validation) and botocore are imported inside the functions that need them.

Errors raised here become Step Functions error names (the exception's class name):
- `InvalidConfig`: the payload fails validation; nothing was sent to SageMaker;
- `SageMakerThrottling` / `SageMakerUnavailable`: transient (throttling, an internal error or a lost connection
  on any AWS call a step makes: SageMaker, DynamoDB, EventBridge), retried by the state machine with backoff;
- `ResourceLimitExceeded`: an account quota is exhausted; the message names the quota to raise;
- `SageMakerRejected`: any other SageMaker refusal (the message carries SageMaker's code and text).
"""

# ruff: noqa: PLC0415  (pydantic-backed modules are imported where needed: cold-start cost)
from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from rltune.record import TERMINAL_TUNING_STATUSES, build_record, plain, rank_jobs

if TYPE_CHECKING:
    from rltune.environments import DeploymentTarget, Guardrails
    from rltune.errors import Issue

LOG = logging.getLogger(__name__)

EVENT_SOURCE = "rltune"
EVENT_DETAIL_TYPE = "Tuning Run Completed"
EXECUTION_TAG = "rltune:execution"

THROTTLING_CODES = frozenset({"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded",
                              "ProvisionedThroughputExceededException", "SlowDown"})
UNAVAILABLE_CODES = frozenset({"InternalFailure", "InternalServerError", "ServiceUnavailable", "InternalError",
                               "InternalException", "InternalServerException", "ServiceUnavailableException"})
# Training jobs that have started bill time; only they are worth a DescribeTrainingJob for cost figures.
DESCRIBE_WORKERS = 8


class InvalidConfig(Exception):  # the class name is the Step Functions error name
    """The payload is invalid; the message lists every problem (path: message), one per line."""


class ResourceLimitExceeded(Exception):
    """An account quota stops the tuning job; the message names the quota and where to raise it."""


class SageMakerThrottling(Exception):
    """An AWS call of a step was throttled: retried with exponential backoff and jitter by the state machine.
    (Named for the service the workflow mostly calls; DynamoDB and EventBridge throttling raise it too.)"""


class SageMakerUnavailable(Exception):
    """An AWS call of a step met an internal error or a lost connection: retried like throttling."""


class SageMakerRejected(Exception):
    """SageMaker refused the call for another reason (validation, access...): not retried."""


def _error_code(error: Exception) -> str:
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _error_message(error: Exception) -> str:
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Message", error))


def transient_error(code: str, message: str, action: str) -> Exception | None:
    """The retryable exception for an AWS error code, or None when retrying cannot help."""
    if code in THROTTLING_CODES:
        return SageMakerThrottling(f"{action}: AWS throttled the request ({code}): {message}")
    if code in UNAVAILABLE_CODES:
        return SageMakerUnavailable(f"{action}: AWS internal error ({code}): {message}")
    return None


def translate_aws_error(error: Exception) -> Exception | None:
    """A transient botocore error raised anywhere in a step (a ClientError with a throttling or internal-error
    code, or a connection failure) as the exception the state machine retries; None for any other error,
    which the state machine catches and records."""
    from botocore.exceptions import ClientError, HTTPClientError
    from botocore.exceptions import ConnectionError as BotocoreConnectionError

    if isinstance(error, ClientError):
        return transient_error(_error_code(error), _error_message(error), error.operation_name)
    if isinstance(error, BotocoreConnectionError | HTTPClientError):
        return SageMakerUnavailable(f"AWS connection failed: {error}")
    return None


def translate_client_error(error: Exception, action: str) -> Exception:
    """A botocore ClientError as the exception whose name the state machine retries or catches."""
    code, message = _error_code(error), _error_message(error)
    transient = transient_error(code, message, action)
    if transient is not None:
        return transient
    if code == "ResourceLimitExceeded":
        return ResourceLimitExceeded(quota_advice(message))
    return SageMakerRejected(f"{action}: SageMaker refused the request ({code or type(error).__name__}): {message}")


def quota_advice(message: str) -> str:
    """ResourceLimitExceeded, with the Service Quotas entry to raise (SageMaker quotes it in the message)."""
    quoted = re.search(r"'([^']*(?:usage|jobs?|instances?)[^']*)'", message)
    lowered = message.lower()
    if quoted:
        quota = f"the quota '{quoted.group(1)}'"
    elif "tuning" in lowered:
        quota = "'Number of concurrent hyperparameter tuning jobs' (or its parallel/total training job limits)"
    elif "spot" in lowered:
        quota = "'<instance type> for spot training job usage'"
    else:
        quota = "'<instance type> for training job usage' (the instance type you asked for)"
    return (
        f"ResourceLimitExceeded: {message} -- raise {quota} in the Service Quotas console "
        "(AWS services > Amazon SageMaker > Request increase), or lower max_parallel_jobs / pick another "
        "instance type in the payload"
    )


# ---------------------------------------------------------------------------------------------- start

MAX_TUNING_RUNTIME = 15_768_000  # SageMaker's ResourceLimits.MaxRuntimeInSeconds maximum


def workflow_max_tuning_runtime(guardrails: Guardrails) -> int:
    """The longest tuning job an environment's workflow waits for: every job in its own wave, each waiting
    for spot capacity as long as SageMaker lets it (2x its run time), plus 10 minutes (the payload's own
    formula). The state machine's timeout is this plus a margin; the stack passes it to the start Lambda."""
    return min(MAX_TUNING_RUNTIME, guardrails.max_jobs * 2 * guardrails.max_run_seconds + 600)


def tuning_runtime_issue(runtime: int | None, max_tuning_runtime: int | None) -> Issue | None:
    """The problem with a tuning job that may run longer than the workflow waits, or None."""
    from rltune.errors import Issue

    if max_tuning_runtime is None or runtime is None or runtime <= max_tuning_runtime:
        return None
    return Issue(
        "max_tuning_runtime_seconds",
        f"the tuning job may run {runtime} s but this environment's workflow waits at most "
        f"{max_tuning_runtime} s: set max_tuning_runtime_seconds <= {max_tuning_runtime} (or lower max_jobs, "
        "max_run_seconds or max_wait_seconds)",
    )


def _validate(raw_payload: Any, target: DeploymentTarget) -> Any:
    """The payload validated against the target's guardrails, as both start and its re-derivations see it."""
    from rltune.payload import validate_payload

    return validate_payload(raw_payload, target.guardrails, target.environment,
                            spot_by_default=target.spot_by_default)


def start_tuning_job(
    sagemaker: Any,
    raw_payload: Any,
    target: DeploymentTarget,
    *,
    execution_name: str,
    execution_arn: str | None = None,
    max_tuning_runtime: int | None = None,
) -> dict[str, Any]:
    """Validate, build the request and create the tuning job; idempotent per execution.

    `max_tuning_runtime` is what the state machine's timeout leaves for the tuning job: a longer
    `max_tuning_runtime_seconds` is refused, so the workflow always outlives its job.

    The job name derives from the execution name, so a retry (after a timeout, a throttle or a lost
    response) meets `ResourceInUse` for the job it created itself, and returns that job.
    """
    from rltune.errors import PayloadError
    from rltune.request import build_tuning_request

    try:
        payload = _validate(raw_payload, target)
        request = build_tuning_request(payload, target, execution_name)
    except PayloadError as error:
        raise InvalidConfig(str(error)) from None
    limits = request["HyperParameterTuningJobConfig"]["ResourceLimits"]
    issue = tuning_runtime_issue(limits.get("MaxRuntimeInSeconds"), max_tuning_runtime)
    if issue is not None:
        raise InvalidConfig(str(PayloadError([issue])))
    name = request["HyperParameterTuningJobName"]
    tags = [t for t in request.get("Tags", []) if t.get("Key") != EXECUTION_TAG]
    request["Tags"] = [*tags, {"Key": EXECUTION_TAG, "Value": execution_name}]
    created = True
    try:
        arn = sagemaker.create_hyper_parameter_tuning_job(**request)["HyperParameterTuningJobArn"]
    except sagemaker.exceptions.ResourceInUse:
        # The name embeds a hash of this execution's id: a job under it was created by this execution.
        created = False
        arn = sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)[
            "HyperParameterTuningJobArn"
        ]
        LOG.info("tuning job %s already exists (a retried start); returning it", name)
    except sagemaker.exceptions.ClientError as error:
        raise translate_client_error(error, f"CreateHyperParameterTuningJob {name}") from None
    return {
        "experiment": payload.experiment,
        "tuning_job_name": name,
        "tuning_job_arn": arn,
        "execution_arn": execution_arn,
        "created": created,
        "objective_metric": payload.objective_metric,
        "objective_type": payload.objective_type,
        "max_jobs": limits.get("MaxNumberOfTrainingJobs"),
        "max_parallel_jobs": limits.get("MaxParallelTrainingJobs"),
    }


def derive_run(raw_payload: Any, target: DeploymentTarget, execution_name: str) -> tuple[str, str] | None:
    """(experiment, tuning job name) an execution's start would use, or None for an invalid payload."""
    from rltune.errors import PayloadError
    from rltune.naming import tuning_job_name

    try:
        payload = _validate(raw_payload, target)
    except PayloadError:
        return None
    return payload.experiment, tuning_job_name(target.job_prefix, payload.experiment, execution_name)


# --------------------------------------------------------------------------------------------- record


def _paginate_training_jobs(sagemaker: Any, tuning_job_name: str) -> list[dict[str, Any]]:
    summaries: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {
        "HyperParameterTuningJobName": tuning_job_name,
        "SortBy": "FinalObjectiveMetricValue",
        "SortOrder": "Descending",
        "MaxResults": 100,
    }
    while True:
        page = sagemaker.list_training_jobs_for_hyper_parameter_tuning_job(**kwargs)
        summaries.extend(page.get("TrainingJobSummaries", []))
        token = page.get("NextToken")
        if not token:
            return summaries
        kwargs["NextToken"] = token


def collect_run(
    sagemaker: Any, tuning_job_name: str, *, workers: int = DESCRIBE_WORKERS
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any] | None]:
    """Describe the tuning job, list all its training jobs, describe the best one.

    Each summary of a job that started is enriched with DescribeTrainingJob's TrainingTimeInSeconds and
    BillableTimeInSeconds (the only source of spot billing), a few calls in parallel.
    """
    tuning_job = sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=tuning_job_name)
    summaries = _paginate_training_jobs(sagemaker, tuning_job_name)

    def describe(name: str) -> dict[str, Any]:
        return sagemaker.describe_training_job(TrainingJobName=name)

    started = [s for s in summaries if s.get("TrainingStartTime") is not None]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        described = dict(zip((s["TrainingJobName"] for s in started),
                             pool.map(describe, [s["TrainingJobName"] for s in started]), strict=True))
    for summary in summaries:
        details = described.get(summary["TrainingJobName"])
        if details:
            for key in ("TrainingTimeInSeconds", "BillableTimeInSeconds"):
                if details.get(key) is not None:
                    summary[key] = details[key]

    objective_type = (
        tuning_job.get("HyperParameterTuningJobConfig", {}).get("HyperParameterTuningJobObjective", {}).get("Type")
        or "Maximize"
    )
    ranked = rank_jobs(summaries, objective_type)
    # The full list is the truth (a job with no final objective cannot be best): no BestTrainingJob fallback.
    best = None
    if ranked:
        best_name = ranked[0]["TrainingJobName"]
        best = described.get(best_name) or describe(best_name)
    return tuning_job, summaries, best


def not_started_record(
    *, experiment: str, tuning_job_name: str | None, execution_arn: str | None, failure: str
) -> dict[str, Any]:
    """The record of an execution whose tuning job never started (invalid payload, quota, refusal)."""
    return build_record(
        experiment=experiment,
        tuning_job={"HyperParameterTuningJobName": tuning_job_name, "HyperParameterTuningJobStatus": "NotStarted"},
        training_jobs=[],
        best_training_job=None,
        execution_arn=execution_arn,
        failure=failure,
    )


def describe_failure(error: Mapping[str, Any] | None) -> str | None:
    """A Step Functions Catch result ({"Error", "Cause"}) as one readable line."""
    if not error:
        return None
    name = str(error.get("Error", "Error"))
    cause = error.get("Cause")
    if isinstance(cause, str):
        try:
            decoded = json.loads(cause)
        except ValueError:
            decoded = None
        if isinstance(decoded, Mapping) and "errorMessage" in decoded:
            cause = decoded["errorMessage"]
    return f"{name}: {cause}" if cause else name


def record_run(
    sagemaker: Any,
    *,
    experiment: str,
    tuning_job_name: str | None,
    execution_arn: str | None,
    failure: str | None = None,
    stop_if_running: bool = False,
    workers: int = DESCRIBE_WORKERS,
) -> dict[str, Any]:
    """The record of one run. With `stop_if_running`, a job still running is stopped first (no orphans)."""
    if tuning_job_name is None:
        return not_started_record(experiment=experiment, tuning_job_name=None, execution_arn=execution_arn,
                                  failure=failure or "the tuning job was not started")
    try:
        status = sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=tuning_job_name)[
            "HyperParameterTuningJobStatus"
        ]
    except sagemaker.exceptions.ResourceNotFound:
        return not_started_record(experiment=experiment, tuning_job_name=tuning_job_name,
                                  execution_arn=execution_arn, failure=failure or "the tuning job was not started")
    if stop_if_running and status == "InProgress":
        stop_tuning_job(sagemaker, tuning_job_name)
    tuning_job, summaries, best = collect_run(sagemaker, tuning_job_name, workers=workers)
    return build_record(experiment=experiment, tuning_job=tuning_job, training_jobs=summaries,
                        best_training_job=best, execution_arn=execution_arn, failure=failure)


def to_dynamodb_item(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record as a DynamoDB item: floats as Decimal; None values (DynamoDB allows them) kept as NULL."""
    return json.loads(json.dumps(plain(record)), parse_float=Decimal)


def from_dynamodb_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """Inverse of `to_dynamodb_item` (Decimals back to int/float)."""
    return plain(item)


def publish_record(
    record: Mapping[str, Any],
    *,
    table: Any,
    events: Any,
    event_bus: str = "default",
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> dict[str, Any]:
    """Write the record to the results table and put it on EventBridge; returns the stored record.

    The put is idempotent: one item per (experiment, tuning_job), so a retried Record overwrites the
    same item. Runs that never got a tuning job are keyed `not-started#<execution name>`.
    """
    stored = dict(record)
    stored["recorded_at"] = now().isoformat()
    if not stored.get("tuning_job"):
        execution = str(stored.get("execution_arn") or "unknown").rsplit(":", 1)[-1]
        stored["tuning_job"] = f"not-started#{execution}"
    table.put_item(Item=to_dynamodb_item(stored))
    detail = json.dumps(plain(stored))
    response = events.put_events(Entries=[{
        "Source": EVENT_SOURCE,
        "DetailType": EVENT_DETAIL_TYPE,
        "Detail": detail,
        "EventBusName": event_bus,
        "Resources": [r for r in (stored.get("execution_arn"), stored.get("tuning_job_arn")) if r],
    }])
    if response.get("FailedEntryCount"):
        entry = next((e for e in response.get("Entries", []) if e.get("ErrorCode")), {})
        transient = transient_error(str(entry.get("ErrorCode", "")), str(entry.get("ErrorMessage", "")),
                                    "PutEvents")
        raise transient or RuntimeError(f"EventBridge rejected the record event: {response.get('Entries')}")
    return plain(stored)


# ----------------------------------------------------------------------------------------------- stop


def stop_tuning_job(sagemaker: Any, tuning_job_name: str) -> str:
    """Stop a tuning job if it still runs. Returns what happened: stopped, already-ended, stopping, not-found."""
    try:
        status = sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=tuning_job_name)[
            "HyperParameterTuningJobStatus"
        ]
    except sagemaker.exceptions.ResourceNotFound:
        return "not-found"
    if status in TERMINAL_TUNING_STATUSES:
        return "already-ended"
    if status == "Stopping":
        return "stopping"
    try:
        sagemaker.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName=tuning_job_name)
    except sagemaker.exceptions.ClientError as error:
        # A job that ended between our describe and our stop is fine: the point is that it does not run.
        if _error_code(error) == "ValidationException" and "status" in _error_message(error).lower():
            return "already-ended"
        raise translate_client_error(error, f"StopHyperParameterTuningJob {tuning_job_name}") from None
    return "stopped"


def find_tuning_job_in_history(history_events: Sequence[Mapping[str, Any]]) -> str | None:
    """The tuning job name a Start task returned, from an execution's history (GetExecutionHistory events)."""
    for event in history_events:
        for key in ("taskSucceededEventDetails", "lambdaFunctionSucceededEventDetails", "stateExitedEventDetails"):
            output = (event.get(key) or {}).get("output")
            if not output:
                continue
            try:
                value = json.loads(output)
            except ValueError:
                continue
            if isinstance(value, Mapping) and isinstance(value.get("tuning_job_name"), str):
                return value["tuning_job_name"]
    return None


def tuning_job_of_execution(stepfunctions: Any, execution_arn: str) -> str | None:
    """The tuning job name an execution's Start task returned, read from its whole (paginated) history."""
    paginator = stepfunctions.get_paginator("get_execution_history")
    events = [e for page in paginator.paginate(executionArn=execution_arn) for e in page["events"]]
    return find_tuning_job_in_history(events)
