"""The real workflow, executed: the synthesized state machine of the real stack, run by moto's interpreter.

The definition comes from the dev stack's template (synthesized with a 5 s poll interval, the smallest an
environment allows), with its Fn::Join/Ref/GetAtt resolved to test ARNs. moto's Lambda runs no code
without Docker, so its invoke is patched to call the real handlers in-process. moto's SageMaker is
scripted where it has gaps: tuning jobs are born Completed, and ListTrainingJobsForHyperParameterTuningJob
and StopHyperParameterTuningJob are not implemented.
"""

from __future__ import annotations

import importlib
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from rltune.naming import training_job_name

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT, REGION = "123456789012", "us-east-1"
PAYLOAD = json.loads((ROOT / "examples" / "cartpole_ppo.json").read_text())
POLL_SECONDS = 5
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


# ---------------------------------------------------------------------------------------- the template


@pytest.fixture(scope="module")
def fast_dev(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The dev stack, synthesized through app.build with cdk.json's settings and a 5 s poll interval."""
    from tests.integration.conftest import cdk_json_context, synthesize

    environments = cdk_json_context()["environments"]
    environments["dev"] = {**environments["dev"], "poll_interval_seconds": POLL_SECONDS}
    return synthesize("dev", tmp_path_factory.mktemp("cdk-dev-fast"), environments=environments,
                      environ={"CDK_DEFAULT_ACCOUNT": ACCOUNT, "CDK_DEFAULT_REGION": REGION})


class Resolver:
    """Resolves a template's intrinsics to test values: a resource's physical name is its logical id."""

    ARNS = {
        "AWS::Lambda::Function": "arn:aws:lambda:{r}:{a}:function:{id}",
        "AWS::IAM::Role": "arn:aws:iam::{a}:role/{id}",
        "AWS::DynamoDB::Table": "arn:aws:dynamodb:{r}:{a}:table/{id}",
        "AWS::StepFunctions::StateMachine": "arn:aws:states:{r}:{a}:stateMachine:{id}",
        "AWS::SNS::Topic": "arn:aws:sns:{r}:{a}:{id}",
        "AWS::SQS::Queue": "arn:aws:sqs:{r}:{a}:{id}",
    }
    PSEUDO = {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT,
              "AWS::URLSuffix": "amazonaws.com", "AWS::StackName": "RlTune-dev"}

    def __init__(self, template: dict[str, Any]) -> None:
        self.resources = template["Resources"]

    def ref(self, name: str) -> str:
        return self.PSEUDO.get(name, name)

    def get_att(self, logical_id: str, attribute: str) -> str:
        if attribute == "Arn":
            kind = self.resources[logical_id]["Type"]
            return self.ARNS[kind].format(r=REGION, a=ACCOUNT, id=logical_id)
        return logical_id

    def __call__(self, node: Any) -> Any:  # noqa: PLR0911
        if isinstance(node, list):
            return [self(item) for item in node]
        if not isinstance(node, dict):
            return node
        if "Ref" in node:
            return self.ref(node["Ref"])
        if "Fn::GetAtt" in node:
            return self.get_att(*node["Fn::GetAtt"])
        if "Fn::Join" in node:
            separator, parts = node["Fn::Join"]
            return separator.join(str(self(part)) for part in parts)
        if "Fn::Sub" in node and isinstance(node["Fn::Sub"], str):
            return re.sub(r"\$\{([^}]+)\}", lambda m: self.get_att(*m.group(1).split(".", 1))
                          if "." in m.group(1) else self.ref(m.group(1)), node["Fn::Sub"])
        return {key: self(value) for key, value in node.items()}


def resources_of(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


# --------------------------------------------------------------------------------- scripted SageMaker


@dataclass
class Plan:
    """What one experiment's tuning job does: the statuses Describe returns (the last one sticks)."""

    statuses: list[str] = field(default_factory=lambda: ["Completed"])
    failure_reason: str = ""
    throttles: int = 0  # CreateHyperParameterTuningJob calls to throttle first
    creates: int = 0
    describes: int = 0
    stops: int = 0

    def next_status(self) -> str:
        self.describes += 1
        return self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]


class ScriptedSageMaker:
    def __init__(self) -> None:
        self.plans: dict[str, Plan] = {}

    def plan_for_job(self, job: Any) -> Plan:
        tags = {t["Key"]: t["Value"] for t in (job.tags or [])}
        return self.plans.setdefault(tags.get("rltune:experiment", "?"), Plan())

    def summaries(self, tuning_job: str, status: str) -> list[dict[str, Any]]:
        if status == "Failed":
            values: list[float | None] = [None, None]
        else:
            values = [120.5, 480.0, 310.0, None]
        jobs = []
        for index, value in enumerate(values, start=1):
            job = {
                "TrainingJobName": training_job_name(tuning_job, index),
                "TrainingJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/"
                                  f"{training_job_name(tuning_job, index)}",
                "CreationTime": T0,
                "TrainingStartTime": T0,
                "TrainingEndTime": T0 + timedelta(minutes=10),
                "TrainingJobStatus": "Completed" if value is not None else "Failed",
                "TunedHyperParameters": {"rl.training.config.lr": f"{index}e-4"},
            }
            if value is not None:
                job["FinalHyperParameterTuningJobObjectiveMetric"] = {"MetricName": "episode_reward_mean",
                                                                      "Value": value}
            jobs.append(job)
        return jobs

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from moto.core.exceptions import JsonRESTError
        from moto.core.responses import ActionResult
        from moto.sagemaker.models import SageMakerModelBackend
        from moto.sagemaker.responses import SageMakerResponse

        script = self
        original_create = SageMakerModelBackend.create_hyper_parameter_tuning_job
        original_describe = SageMakerModelBackend.describe_hyper_parameter_tuning_job

        def create(backend: Any, **kwargs: Any) -> Any:
            tags = {t["Key"]: t["Value"] for t in (kwargs.get("tags") or [])}
            plan = script.plans.setdefault(tags.get("rltune:experiment", "?"), Plan())
            if plan.throttles > 0:
                plan.throttles -= 1
                raise JsonRESTError("ThrottlingException", "Rate exceeded")
            arn = original_create(backend, **kwargs)  # raises ResourceInUse for an existing name
            plan.creates += 1
            return arn

        def describe(backend: Any, hyper_parameter_tuning_job_name: str) -> Any:
            job = backend.hyper_parameter_tuning_jobs.get(hyper_parameter_tuning_job_name)
            if job is not None:
                plan = script.plan_for_job(job)
                status = plan.next_status()
                job.hyper_parameter_tuning_job_status = status
                job.failure_reason = plan.failure_reason if status == "Failed" else ""
                running = status in ("InProgress", "Stopping")
                job.training_job_status_counters = {"Completed": 0 if running else 3, "InProgress": 2 * running,
                                                    "RetryableError": 0, "NonRetryableError": 0, "Stopped": 0}
            return original_describe(backend, hyper_parameter_tuning_job_name)

        def list_training_jobs(response: Any) -> Any:
            name = response._get_param("HyperParameterTuningJobName")
            job = response.sagemaker_backend.hyper_parameter_tuning_jobs[name]
            return ActionResult({"TrainingJobSummaries": script.summaries(name, job.hyper_parameter_tuning_job_status)})

        def stop(response: Any) -> Any:
            name = response._get_param("HyperParameterTuningJobName")
            plan = script.plan_for_job(response.sagemaker_backend.hyper_parameter_tuning_jobs[name])
            plan.stops += 1
            plan.statuses = ["Stopping", "Stopped"]
            return ActionResult({})

        def describe_training_job(backend: Any, training_job_name: str) -> dict[str, Any]:
            return {
                "TrainingJobName": training_job_name,
                "TrainingJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/{training_job_name}",
                "TrainingJobStatus": "Completed",
                "SecondaryStatus": "Completed",
                "HyperParameters": {"rl.algorithm": "PPO", "rl.env": "CartPole-v1", "rl.training.config.lr": "2e-4",
                                    "_tuning_objective_metric": "episode_reward_mean"},
                "ModelArtifacts": {"S3ModelArtifacts": f"s3://bucket/rltune/output/{training_job_name}/model.tar.gz"},
                "ResourceConfig": {"InstanceType": "ml.c5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 10},
                "EnableManagedSpotTraining": True,
                "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
                "CreationTime": T0,
                "TrainingStartTime": T0,
                "TrainingEndTime": T0 + timedelta(minutes=10),
                "TrainingTimeInSeconds": 600,
                "BillableTimeInSeconds": 216,
            }

        monkeypatch.setattr(SageMakerModelBackend, "create_hyper_parameter_tuning_job", create)
        monkeypatch.setattr(SageMakerModelBackend, "describe_hyper_parameter_tuning_job", describe)
        monkeypatch.setattr(SageMakerModelBackend, "describe_training_job", describe_training_job)
        monkeypatch.setattr(SageMakerResponse, "list_training_jobs_for_hyper_parameter_tuning_job",
                            list_training_jobs, raising=False)
        monkeypatch.setattr(SageMakerResponse, "stop_hyper_parameter_tuning_job", stop, raising=False)


# ------------------------------------------------------------------------------------------- the world


class FakeContext:
    memory_limit_in_mb = 512
    aws_request_id = "request-1"

    def __init__(self, function_name: str) -> None:
        self.function_name = function_name
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function_name}"


@dataclass
class World:
    template: dict[str, Any]
    sagemaker: ScriptedSageMaker
    state_machine_arn: str
    table: Any
    queue_url: str
    handlers: dict[str, str]  # logical id -> "module.function"
    invoke_hooks: dict[str, Any] = field(default_factory=dict)  # handler module -> hook(call, event)
    calls: dict[str, int] = field(default_factory=dict)

    def start(self, payload: Any, name: str) -> str:
        client = boto3.client("stepfunctions", region_name=REGION)
        return client.start_execution(stateMachineArn=self.state_machine_arn, name=name,
                                      input=json.dumps(payload))["executionArn"]

    def wait(self, execution_arn: str, timeout: float = 120) -> dict[str, Any]:
        client = boto3.client("stepfunctions", region_name=REGION)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            execution = client.describe_execution(executionArn=execution_arn)
            if execution["status"] != "RUNNING":
                return execution
            time.sleep(0.2)
        raise AssertionError(f"execution {execution_arn} still running after {timeout} s")

    def jobs(self) -> list[str]:
        client = boto3.client("sagemaker", region_name=REGION)
        return [j["HyperParameterTuningJobName"]
                for j in client.list_hyper_parameter_tuning_jobs()["HyperParameterTuningJobSummaries"]]

    def events(self) -> list[dict[str, Any]]:
        sqs = boto3.client("sqs", region_name=REGION)
        messages = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(m["Body"]) for m in messages]

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        client = boto3.client("stepfunctions", region_name=REGION)
        return client.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]


