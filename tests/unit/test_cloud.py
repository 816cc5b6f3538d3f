"""rltune.cloud and the `rltune start/status/best` commands, against moto."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws
from typer.testing import CliRunner

from rltune import cloud
from rltune.payload import validate_payload
from rltune.pricing import cost_usd, hourly_price
from rltune.steps import publish_record

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "cartpole_ppo.json"
REGION = "us-east-1"
STACK_TEMPLATE = {
    "Resources": {"Queue": {"Type": "AWS::SQS::Queue"}},
    "Outputs": {
        "StateMachineArn": {"Value": "arn:aws:states:us-east-1:123456789012:stateMachine:rltune-dev"},
        "TableName": {"Value": "results"},
    },
}


def test_worst_case_cost_is_jobs_times_runtime_times_on_demand_price() -> None:
    payload = validate_payload(json.loads(EXAMPLE.read_text()))
    estimate = cloud.estimate_cost(payload)
    hours = payload.max_jobs * estimate.max_run_seconds / 3600
    assert estimate.worst_case_usd == pytest.approx(hours * hourly_price(payload.instance_type), abs=0.01)
    assert "Spot is on" in estimate.describe()
    assert "$" in estimate.describe()
    unknown = cloud.CostEstimate("ml.x99.huge", 1, 3, 3600, None, spot=False)
    assert unknown.worst_case_usd is None
    assert "no price for ml.x99.huge" in unknown.describe()
    assert "Spot is off" in unknown.describe()
    assert cost_usd(3600, "ml.c5.xlarge") == pytest.approx(0.204)
    assert cost_usd(3600, "nope") is None


def test_console_link() -> None:
    arn = "arn:aws:states:eu-west-1:123456789012:execution:sm:run-1"
    assert cloud.console_link(arn) == ("https://eu-west-1.console.aws.amazon.com/states/home?region=eu-west-1"
                                       f"#/v2/executions/details/{arn}")


def test_stack_outputs_and_a_clear_error_for_a_missing_stack() -> None:
    cfn = boto3.client("cloudformation", region_name=REGION)
    with Stubber(cfn) as stub:
        stub.add_client_error("describe_stacks", service_error_code="ValidationError",
                              service_message="Stack with id RlTune-dev does not exist",
                              expected_params={"StackName": "RlTune-dev"})
        with pytest.raises(cloud.CloudError, match=r"does not exist.*make deploy ENV=dev"):
            cloud.stack_outputs(cfn, "dev")
        stub.add_response("describe_stacks", {"Stacks": [{
            "StackName": "RlTune-dev", "CreationTime": "2026-03-01T00:00:00Z", "StackStatus": "CREATE_COMPLETE",
            "Outputs": [{"OutputKey": k, "OutputValue": v["Value"]} for k, v in STACK_TEMPLATE["Outputs"].items()],
        }]}, {"StackName": "RlTune-dev"})
        outputs = cloud.stack_outputs(cfn, "dev")
    assert cloud.required_output(outputs, "TableName", "dev") == "results"
    with pytest.raises(cloud.CloudError, match="no output Nope"):
        cloud.required_output(outputs, "Nope", "dev")


def _outputs(monkeypatch, **outputs: str) -> None:
    monkeypatch.setattr(cloud, "stack_outputs", lambda _cfn, environment: {
        k: v["Value"] for k, v in STACK_TEMPLATE["Outputs"].items()} | outputs if environment == "dev" else {})


def _table():
    return boto3.resource("dynamodb", region_name=REGION).create_table(
        TableName="results", BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "experiment", "KeyType": "HASH"},
                   {"AttributeName": "tuning_job", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "experiment", "AttributeType": "S"},
                              {"AttributeName": "tuning_job", "AttributeType": "S"}],
    )


@mock_aws
def test_latest_records_newest_first_and_rows() -> None:
    table = _table()
    events = boto3.client("events", region_name=REGION)
    for index, end in enumerate(["2026-03-01T10:00:00+00:00", "2026-03-03T10:00:00+00:00",
                                 "2026-03-02T10:00:00+00:00"]):
        publish_record({"experiment": "cp", "tuning_job": f"rlt-dev-cp-{index}", "status": "Completed",
                        "end_time": end, "objective": {"value": 100.0 + index},
                        "counts": {"completed": 3, "failed": 1, "stopped": 0},
                        "cost": {"spot_savings_percent": 64.0, "estimated_cost_usd": 0.1},
                        "best_training_job": {"name": f"job-{index}"}}, table=table, events=events)
    records = cloud.latest_records(table, "cp", limit=2)
    assert [r["tuning_job"] for r in records] == ["rlt-dev-cp-1", "rlt-dev-cp-2"]
    row = cloud.record_row(records[0])
    assert row[1:] == ["rlt-dev-cp-1", "Completed", "101", "job-1", "3/1/0", "64 %", "$0.10"]
    assert len(row) == len(cloud.RECORD_COLUMNS)


@mock_aws
def test_cli_start_validates_estimates_and_starts_the_stack_s_state_machine(monkeypatch) -> None:
    from rltune.cli import app

    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    iam = boto3.client("iam", region_name=REGION)
    role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    sfn = boto3.client("stepfunctions", region_name=REGION)
    machine = sfn.create_state_machine(name="rltune-dev", roleArn=role, definition=json.dumps(
        {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}))["stateMachineArn"]
    _outputs(monkeypatch, StateMachineArn=machine)

    runner = CliRunner()
    result = runner.invoke(app, ["start", str(EXAMPLE), "--env", "dev", "--name", "cli-run-1"])
    assert result.exit_code == 0, result.output
    assert "Worst case: at most $" in result.output
    assert f"Started {machine.replace(':stateMachine:', ':execution:')}:cli-run-1" in result.output
    assert "console.aws.amazon.com/states/home" in result.output
    (execution,) = sfn.list_executions(stateMachineArn=machine)["executions"]
    started = sfn.describe_execution(executionArn=execution["executionArn"])
    assert json.loads(started["input"]) == json.loads(EXAMPLE.read_text())

    bad = runner.invoke(app, ["start", "-", "--env", "dev"], input=json.dumps({"max_jobs": 0}))
    assert bad.exit_code == 2
    assert "max_jobs" in bad.output
    assert len(sfn.list_executions(stateMachineArn=machine)["executions"]) == 1  # nothing started

    # Valid for the payload schema, but longer than dev's workflow waits: the start Lambda would refuse it.
    too_long = {**json.loads(EXAMPLE.read_text()), "max_tuning_runtime_seconds": 15_000_000}
    refused = runner.invoke(app, ["start", "-", "--env", "dev"], input=json.dumps(too_long))
    assert refused.exit_code == 2, refused.output
    assert "max_tuning_runtime_seconds <= " in refused.output
    assert len(sfn.list_executions(stateMachineArn=machine)["executions"]) == 1

    status = runner.invoke(app, ["status", execution["executionArn"], "--json"])
    assert status.exit_code == 0, status.output
    assert json.loads(status.output)["execution_arn"] == execution["executionArn"]


@mock_aws
def test_cli_best_prints_the_records_table(monkeypatch) -> None:
    from rltune.cli import app

    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    _outputs(monkeypatch)
    table = _table()
    publish_record({"experiment": "cp", "tuning_job": "rlt-dev-cp-1", "status": "Completed",
                    "objective": {"value": 480.0},
                    "best_training_job": {"name": "rlt-dev-cp-1-002-abc", "model_artifacts": "s3://b/m.tar.gz",
                                          "tuned_hyperparameters": {"lr": "2e-4"}}},
                   table=table, events=boto3.client("events", region_name=REGION))
    result = CliRunner().invoke(app, ["best", "cp", "--env", "dev"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "rlt-dev-cp-1-002-abc" in result.output
    assert "s3://b/m.tar.gz" in result.output
    missing = CliRunner().invoke(app, ["best", "nothing", "--env", "dev"])
    assert missing.exit_code == 2


@mock_aws
def test_cli_talks_to_the_environment_s_region_not_the_default_one(monkeypatch, tmp_path) -> None:
    from rltune.cli import app

    cdk_json = json.loads((ROOT / "cdk.json").read_text())
    cdk_json["context"]["environments"]["dev"]["region"] = "eu-west-1"
    (tmp_path / "cdk.json").write_text(json.dumps(cdk_json))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)  # the default is elsewhere: the block's region must win
    iam = boto3.client("iam", region_name=REGION)
    role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    sfn = boto3.client("stepfunctions", region_name="eu-west-1")
    machine = sfn.create_state_machine(name="rltune-dev", roleArn=role, definition=json.dumps(
        {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}))["stateMachineArn"]
    _outputs(monkeypatch, StateMachineArn=machine)

    result = CliRunner().invoke(app, ["start", str(EXAMPLE), "--env", "dev", "--name", "eu-run"])
    assert result.exit_code == 0, result.output
    (execution,) = sfn.list_executions(stateMachineArn=machine)["executions"]
    status = CliRunner().invoke(app, ["status", execution["executionArn"], "--json"])  # region from the ARN
    assert status.exit_code == 0, status.output
