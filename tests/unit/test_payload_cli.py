"""`rltune validate`, `rltune render`, `rltune schema`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rltune.cli import app
from rltune.cli.payload_commands import find_cdk_json, schema_text

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "cartpole_ppo.json"
runner = CliRunner()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project directory with its own cdk.json (two environments), as the current directory's parent."""
    (tmp_path / "cdk.json").write_text(json.dumps({"context": {"environments": {
        "dev": {"guardrails": {"max_jobs": 3, "max_parallel_jobs": 1, "allowed_instance_types": ["ml.c5.xlarge"],
                               "max_run_seconds": 1800}, "spot_by_default": False},
        "staging": {},
    }}}))
    work = tmp_path / "sub"
    work.mkdir()
    monkeypatch.chdir(work)
    return tmp_path


def write(path: Path, payload: dict) -> Path:
    path.write_text(json.dumps(payload))
    return path


def test_validate_ok() -> None:
    result = runner.invoke(app, ["validate", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert "valid" in result.stdout


def test_validate_lists_every_error_and_exits_2(tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.json", {"max_job": 3, "hyperparameter_ranges": {
        "rl.training.config.lr": {"min_value": 1, "max_value": 0}}, "instance_count": 2})
    result = runner.invoke(app, ["validate", str(bad)])
    assert result.exit_code == 2
    assert "3 problems" in result.stderr
    for fragment in ("max_job: unknown field 'max_job'; did you mean 'max_jobs'",
                     "hyperparameter_ranges.rl.training.config.lr.min_value", "multi-node"):
        assert fragment in result.stderr


def test_validate_json_output(tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.json", {"hyperparameter_ranges": {}})
    result = runner.invoke(app, ["validate", "--json", str(bad)])
    assert result.exit_code == 2
    assert json.loads(result.stdout)["errors"][0]["path"] == "hyperparameter_ranges"


def test_validate_reads_stdin() -> None:
    result = runner.invoke(app, ["validate", "-"], input=EXAMPLE.read_text())
    assert result.exit_code == 0, result.output


def test_validate_with_env_applies_that_environments_guardrails(project: Path) -> None:
    result = runner.invoke(app, ["validate", str(EXAMPLE), "--env", "dev"])
    assert result.exit_code == 2
    assert "'dev' environment's cap guardrails.max_jobs = 3" in result.stderr
    assert "guardrails.max_parallel_jobs = 1" in result.stderr
    assert runner.invoke(app, ["validate", str(EXAMPLE), "--env", "staging"]).exit_code == 0


def test_unknown_env_lists_the_known_ones(project: Path) -> None:
    result = runner.invoke(app, ["validate", str(EXAMPLE), "--env", "prdo"])
    assert result.exit_code == 2
    assert "unknown environment 'prdo'" in result.stderr
    assert "known environments: dev, staging" in result.stderr


def test_cdk_json_is_found_upward(project: Path) -> None:
    assert find_cdk_json() == project / "cdk.json"


def test_missing_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(tmp_path / "nope.json")])
    assert result.exit_code == 2
    assert "cannot read" in result.stderr


def test_render_prints_the_request_with_placeholders() -> None:
    result = runner.invoke(app, ["render", str(EXAMPLE), "--execution-id", "abc"])
    assert result.exit_code == 0, result.output
    request = json.loads(result.stdout)
    assert request["HyperParameterTuningJobName"].startswith("rlt-default-")
    assert "PLACEHOLDER" in request["TrainingJobDefinition"]["AlgorithmSpecification"]["TrainingImage"]
    assert "placeholder" in result.stderr


def test_render_with_env_and_real_values(project: Path) -> None:
    payload = write(project / "p.json", {"hyperparameter_ranges": {"rl.training.config.lr": [0.001, 0.01]},
                                         "max_jobs": 2, "max_parallel_jobs": 1})
    result = runner.invoke(app, ["render", str(payload), "--env", "dev", "--bucket", "my-bucket",
                                 "--image-uri", "1.dkr.ecr.eu-west-1.amazonaws.com/x:1",
                                 "--role-arn", "arn:aws:iam::123456789012:role/r"])
    assert result.exit_code == 0, result.output
    definition = json.loads(result.stdout)["TrainingJobDefinition"]
    assert definition["OutputDataConfig"]["S3OutputPath"].startswith("s3://my-bucket/")
    assert definition["EnableManagedSpotTraining"] is False  # dev's spot_by_default
    assert definition["StoppingCondition"]["MaxRuntimeInSeconds"] == 1800  # dev's cap as the default
    assert "placeholder" not in result.stderr


def test_render_rejects_an_invalid_payload(tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.json", {"hyperparameter_ranges": {"lr": [1]}})
    result = runner.invoke(app, ["render", str(bad)])
    assert result.exit_code == 2
    assert "does not understand 'lr'" in result.stderr


def test_schema_prints_the_committed_schema() -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    assert result.stdout == schema_text() == (ROOT / "examples" / "payload.schema.json").read_text()
    assert json.loads(result.stdout)["title"] == "rltune tuning payload"


def test_validate_uses_the_environments_spot_default(project: Path) -> None:
    payload = write(project / "w.json", {"hyperparameter_ranges": {"rl.training.config.lr": [0.001, 0.01]},
                                         "max_jobs": 2, "max_parallel_jobs": 1, "max_wait_seconds": 3600})
    result = runner.invoke(app, ["validate", str(payload), "--env", "dev"])
    assert result.exit_code == 2
    assert "the dev environment does not use spot by default" in result.stderr