@pytest.fixture
def world(fast_dev: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    from moto import mock_aws
    from moto.awslambda_simple.models import LambdaSimpleBackend

    from lambdas import _runtime

    template = fast_dev.template
    resolve = Resolver(template)
    functions = resources_of(template, "AWS::Lambda::Function")
    workflow_functions = {k: f for k, f in functions.items() if f["Properties"]["Handler"].startswith("lambdas.")}
    assert len(workflow_functions) == 3
    for variable, value in resolve(next(iter(workflow_functions.values()))["Properties"]["Environment"]
                                   ["Variables"]).items():
        monkeypatch.setenv(variable, value)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    _runtime.reset()

    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}):
        scripted = ScriptedSageMaker()
        scripted.install(monkeypatch)
        iam = boto3.client("iam", region_name=REGION)
        role_arn = iam.create_role(RoleName="test-role", AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                    "Principal": {"Service": "lambda.amazonaws.com"}}]}))["Role"]["Arn"]
        awslambda = boto3.client("lambda", region_name=REGION)
        for logical_id, function in workflow_functions.items():
            awslambda.create_function(FunctionName=logical_id, Runtime="python3.12", Role=role_arn,
                                      Handler=function["Properties"]["Handler"], Code={"ZipFile": b"unused"})

        table_name = resolve({"Ref": next(iter(resources_of(template, "AWS::DynamoDB::Table")))})
        dynamodb = boto3.resource("dynamodb", region_name=REGION)
        table = dynamodb.create_table(
            TableName=table_name, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "experiment", "KeyType": "HASH"},
                       {"AttributeName": "tuning_job", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "experiment", "AttributeType": "S"},
                                  {"AttributeName": "tuning_job", "AttributeType": "S"}],
        )
        sqs = boto3.client("sqs", region_name=REGION)
        queue_url = sqs.create_queue(QueueName="run-events")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"]
        events = boto3.client("events", region_name=REGION)
        events.put_rule(Name="runs", EventPattern=json.dumps({"source": ["rltune"],
                                                              "detail-type": ["Tuning Run Completed"]}))
        events.put_targets(Rule="runs", Targets=[{"Id": "q", "Arn": queue_arn}])

        (machine_id, machine), = resources_of(template, "AWS::StepFunctions::StateMachine").items()
        definition = resolve(machine["Properties"]["DefinitionString"])
        stepfunctions = boto3.client("stepfunctions", region_name=REGION)
        state_machine_arn = stepfunctions.create_state_machine(name=machine_id, definition=definition,
                                                               roleArn=role_arn)["stateMachineArn"]

        current = World(template=template, sagemaker=scripted, state_machine_arn=state_machine_arn, table=table,
                        queue_url=queue_url,
                        handlers={k: f["Properties"]["Handler"] for k, f in workflow_functions.items()})

        def invoke(  # noqa: PLR0917 - moto's signature
            backend: Any, function_name: str, qualifier: Any, body: Any, headers: Any,
                   response_headers: Any) -> bytes:
            logical_id = function_name.rsplit(":", 1)[-1].rsplit("/", 1)[-1]
            module_name, attribute = current.handlers[logical_id].rsplit(".", 1)
            handler = getattr(importlib.import_module(module_name), attribute)
            event = json.loads(body) if body else {}
            count = current.calls[module_name] = current.calls.get(module_name, 0) + 1
            hook = current.invoke_hooks.get(module_name)
            try:
                result = handler(event, FakeContext(logical_id))
                if hook is not None:
                    hook(count, event)
                return json.dumps(result).encode()
            except Exception as error:  # what Lambda returns for an unhandled error
                response_headers["x-amz-function-error"] = "Unhandled"
                error_type = getattr(error, "lambda_error_type", type(error).__name__)
                return json.dumps({"errorType": error_type, "errorMessage": str(error)}).encode()

        monkeypatch.setattr(LambdaSimpleBackend, "invoke", invoke)
        yield current
    _runtime.reset()


