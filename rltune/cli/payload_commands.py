"""`rltune validate`, `rltune render` and `rltune schema`: check a payload before it costs money."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from rltune.cli import app
from rltune.environments import DeploymentTarget, EnvironmentConfig, Guardrails, load_environments
from rltune.errors import PayloadError

if TYPE_CHECKING:
    from rltune.payload import TuningPayload

EXIT_INVALID = 2
CDK_JSON = "cdk.json"
# Where the rltune checkout keeps its cdk.json (rltune/cli/payload_commands.py -> repo root).
CHECKOUT_ROOT = Path(__file__).resolve().parents[2]

PayloadArg = Annotated[Path, typer.Argument(help="Tuning payload (JSON file); '-' reads standard input.")]
EnvOption = Annotated[
    str | None,
    typer.Option("--env", "-e", help="Environment in cdk.json whose guardrails apply (e.g. dev, prod)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print errors as JSON {\"errors\": [...]} on stdout.")]


def find_cdk_json(start: Path | None = None) -> Path | None:
    """The nearest cdk.json from `start` (default: the current directory) upward, else the rltune checkout's."""
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        candidate = directory / CDK_JSON
        if candidate.is_file():
            return candidate
    fallback = CHECKOUT_ROOT / CDK_JSON
    return fallback if fallback.is_file() else None


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(EXIT_INVALID)


def resolve_environment(name: str | None) -> EnvironmentConfig | None:
    """The named cdk.json environment, or None without --env. Exits 2 with the known names when unknown."""
    if name is None:
        return None
    path = find_cdk_json()
    if path is None:
        raise _fail(f"--env {name}: no cdk.json found in {Path.cwd()} or its parents, nor in {CHECKOUT_ROOT}; "
                    "run from the project directory")
    try:
        environments = load_environments(path)
    except (ValueError, OSError) as exc:  # pydantic's ValidationError and JSON errors are ValueErrors
        raise _fail(f"{path} has an invalid environments block: {exc}") from None
    if name not in environments:
        known = ", ".join(sorted(environments)) or "none"
        raise _fail(f"unknown environment {name!r} in {path}; known environments: {known}")
    return environments[name]


def _read(path: Path) -> bytes:
    if str(path) == "-":
        return sys.stdin.buffer.read()
    try:
        return path.read_bytes()
    except OSError as exc:
        raise _fail(f"cannot read {path}: {exc.strerror or exc}") from None


def _report(error: PayloadError, source: Path, as_json: bool) -> typer.Exit:
    if as_json:
        typer.echo(json.dumps(error.to_dict(), indent=2))
    else:
        typer.echo(f"{source}: {error}", err=True)
    return typer.Exit(EXIT_INVALID)


def _permissive_guardrails(instance_type: str) -> Guardrails:
    """Caps that never bind: without --env only SageMaker's and the trainer's own rules apply."""
    from rltune.payload import MAX_TRAINING_RUNTIME  # noqa: PLC0415

    return Guardrails(max_jobs=10_000, max_parallel_jobs=100, allowed_instance_types=(instance_type,),
                      max_run_seconds=MAX_TRAINING_RUNTIME)


def _validate(raw: bytes, config: EnvironmentConfig | None, env: str | None) -> TuningPayload:
    """`validate_payload` with the --env environment's guardrails and spot default (none without --env)."""
    from rltune.payload import validate_payload  # noqa: PLC0415  (keeps `rltune --help` fast)

    if config is None:
        return validate_payload(raw)
    return validate_payload(raw, config.guardrails, env, spot_by_default=config.spot_by_default)


@app.command()
def validate(payload: PayloadArg, env: EnvOption = None, as_json: JsonOption = False) -> None:
    """Check a payload; exit 0 when valid, 2 with every problem listed."""
    config = resolve_environment(env)
    raw = _read(payload)
    try:
        parsed = _validate(raw, config, env)
    except PayloadError as exc:
        raise _report(exc, payload, as_json) from None
    where = f" for environment {env!r}" if env else ""
    summary = (f"{parsed.strategy}, {len(parsed.hyperparameter_ranges)} tuned hyperparameter(s), up to "
               f"{parsed.max_jobs} jobs ({parsed.max_parallel_jobs} at a time), objective {parsed.objective_type} "
               f"{parsed.objective_metric}")
    if as_json:
        typer.echo(json.dumps({"valid": True, "experiment": parsed.experiment, "summary": summary}))
    else:
        typer.echo(f"{payload}: valid{where}: {summary}")


@app.command()
def render(  # noqa: PLR0917  (typer maps parameters to options)
    payload: PayloadArg,
    env: EnvOption = None,
    execution_id: Annotated[str, typer.Option(help="Execution id the job name derives from.")] = "rendered",
    image_uri: Annotated[str | None, typer.Option(help="Training image URI (default: a placeholder).")] = None,
    role_arn: Annotated[str | None, typer.Option(help="SageMaker execution role (default: a placeholder).")] = None,
    bucket: Annotated[str | None, typer.Option(help="S3 bucket (default: a placeholder).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Print the full CreateHyperParameterTuningJob request the payload becomes."""
    from rltune.request import build_tuning_request  # noqa: PLC0415

    config = resolve_environment(env)
    raw = _read(payload)
    try:
        parsed = _validate(raw, config, env)
        target = DeploymentTarget.placeholder(config or EnvironmentConfig(name="default"))
        if config is None:
            target = target.model_copy(update={"guardrails": _permissive_guardrails(parsed.instance_type)})
        overrides: dict[str, Any] = {k: v for k, v in
                                     {"image_uri": image_uri, "role_arn": role_arn, "bucket": bucket}.items() if v}
        if overrides:
            target = DeploymentTarget.model_validate({**target.model_dump(), **overrides})
        request = build_tuning_request(parsed, target, execution_id)
    except PayloadError as exc:
        raise _report(exc, payload, as_json) from None
    placeholders = [name for name, value in (("image", image_uri), ("role", role_arn), ("bucket", bucket))
                    if not value]
    if placeholders:
        typer.echo(f"note: placeholder {', '.join(placeholders)} (no deployed stack given); pass --image-uri, "
                   "--role-arn, --bucket for real values", err=True)
    typer.echo(json.dumps(request, indent=2))


def schema_text() -> str:
    """The JSON Schema exactly as `rltune schema` prints it (and examples/payload.schema.json holds)."""
    from rltune.payload import payload_json_schema  # noqa: PLC0415

    return json.dumps(payload_json_schema(), indent=2, ensure_ascii=False) + "\n"


@app.command()
def schema() -> None:
    """Print the payload's JSON Schema (examples/payload.schema.json is this output; `make schema`)."""
    typer.echo(schema_text(), nl=False)
