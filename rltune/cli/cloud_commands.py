"""`rltune start`, `rltune status` and `rltune best`: run the deployed workflow from the command line."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from rltune.cli import app
from rltune.cli.payload_commands import EXIT_INVALID, _read, _report, resolve_environment
from rltune.errors import PayloadError

EnvName = Annotated[str, typer.Option("--env", "-e", help="Environment (a cdk.json block, e.g. dev, prod).")]


def _clients(*services: str, region: str | None = None) -> list[Any]:
    """Clients in `region` (an environment block's, or an ARN's), else the AWS configuration's default."""
    import boto3  # noqa: PLC0415  (keeps `rltune --help` fast)

    session = boto3.session.Session(region_name=region)
    return [session.client(s) for s in services]


def _arn_region(arn: str) -> str | None:
    parts = arn.split(":")
    return parts[3] if len(parts) > 3 and parts[0] == "arn" and parts[3] else None


def _cloud_error(exc: Exception) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(1)


@app.command()
def start(
    payload: Annotated[Path, typer.Argument(help="Tuning payload (JSON file); '-' reads standard input.")],
    env: EnvName = "dev",
    name: Annotated[str | None, typer.Option(help="Execution name (default: <experiment>-<UTC time>); "
                                                  "the tuning job name derives from it.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and estimate only; start nothing.")] = False,
) -> None:
    """Validate a payload, print its worst-case cost, and start the environment's tuning workflow."""
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    from rltune import cloud  # noqa: PLC0415
    from rltune.payload import validate_payload  # noqa: PLC0415
    from rltune.steps import tuning_runtime_issue, workflow_max_tuning_runtime  # noqa: PLC0415

    config = resolve_environment(env)
    assert config is not None
    raw = _read(payload)
    try:
        parsed = validate_payload(raw, config.guardrails, env, spot_by_default=config.spot_by_default)
        # What the start Lambda refuses too: a job that may outlive the environment's workflow.
        limits = parsed.run_limits(config.guardrails, config.spot_by_default)
        issue = tuning_runtime_issue(limits.tuning_runtime_seconds, workflow_max_tuning_runtime(config.guardrails))
        if issue is not None:
            raise PayloadError([issue])
    except PayloadError as exc:
        raise _report(exc, payload, False) from None
    estimate = cloud.estimate_cost(parsed, config.guardrails, config.spot_by_default)
    typer.echo(f"{payload}: valid for {env}: experiment {parsed.experiment}, up to {parsed.max_jobs} jobs "
               f"({parsed.parallel_jobs(config.guardrails)} at a time) on {parsed.instance_type}")
    typer.echo(estimate.describe())
    if dry_run:
        return
    execution_name = name or f"{parsed.experiment}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"[:80]
    try:
        stepfunctions, cloudformation = _clients("stepfunctions", "cloudformation", region=config.region)
        outputs = cloud.stack_outputs(cloudformation, env)
        machine = cloud.required_output(outputs, cloud.STATE_MACHINE_OUTPUT, env)
        text = raw.decode() if isinstance(raw, bytes) else raw
        arn = cloud.start_execution(stepfunctions, machine, text, execution_name)
    except (cloud.CloudError, ClientError, BotoCoreError) as exc:
        raise _cloud_error(exc) from None
    typer.echo(f"Started {arn}")
    typer.echo(f"Console: {cloud.console_link(arn)}")
    typer.echo(f"Follow it: rltune status {arn}")


@app.command()
def status(
    execution: Annotated[str, typer.Argument(help="Execution ARN (as printed by `rltune start`).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
) -> None:
    """State of an execution: its tuning job's status, counters and best job so far."""
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415
    from rich.console import Console  # noqa: PLC0415

    from rltune import cloud  # noqa: PLC0415

    try:
        stepfunctions, sagemaker = _clients("stepfunctions", "sagemaker", region=_arn_region(execution))
        report = cloud.execution_status(stepfunctions, sagemaker, execution)
    except (ClientError, BotoCoreError) as exc:
        raise _cloud_error(exc) from None
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    console = Console()
    console.print(f"[bold]{report['state']}[/bold]  {execution}")
    if report.get("error"):
        console.print(f"[red]{report['error']}[/red]: {report.get('cause')}")
    job = report.get("tuning_job")
    if job is None:
        console.print("No tuning job yet (the start step has not finished).")
        return
    counters = ", ".join(f"{k} {v}" for k, v in job["counters"].items() if v)
    console.print(f"Tuning job {job['name']}: {job['status']}  ({counters or 'no training jobs yet'})")
    best = job.get("best_so_far")
    if best:
        objective = job.get("objective") or {}
        console.print(f"Best so far: {best['name']}  {objective.get('MetricName')}={best['objective_value']}  "
                      f"{best['tuned_hyperparameters']}")
    if job.get("failure"):
        console.print(f"[red]Failure:[/red] {job['failure']}")


@app.command()
def best(
    experiment: Annotated[str, typer.Argument(help="Experiment name (the payload's `experiment`).")],
    env: EnvName = "dev",
    limit: Annotated[int, typer.Option(min=1, max=100, help="How many records.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print the records as JSON.")] = False,
) -> None:
    """The latest recorded runs of an experiment, newest first."""
    import boto3  # noqa: PLC0415
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    from rltune import cloud  # noqa: PLC0415

    config = resolve_environment(env)
    assert config is not None
    try:
        (cloudformation,) = _clients("cloudformation", region=config.region)
        outputs = cloud.stack_outputs(cloudformation, env)
        table_name = cloud.required_output(outputs, cloud.TABLE_OUTPUT, env)
        dynamodb = boto3.session.Session(region_name=config.region).resource("dynamodb")
        records = cloud.latest_records(dynamodb.Table(table_name), experiment, limit)
    except (cloud.CloudError, ClientError, BotoCoreError) as exc:
        raise _cloud_error(exc) from None
    if as_json:
        typer.echo(json.dumps(records, indent=2))
        return
    if not records:
        typer.echo(f"no records for experiment {experiment!r} in {env}", err=True)
        raise typer.Exit(EXIT_INVALID)
    table = Table(title=f"{experiment} ({env})")
    for column in cloud.RECORD_COLUMNS:
        table.add_column(column)
    for record in records:
        table.add_row(*cloud.record_row(record))
    Console().print(table)
    top = records[0].get("best_training_job")
    if top:
        Console().print(f"Latest best model: {top.get('model_artifacts')}\n"
                        f"Its hyperparameters: {json.dumps(top.get('tuned_hyperparameters'))}")