def stored(world: World, experiment: str) -> list[dict[str, Any]]:
    from boto3.dynamodb.conditions import Key

    from rltune.steps import from_dynamodb_item

    items = world.table.query(KeyConditionExpression=Key("experiment").eq(experiment))["Items"]
    return [from_dynamodb_item(item) for item in items]


# ------------------------------------------------------------------------------------------------ cases


def test_happy_path_polls_until_completed_and_records_the_best_job(world: World) -> None:
    world.sagemaker.plans["cartpole-ppo"] = Plan(statuses=["InProgress", "InProgress", "Completed"])
    execution = world.wait(world.start(PAYLOAD, "happy-1"))

    assert execution["status"] == "SUCCEEDED", execution
    assert world.sagemaker.plans["cartpole-ppo"].describes >= 3  # InProgress twice, then Completed
    output = json.loads(execution["output"])
    (item,) = stored(world, "cartpole-ppo")
    assert output == item  # the execution's output is the record
    assert item["status"] == "Completed"
    assert item["tuning_job"] == world.jobs()[0]
    assert item["execution_arn"] == execution["executionArn"]
    assert item["objective"] == {"name": "episode_reward_mean", "type": "Maximize", "value": 480.0}
    best = item["best_training_job"]
    assert best["name"] == training_job_name(item["tuning_job"], 2)
    assert best["model_artifacts"].endswith("/model.tar.gz")
    assert best["tuned_hyperparameters"] == {"rl.training.config.lr": "2e-4"}
    assert best["static_hyperparameters"] == {"rl.algorithm": "PPO", "rl.env": "CartPole-v1"}
    assert item["counts"]["completed"] == 3
    assert item["counts"]["failed"] == 1
    assert item["cost"]["spot_savings_percent"] == 64.0
    assert [j["objective_value"] for j in item["top_jobs"]] == [480.0, 310.0, 120.5]
    (event,) = world.events()
    assert event["source"] == "rltune"
    assert event["detail-type"] == "Tuning Run Completed"
    assert event["detail"] == item
    waits = [e for e in world.history(execution["executionArn"]) if e["type"] == "WaitStateEntered"]
    assert len(waits) == 3


