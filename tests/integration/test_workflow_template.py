"""The workflow in the synthesized template of the real stacks: retries, catches, timeout, logs, tracing, alarm,
IAM scope, and Lambda assets that hold only what their handler imports."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from infra import lambda_assets
from infra.workflow import max_tuning_runtime_seconds, workflow_timeout_seconds

ROOT = Path(__file__).resolve().parents[2]


def _resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


def _definition(template: dict[str, Any]) -> dict[str, Any]:
    (machine,) = _resources(template, "AWS::StepFunctions::StateMachine").values()
    parts = machine["Properties"]["DefinitionString"]["Fn::Join"][1]
    return json.loads("".join(p if isinstance(p, str) else "ARN" for p in parts))


@pytest.fixture(scope="module", params=["dev", "prod"])
def env(request: pytest.FixtureRequest, synthesized: dict[str, Any]) -> Any:
    return synthesized[request.param]


def test_every_task_retries_transient_errors_with_jittered_backoff_and_catches_the_rest(env: Any) -> None:
    states = _definition(env.template)["States"]
    tasks = {name: s for name, s in states.items() if s["Type"] == "Task"}
    assert set(tasks) >= {"StartTuningJob", "DescribeTuningJob", "RecordResult", "RecordFailedRun",
                          "RecordAfterError", "RecordRejected"}
    for name, task in tasks.items():
        assert task["Retry"], name
        for retry in task["Retry"]:
            assert retry["BackoffRate"] >= 2, name
            assert retry["JitterStrategy"] == "FULL", name
            assert "States.ALL" not in retry["ErrorEquals"], f"{name} must not retry every error"
        assert task["Catch"][-1]["ErrorEquals"] == ["States.ALL"], f"{name} must catch every other error"
    start_errors = {e for r in tasks["StartTuningJob"]["Retry"] for e in r["ErrorEquals"]}
    assert {"Lambda.ServiceException", "SageMakerThrottling", "SageMakerUnavailable"} <= start_errors
    assert tasks["StartTuningJob"]["Catch"][0] == {"ErrorEquals": ["InvalidConfig"], "ResultPath": "$.error",
                                                   "Next": "RecordRejected"}
    describe = tasks["DescribeTuningJob"]
    assert describe["Resource"].endswith(":states:::aws-sdk:sagemaker:describeHyperParameterTuningJob")
    assert set(describe["ResultSelector"]) == {"status.$", "counters.$", "objectives.$"}  # the state stays small
    describe_errors = {e for r in describe["Retry"] for e in r["ErrorEquals"]}
    assert describe_errors >= {"SageMaker.ThrottlingException", "SageMaker.InternalFailureException",
                               "SageMaker.ServiceUnavailableException"}
    # aws-sdk error names always carry the "Exception" suffix; without it a retrier never matches
    assert all(e.endswith("Exception") for e in describe_errors), describe_errors
    assert not describe_errors & {"SageMaker.ResourceNotFoundException", "States.TaskFailed"}
    fails = {name: s for name, s in states.items() if s["Type"] == "Fail"}
    assert fails["InvalidConfigFail"]["Error"] == "InvalidConfig"
    assert fails["TuningJobFailed"]["CausePath"] == "$.record.failure"
    assert states["WaitForTuningJob"]["Seconds"] == env.stack.config.poll_interval_seconds
    choice = states["TuningJobStatus"]
    assert choice["Default"] == "RecordFailedRun"


def test_timeout_logging_tracing_and_alarm(env: Any) -> None:
    config = env.stack.config
    (machine,) = _resources(env.template, "AWS::StepFunctions::StateMachine").values()
    definition = _definition(env.template)
    assert definition["TimeoutSeconds"] == workflow_timeout_seconds(config)
    assert definition["TimeoutSeconds"] > max_tuning_runtime_seconds(config.guardrails)
    props = machine["Properties"]
    assert props["TracingConfiguration"] == {"Enabled": True}
    assert props["LoggingConfiguration"]["Level"] == "ALL"
    assert props["LoggingConfiguration"]["IncludeExecutionData"] is True
    log_groups = [g["Properties"] for g in _resources(env.template, "AWS::Logs::LogGroup").values()]
    assert log_groups
    assert all(g["RetentionInDays"] == config.log_retention_days for g in log_groups)

    alarms = [a["Properties"] for a in _resources(env.template, "AWS::CloudWatch::Alarm").values()]
    (executions,) = [a for a in alarms if "failed, timed out or was aborted" in a["AlarmDescription"]]
    metrics = {m["MetricStat"]["Metric"]["MetricName"] for m in executions["Metrics"] if "MetricStat" in m}
    assert metrics == {"ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted"}
    assert executions["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert executions["Threshold"] == 1
    topic_id = env.stack.get_logical_id(env.stack.topic.node.default_child)
    assert executions["AlarmActions"] == [{"Ref": topic_id}]

    (rule,) = _resources(env.template, "AWS::Events::Rule").values()
    pattern = rule["Properties"]["EventPattern"]
    assert pattern["detail"]["status"] == ["ABORTED", "TIMED_OUT"]
    assert pattern["source"] == ["aws.states"]
    assert rule["Properties"]["Targets"][0]["DeadLetterConfig"]


def test_lambdas_are_current_arm64_traced_and_explicitly_sized(env: Any) -> None:
    functions = {k: f["Properties"] for k, f in _resources(env.template, "AWS::Lambda::Function").items()
                 if f["Properties"].get("Handler", "").startswith("lambdas.")}
    assert sorted(f["Handler"] for f in functions.values()) == [
        "lambdas.record_handler.handler", "lambdas.start_handler.handler", "lambdas.stop_handler.handler"]
    for props in functions.values():
        assert props["Runtime"] == lambda_assets.lambda_runtime().name
        assert props["Architectures"] == ["arm64"]
        assert props["TracingConfig"] == {"Mode": "Active"}
        assert props["MemorySize"] >= 128
        assert props["Timeout"] >= 30
        assert props["Environment"]["Variables"]["RLTUNE_JOB_PREFIX"] == env.stack.config.resolved_job_prefix


def _policy_statements(template: dict[str, Any], role_fragment: str) -> list[dict[str, Any]]:
    found = []
    for policy in _resources(template, "AWS::IAM::Policy").values():
        roles = json.dumps(policy["Properties"]["Roles"])
        if role_fragment in roles:
            found.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return found


def test_iam_is_scoped_to_this_environment_s_jobs_table_and_default_bus(env: Any) -> None:
    prefix = env.stack.config.resolved_job_prefix
    start = _policy_statements(env.template, "WorkflowStartRole")
    record = _policy_statements(env.template, "WorkflowRecordRole")
    machine = _policy_statements(env.template, "WorkflowStateMachineRole")
    text = json.dumps(start + record + machine)
    assert "sagemaker:*" not in text
    assert '"*"' not in json.dumps([s["Action"] for s in start + record + machine])
    (create,) = [s for s in start if "sagemaker:CreateHyperParameterTuningJob" in s["Action"]]
    assert json.dumps(create["Resource"]).endswith(f'hyper-parameter-tuning-job/{prefix}*"]]}}')
    assert "sagemaker:AddTags" in create["Action"]
    (pass_role,) = [s for s in start if s["Action"] == "iam:PassRole"]
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    assert not [s for s in start if "dynamodb:PutItem" in json.dumps(s["Action"])], "Start must not write the table"
    (put,) = [s for s in record if s["Action"] == "dynamodb:PutItem"]
    (events,) = [s for s in record if s["Action"] == "events:PutEvents"]
    assert json.dumps(events["Resource"]).endswith('event-bus/default"]]}')
    assert put["Resource"]["Fn::GetAtt"][1] == "Arn"
    describe = [s for s in machine if s["Action"] == "sagemaker:DescribeHyperParameterTuningJob"]
    assert describe
    assert json.dumps(describe[0]["Resource"]).endswith(f'{prefix}*"]]}}')


def test_assets_hold_only_what_each_handler_imports_and_no_sagemaker_sdk() -> None:
    for name, module in (("start", "lambdas.start_handler"), ("record", "lambdas.record_handler"),
                         ("stop", "lambdas.stop_handler")):
        asset = lambda_assets.build_asset(name, module)
        top_level = {p.name for p in asset.directory.iterdir()}
        assert not {"sagemaker", "boto3", "botocore", "ray", "torch", "moto"} & top_level, top_level
        local = sorted(str(p) for p in asset.closure.sources)
        assert f"{module.replace('.', '/')}.py" in local
        assert not [p for p in local if p.startswith("lambdas/") and p.endswith("_handler.py")
                    and p != f"{module.replace('.', '/')}.py"], "one handler per asset"
        assert not (asset.directory / "rltune" / "local").exists()
        assert not (asset.directory / "rltune" / "cli").exists()
        assert (asset.directory / "aws_lambda_powertools").is_dir()
        catalog = asset.directory / "rltune" / "rllib_config_keys.json"  # package data, read by rltune.payload
        assert catalog.read_bytes() == (ROOT / "rltune" / "rllib_config_keys.json").read_bytes()
        assert asset.size_bytes <= 15 * 1024 * 1024, (name, asset.size_bytes)
        _import_in_isolation(asset.directory, module)


def _import_in_isolation(asset_dir: Path, module: str) -> None:
    """Import the handler in a fresh interpreter that sees only the asset, the stdlib and what Lambda provides
    (boto3). Compiled wheels in the asset are for the Lambda's Python/arm64, so their pure-Python packages are
    used as they are and only compiled modules fall back to this venv's builds."""
    import boto3
    import pydantic_core
    import wrapt

    site = Path(boto3.__file__).parents[1]
    provided = [site / n for n in ("boto3", "botocore", "s3transfer", "dateutil", "urllib3", "six.py", "jmespath")]
    compiled = [Path(pydantic_core.__file__).parent, Path(wrapt.__file__).parent]
    shim = asset_dir.parent / f".shim-{os.getpid()}"
    shim.mkdir(exist_ok=True)
    for path in [*provided, *compiled]:
        link = shim / path.name
        if not link.exists():
            link.symlink_to(path)
    code = (
        "import sys, importlib;"
        f"sys.path[:0] = [{str(shim)!r}, {str(asset_dir)!r}];"
        f"m = importlib.import_module({module!r});"
        "import rltune.payload, rltune.request;"  # imported lazily by the steps: must be in the asset too
        # The payload validator's RLlib key catalog is package data: it must load from the asset itself.
        f"assert rltune.payload.__file__.startswith({str(asset_dir)!r});"
        "keys = rltune.payload.rllib_config_keys()['algorithms']['PPO']['rl.training.config.'];"
        "assert 'lr' in keys and 'lrr' not in keys, keys;"
        "assert 'sagemaker' not in sys.modules;"
        "print(m.__file__)"
    )
    try:
        result = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True,
                                check=False,
                                env={"PATH": os.environ.get("PATH", ""), "AWS_DEFAULT_REGION": "us-east-1"})
    finally:
        shutil.rmtree(shim, ignore_errors=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith(str(asset_dir)), result.stdout
