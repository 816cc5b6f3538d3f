"""The workflow's steps (rltune.steps) against moto and botocore's Stubber (where moto has gaps)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from rltune import steps
from rltune.environments import DeploymentTarget, Guardrails
from rltune.naming import training_job_name, tuning_job_name

ROOT = Path(__file__).resolve().parents[2]
PAYLOAD = json.loads((ROOT / "examples" / "cartpole_ppo.json").read_text())
TARGET = DeploymentTarget(
    environment="dev",
    image_uri="123456789012.dkr.ecr.us-east-1.amazonaws.com/rltune:abc",
    role_arn="arn:aws:iam::123456789012:role/rltune-sagemaker",
    bucket="rltune-dev-bucket",
    job_prefix="rlt-dev-",
    guardrails=Guardrails(max_jobs=20, max_parallel_jobs=2, allowed_instance_types=("ml.c5.xlarge",),
                          max_run_seconds=7200),
)
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def sagemaker_client():
    return boto3.client("sagemaker", region_name="us-east-1")


# ------------------------------------------------------------------------------------------------ start


@mock_aws
def test_start_creates_the_job_named_after_the_execution_and_a_retry_returns_it() -> None:
    client = sagemaker_client()
    first = steps.start_tuning_job(client, copy.deepcopy(PAYLOAD), TARGET, execution_name="run-1",
                                   execution_arn="arn:aws:states:us-east-1:1:execution:sm:run-1")
    expected = tuning_job_name("rlt-dev-", "cartpole-ppo", "run-1")
    assert first["tuning_job_name"] == expected
    assert first["created"] is True
    assert first["experiment"] == "cartpole-ppo"
    assert first["objective_metric"] == "episode_reward_mean"

    again = steps.start_tuning_job(client, copy.deepcopy(PAYLOAD), TARGET, execution_name="run-1")
    assert again["created"] is False
    assert again["tuning_job_arn"] == first["tuning_job_arn"]
    names = [j["HyperParameterTuningJobName"] for j in
             client.list_hyper_parameter_tuning_jobs()["HyperParameterTuningJobSummaries"]]
    assert names == [expected]


def test_invalid_payload_lists_every_problem_and_calls_nothing() -> None:
    client = sagemaker_client()
    bad = {**PAYLOAD, "max_jobs": 0, "objective_metric": "no_such_metric"}
    with Stubber(client) as stub, pytest.raises(steps.InvalidConfig) as error:  # no response queued: any call fails
        steps.start_tuning_job(client, bad, TARGET, execution_name="run-1")
    stub.assert_no_pending_responses()
    message = str(error.value)
    assert "max_jobs" in message
    assert "objective_metric" in message


def test_a_run_longer_than_the_workflow_waits_is_refused_before_sagemaker() -> None:
    client = sagemaker_client()
    with Stubber(client), pytest.raises(steps.InvalidConfig, match="max_tuning_runtime_seconds <= 600"):
        steps.start_tuning_job(client, copy.deepcopy(PAYLOAD), TARGET, execution_name="run-1",
                               max_tuning_runtime=600)


@pytest.mark.parametrize(
    ("code", "message", "expected", "match"),
    [
        ("ResourceLimitExceeded", "The account-level service limit 'ml.c5.xlarge for training job usage' is 2",
         steps.ResourceLimitExceeded, "raise the quota 'ml.c5.xlarge for training job usage' in the Service Quotas"),
        ("ThrottlingException", "Rate exceeded", steps.SageMakerThrottling, "throttled"),
        ("InternalFailure", "oops", steps.SageMakerUnavailable, "internal error"),
        ("ValidationException", "bad image", steps.SageMakerRejected, "ValidationException.*bad image"),
    ],
)
def test_sagemaker_errors_become_the_names_the_state_machine_retries_or_catches(code, message, expected,
                                                                                  match) -> None:
    client = sagemaker_client()
    with Stubber(client) as stub:
        stub.add_client_error("create_hyper_parameter_tuning_job", service_error_code=code,
                              service_message=message, http_status_code=400)
        with pytest.raises(expected, match=match):
            steps.start_tuning_job(client, copy.deepcopy(PAYLOAD), TARGET, execution_name="run-1")


# ----------------------------------------------------------------------------------------------- record

TUNING = tuning_job_name("rlt-dev-", "cartpole-ppo", "run-1")
TUNING_ARN = f"arn:aws:sagemaker:us-east-1:123456789012:hyper-parameter-tuning-job/{TUNING}"


def describe_tuning(status: str = "Completed", **extra):
    return {
        "HyperParameterTuningJobName": TUNING,
        "HyperParameterTuningJobArn": TUNING_ARN,
        "HyperParameterTuningJobConfig": {
            "Strategy": "Bayesian",
            "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "episode_reward_mean"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 4, "MaxParallelTrainingJobs": 2},
        },
        "HyperParameterTuningJobStatus": status,
        "CreationTime": T0,
        "HyperParameterTuningEndTime": T0 + timedelta(hours=1),
        "TrainingJobStatusCounters": {"Completed": 3, "Stopped": 1},
        "ObjectiveStatusCounters": {"Succeeded": 3, "Failed": 1},
        **extra,
    }


def job_summary(index: int, value: float | None, status: str = "Completed", started: bool = True):
    name = training_job_name(TUNING, index)
    summary = {
        "TrainingJobName": name,
        "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{name}",
        "CreationTime": T0,
        "TrainingJobStatus": status,
        "TunedHyperParameters": {"rl.training.config.lr": f"{index}e-4"},
    }
    if started:
        summary["TrainingStartTime"] = T0
        summary["TrainingEndTime"] = T0 + timedelta(minutes=10)
    if value is not None:
        summary["FinalHyperParameterTuningJobObjectiveMetric"] = {"MetricName": "episode_reward_mean",
                                                                  "Value": value}
    return summary


def describe_training(summary, training=600, billable=216):
    return {
        "TrainingJobName": summary["TrainingJobName"],
        "TrainingJobArn": summary["TrainingJobArn"],
        "TrainingJobStatus": summary["TrainingJobStatus"],
        "SecondaryStatus": "Completed",
        "HyperParameters": {**summary["TunedHyperParameters"], "rl.algorithm": "PPO"},
        "ModelArtifacts": {"S3ModelArtifacts": f"s3://b/rltune/output/{summary['TrainingJobName']}/model.tar.gz"},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "CreationTime": T0,
        "TrainingTimeInSeconds": training,
        "BillableTimeInSeconds": billable,
    }


def test_record_lists_every_page_describes_started_jobs_and_picks_the_best() -> None:
    client = sagemaker_client()
    page1 = [job_summary(2, 480.0), job_summary(1, 300.0)]
    page2 = [job_summary(3, None, status="Stopped"), job_summary(4, None, status="Stopped", started=False)]
    name = {"HyperParameterTuningJobName": TUNING}
    with Stubber(client) as stub:
        stub.add_response("describe_hyper_parameter_tuning_job", describe_tuning(), name)
        stub.add_response("describe_hyper_parameter_tuning_job", describe_tuning(), name)
        list_params = {**name, "SortBy": "FinalObjectiveMetricValue", "SortOrder": "Descending", "MaxResults": 100}
        stub.add_response("list_training_jobs_for_hyper_parameter_tuning_job",
                          {"TrainingJobSummaries": page1, "NextToken": "t"}, list_params)
        stub.add_response("list_training_jobs_for_hyper_parameter_tuning_job",
                          {"TrainingJobSummaries": page2}, {**list_params, "NextToken": "t"})
        for summary in (*page1, page2[0]):  # job 4 never started: nothing billed, nothing to describe
            stub.add_response("describe_training_job", describe_training(summary),
                              {"TrainingJobName": summary["TrainingJobName"]})
        record = steps.record_run(client, experiment="cartpole-ppo", tuning_job_name=TUNING,
                                  execution_arn="arn:x", workers=1)
        stub.assert_no_pending_responses()
    assert record["best_training_job"]["name"] == page1[0]["TrainingJobName"]
    assert record["best_training_job"]["static_hyperparameters"] == {"rl.algorithm": "PPO"}
    assert record["objective"]["value"] == 480.0
    assert record["counts"]["completed"] == 2
    assert record["counts"]["stopped"] == 2
    assert record["cost"]["training_seconds"] == 1800
    assert record["cost"]["billable_seconds"] == 648
    assert record["cost"]["spot_savings_percent"] == 64.0
    assert [j["objective_value"] for j in record["top_jobs"]] == [480.0, 300.0]


def test_record_on_an_error_path_stops_a_job_that_still_runs() -> None:
    client = sagemaker_client()
    name = {"HyperParameterTuningJobName": TUNING}
    with Stubber(client) as stub:
        stub.add_response("describe_hyper_parameter_tuning_job", describe_tuning("InProgress"), name)
        stub.add_response("describe_hyper_parameter_tuning_job", describe_tuning("InProgress"), name)
        stub.add_response("stop_hyper_parameter_tuning_job", {}, name)
        stub.add_response("describe_hyper_parameter_tuning_job", describe_tuning("Stopping"), name)
        stub.add_response("list_training_jobs_for_hyper_parameter_tuning_job", {"TrainingJobSummaries": []}, None)
        record = steps.record_run(client, experiment="e", tuning_job_name=TUNING, execution_arn="arn:x",
                                  failure="States.Timeout: Describe", stop_if_running=True)
        stub.assert_no_pending_responses()
    assert record["status"] == "Stopping"
    assert record["failure"] == "States.Timeout: Describe"


def test_record_of_a_job_that_never_started() -> None:
    client = sagemaker_client()
    with Stubber(client) as stub:
        stub.add_client_error("describe_hyper_parameter_tuning_job", service_error_code="ResourceNotFound",
                              http_status_code=400)
        record = steps.record_run(client, experiment="e", tuning_job_name=TUNING, execution_arn="arn:x",
                                  failure="ResourceLimitExceeded: raise the quota")
    assert record["status"] == "NotStarted"
    assert record["tuning_job"] == TUNING
    assert record["failure"] == "ResourceLimitExceeded: raise the quota"
    assert record["best_training_job"] is None


@pytest.mark.parametrize(
    ("status", "expected", "calls_stop"),
    [("InProgress", "stopped", True), ("Completed", "already-ended", False), ("Failed", "already-ended", False),
     ("Stopped", "already-ended", False), ("Stopping", "stopping", False)],
)
def test_stop_is_idempotent_and_leaves_ended_jobs_alone(status: str, expected: str, calls_stop: bool) -> None:
    client = sagemaker_client()
    name = {"HyperParameterTuningJobName": TUNING}
    with Stubber(client) as stub:
        stub.add_response("describe_hyper_parameter_tuning_job", describe_tuning(status), name)
        if calls_stop:
            stub.add_response("stop_hyper_parameter_tuning_job", {}, name)
        assert steps.stop_tuning_job(client, TUNING) == expected
        stub.assert_no_pending_responses()


def test_stop_tolerates_a_job_that_ended_in_between_and_a_missing_job() -> None:
    client = sagemaker_client()
    with Stubber(client) as stub:
        stub.add_response("describe_hyper_parameter_tuning_job", describe_tuning("InProgress"), None)
        stub.add_client_error("stop_hyper_parameter_tuning_job", service_error_code="ValidationException",
                              service_message="Job status is Completed; it cannot be stopped")
        assert steps.stop_tuning_job(client, TUNING) == "already-ended"
        stub.add_client_error("describe_hyper_parameter_tuning_job", service_error_code="ResourceNotFound")
        assert steps.stop_tuning_job(client, TUNING) == "not-found"


@mock_aws
def test_publish_writes_one_item_and_puts_the_event() -> None:
    dynamodb = boto3.resource("dynamodb", region_name="us-east-1")
    table = dynamodb.create_table(
        TableName="results", BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "experiment", "KeyType": "HASH"},
                   {"AttributeName": "tuning_job", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "experiment", "AttributeType": "S"},
                              {"AttributeName": "tuning_job", "AttributeType": "S"}],
    )
    sqs = boto3.client("sqs", region_name="us-east-1")
    queue_url = sqs.create_queue(QueueName="events")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events = boto3.client("events", region_name="us-east-1")
    events.put_rule(Name="runs", EventPattern=json.dumps({"source": ["rltune"],
                                                          "detail-type": ["Tuning Run Completed"]}))
    events.put_targets(Rule="runs", Targets=[{"Id": "q", "Arn": queue_arn}])

    record = {"experiment": "cartpole-ppo", "tuning_job": TUNING, "status": "Completed",
              "execution_arn": "arn:aws:states:us-east-1:1:execution:sm:run-1", "objective": {"value": 480.5},
              "cost": {"spot_savings_percent": 64.0, "training_seconds": 1800}}
    stored = steps.publish_record(record, table=table, events=events, now=lambda: T0)
    assert stored["recorded_at"] == T0.isoformat()

    item = table.get_item(Key={"experiment": "cartpole-ppo", "tuning_job": TUNING})["Item"]
    assert item["objective"]["value"] == Decimal("480.5")
    assert steps.from_dynamodb_item(item) == stored
    message = json.loads(sqs.receive_message(QueueUrl=queue_url)["Messages"][0]["Body"])
    assert message["detail-type"] == "Tuning Run Completed"
    assert message["detail"] == stored

    not_started = steps.publish_record({"experiment": "x", "tuning_job": None, "status": "NotStarted",
                                        "execution_arn": "arn:aws:states:us-east-1:1:execution:sm:run-9"},
                                       table=table, events=events)
    assert not_started["tuning_job"] == "not-started#run-9"


def test_failure_and_history_helpers() -> None:
    cause = json.dumps({"errorMessage": "2 problems in the tuning payload:\n- a: b", "errorType": "InvalidConfig"})
    assert steps.describe_failure({"Error": "InvalidConfig", "Cause": cause}) == (
        "InvalidConfig: 2 problems in the tuning payload:\n- a: b")
    assert steps.describe_failure({"Error": "States.Timeout"}) == "States.Timeout"
    assert steps.describe_failure(None) is None
    history = [
        {"type": "ExecutionStarted", "executionStartedEventDetails": {"input": "{}"}},
        {"type": "LambdaFunctionSucceeded",
         "lambdaFunctionSucceededEventDetails": {"output": json.dumps({"tuning_job_name": TUNING})}},
    ]
    assert steps.find_tuning_job_in_history(history) == TUNING
    assert steps.find_tuning_job_in_history(history[:1]) is None
    assert "Service Quotas" in steps.quota_advice("limit for ml.c5.xlarge for training job usage")


# ------------------------------------------------------------------------------- errors in the handlers


class _Context:
    function_name, memory_limit_in_mb, aws_request_id = "record", 512, "request-1"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:record"


@pytest.mark.parametrize(
    ("code", "expected"),
    [("ThrottlingException", steps.SageMakerThrottling), ("InternalFailure", steps.SageMakerUnavailable),
     ("ValidationException", None)],  # not transient: propagates as it is, for the state machine's catch
)
def test_a_transient_error_anywhere_in_a_handler_is_raised_under_a_retried_name(monkeypatch, code,
                                                                                 expected) -> None:
    """Record's own SageMaker calls (and DynamoDB, EventBridge) must be retried like Start's create, not end
    the execution with RecordFailed and no record."""
    from botocore.exceptions import ClientError

    from lambdas import _runtime, record_handler

    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    client = sagemaker_client()
    monkeypatch.setattr(_runtime, "client", lambda service: client)
    event = {"execution_arn": "arn:x", "execution_name": "run-1", "experiment": "cartpole-ppo",
             "tuning_job_name": TUNING}
    with Stubber(client) as stub:
        stub.add_client_error("describe_hyper_parameter_tuning_job", service_error_code=code, service_message="x")
        with pytest.raises(expected or ClientError) as raised:
            record_handler.handler(event, _Context())
    assert type(raised.value).__name__ == (expected.__name__ if expected else "ClientError")
    assert "DescribeHyperParameterTuningJob" in str(raised.value)


def test_transient_codes_of_dynamodb_eventbridge_and_the_network_are_retried_too() -> None:
    from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

    def client_error(code: str) -> ClientError:
        return ClientError({"Error": {"Code": code, "Message": "m"}}, "PutItem")

    assert isinstance(steps.translate_aws_error(client_error("ProvisionedThroughputExceededException")),
                      steps.SageMakerThrottling)
    assert isinstance(steps.translate_aws_error(client_error("InternalServerError")), steps.SageMakerUnavailable)
    assert steps.translate_aws_error(client_error("ConditionalCheckFailedException")) is None
    assert steps.translate_aws_error(ValueError("x")) is None
    assert isinstance(steps.translate_aws_error(EndpointConnectionError(endpoint_url="https://x")),
                      steps.SageMakerUnavailable)
    assert isinstance(steps.translate_aws_error(ReadTimeoutError(endpoint_url="https://x")),
                      steps.SageMakerUnavailable)

    class Events:
        def put_events(self, Entries):
            return {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "ThrottlingException", "ErrorMessage": "slow"}]}

    class Table:
        def put_item(self, Item):
            pass

    with pytest.raises(steps.SageMakerThrottling, match="PutEvents"):
        steps.publish_record({"experiment": "e", "tuning_job": TUNING, "status": "Completed"}, table=Table(),
                             events=Events())