def test_invalid_payload_fails_invalid_config_with_every_message_and_starts_nothing(world: World) -> None:
    bad = {**PAYLOAD, "experiment": "bad-config", "max_jobs": 0, "objective_metric": "nope"}
    execution = world.wait(world.start(bad, "invalid-1"))

    assert execution["status"] == "FAILED"
    assert execution["error"] == "InvalidConfig"
    assert "max_jobs" in execution["cause"]
    assert "objective_metric" in execution["cause"]
    assert world.jobs() == []
    (item,) = stored(world, "bad-config")  # even a rejected run leaves a record
    assert item["status"] == "NotStarted"
    assert item["tuning_job"] == "not-started#invalid-1"


def test_failed_tuning_job_is_recorded_with_its_reason_then_fails(world: World) -> None:
    world.sagemaker.plans["cartpole-ppo"] = Plan(statuses=["Failed"], failure_reason="All training jobs failed")
    execution = world.wait(world.start(PAYLOAD, "failed-1"))

    assert execution["status"] == "FAILED"
    assert execution["error"] == "TuningJobFailed"
    assert "All training jobs failed" in execution["cause"]
    (item,) = stored(world, "cartpole-ppo")
    assert item["status"] == "Failed"
    assert item["failure"] == "All training jobs failed"
    assert item["counts"]["failed"] == 2
    assert item["best_training_job"] is None


def test_throttled_create_is_retried_and_makes_exactly_one_job(world: World) -> None:
    # Two throttles exhaust the SDK's own retry inside the Lambda: Step Functions' retry must do the rest.
    world.sagemaker.plans["cartpole-ppo"] = Plan(throttles=2)
    execution = world.wait(world.start(PAYLOAD, "throttled-1"))

    assert execution["status"] == "SUCCEEDED", execution
    assert world.calls["lambdas.start_handler"] == 2
    assert world.sagemaker.plans["cartpole-ppo"].creates == 1
    assert len(world.jobs()) == 1


def test_start_retried_after_its_job_was_created_returns_that_job(world: World) -> None:
    def lose_first_response(call: int, event: dict[str, Any]) -> None:
        if call == 1:  # the job exists, but Lambda's response is lost
            error = RuntimeError("Lambda service error after the function ran")
            error.lambda_error_type = "Lambda.ServiceException"  # type: ignore[attr-defined]
            raise error

    world.invoke_hooks["lambdas.start_handler"] = lose_first_response
    execution = world.wait(world.start(PAYLOAD, "retried-1"))

    assert execution["status"] == "SUCCEEDED", execution
    assert world.calls["lambdas.start_handler"] == 2
    assert world.sagemaker.plans["cartpole-ppo"].creates == 1
    assert len(world.jobs()) == 1


def test_aborted_execution_triggers_the_stop_lambda_which_stops_the_job(world: World) -> None:
    world.sagemaker.plans["cartpole-ppo"] = Plan(statuses=["InProgress"])
    execution_arn = world.start(PAYLOAD, "aborted-1")
    deadline = time.monotonic() + 60
    while not any(e["type"] == "WaitStateEntered" for e in world.history(execution_arn)):
        assert time.monotonic() < deadline, "the execution never reached its Wait state"
        time.sleep(0.2)
    client = boto3.client("stepfunctions", region_name=REGION)
    client.stop_execution(executionArn=execution_arn, error="Aborted", cause="user")
    assert world.wait(execution_arn)["status"] == "ABORTED"

    # What EventBridge delivers: it must match the stack's rule, whose target is the stop Lambda.
    (_rule_id, rule), = resources_of(world.template, "AWS::Events::Rule").items()
    event = {
        "version": "0", "id": "e-1", "detail-type": "Step Functions Execution Status Change",
        "source": "aws.states", "account": ACCOUNT, "time": "2026-03-01T12:00:00Z", "region": REGION,
        "resources": [execution_arn],
        "detail": {"executionArn": execution_arn, "stateMachineArn": world.state_machine_arn, "name": "aborted-1",
                   "status": "ABORTED", "input": json.dumps(PAYLOAD)},
    }
    pattern = Resolver(world.template)(rule["Properties"]["EventPattern"])
    pattern["detail"]["stateMachineArn"] = [world.state_machine_arn]
    from moto.events.models import EventPattern  # moto's TestEventPattern API is a no-op; its matcher is not

    assert EventPattern.load(json.dumps(pattern)).matches_event(event)
    assert not EventPattern.load(json.dumps(pattern)).matches_event({**event, "detail": {**event["detail"],
                                                                                        "status": "SUCCEEDED"}})
    (target,) = rule["Properties"]["Targets"]
    stop_function = target["Arn"]["Fn::GetAtt"][0]
    module_name, attribute = world.handlers[stop_function].rsplit(".", 1)
    handler = getattr(importlib.import_module(module_name), attribute)

    result = handler(event, FakeContext(stop_function))
    assert result["action"] == "stopped"
    assert world.sagemaker.plans["cartpole-ppo"].stops == 1
    (item,) = stored(world, "cartpole-ppo")
    assert item["status"] in ("Stopping", "Stopped")
    assert "ABORTED" in item["failure"]

    again = handler(event, FakeContext(stop_function))  # idempotent: a redelivered event stops nothing twice
    assert again["action"] in ("stopping", "already-ended")
    assert world.sagemaker.plans["cartpole-ppo"].stops == 1
