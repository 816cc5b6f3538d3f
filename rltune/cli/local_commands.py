"""`rltune local`: tune a payload on this machine, the way SageMaker would run it."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Annotated

import typer

from rltune.cli import app

DEFAULT_IMAGE = "rltune-training:latest"
EXIT_PAYLOAD = 2
EXIT_INTERRUPTED = 130


def _docker_ready() -> str | None:
    """Why `--docker` cannot work here, or None when a Docker engine answers."""
    if shutil.which("docker") is None:
        return "the docker command is not installed"
    try:
        subprocess.run(["docker", "info"], capture_output=True, check=True, timeout=20)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        return f"no Docker engine answers ({exc})"
    return None


@app.command()
def local(  # noqa: PLR0917 - typer maps parameters to options
    payload: Annotated[Path | None, typer.Argument(
        help="Tuning payload (JSON). Default: the built-in examples/cartpole_ppo.json.",
        exists=False, dir_okay=False)] = None,
    resume: Annotated[Path | None, typer.Option(
        "--resume", help="Continue the sweep in this run directory: finished trials are kept, interrupted ones "
        "resume from their checkpoints.", file_okay=False)] = None,
    workdir: Annotated[Path | None, typer.Option(
        "--workdir", help="Run directory (default: runs/<experiment>-<timestamp>/).", file_okay=False)] = None,
    max_jobs: Annotated[int | None, typer.Option("--max-jobs", help="Cap the number of trials.")] = None,
    max_parallel_jobs: Annotated[int | None, typer.Option(
        "--max-parallel-jobs", help="Trials running at once; each gets cores / this many CPUs.")] = None,
    budget_steps: Annotated[int | None, typer.Option(
        "--budget-steps", help="Cap every trial at this many environment steps (a quick check).")] = None,
    docker: Annotated[bool, typer.Option(
        "--docker", help="Run the built training image (needs a Docker engine) instead of the script.")] = False,
    image: Annotated[str, typer.Option("--image", help="Image for --docker.")] = DEFAULT_IMAGE,
    trainer: Annotated[str | None, typer.Option(
        "--trainer", help="Command that runs a training job (default: this checkout's training_image/train).")] = None,
    live: Annotated[bool, typer.Option("--live/--no-live", help="Live progress display.")] = True,
) -> None:
    """Tune a payload on this machine: same validation, same request, real training jobs, no AWS account."""
    # Imported here so `rltune --help` stays fast.
    from rich.console import Console  # noqa: PLC0415

    from rltune.errors import PayloadError  # noqa: PLC0415
    from rltune.local.run import LocalOptions, run_local  # noqa: PLC0415
    from rltune.local.ui import SweepUI, results_table  # noqa: PLC0415

    console = Console()
    if not console.is_terminal:  # logs and pipes: wide enough for the results table
        console = Console(width=max(console.width, 120))
    if resume is not None and (payload is not None or workdir is not None):
        console.print("[red]--resume continues an existing run: do not pass a payload or --workdir with it[/red]")
        raise typer.Exit(EXIT_PAYLOAD)
    if resume is not None and any(v is not None for v in (max_jobs, max_parallel_jobs, budget_steps)):
        console.print("[red]--resume keeps the run's own limits: drop --max-jobs/--max-parallel-jobs/--budget-steps"
                      "[/red]")
        raise typer.Exit(EXIT_PAYLOAD)
    docker_image = None
    if docker:
        problem = _docker_ready()
        if problem:
            console.print(f"[red]--docker: {problem}. Run without --docker to use the training script.[/red]")
            raise typer.Exit(1)
        docker_image = image
    options = LocalOptions(
        max_jobs=max_jobs, max_parallel_jobs=max_parallel_jobs, budget_steps=budget_steps, workdir=workdir,
        trainer=shlex.split(trainer) if trainer else None, docker_image=docker_image,
    )
    ui = SweepUI(console, live=live)
    try:
        result = run_local(payload, options, resume=resume, ui=ui)
    except PayloadError as exc:
        console.print(f"[red]{exc}[/red]", highlight=False)
        console.print("Nothing ran. Fix the payload or options above and try again (`rltune validate` checks a "
                      "payload alone).")
        raise typer.Exit(EXIT_PAYLOAD) from None
    except (FileExistsError, FileNotFoundError, ValueError) as exc:
        console.print(f"[red]{exc}[/red]", highlight=False)
        raise typer.Exit(EXIT_PAYLOAD) from None

    from rltune.local.sweep import PLOT_FILE, SUMMARY_FILE  # noqa: PLC0415

    console.print(results_table(result.spec, result.records, result.best))
    if result.best is not None:
        model = (result.run_dir / "trials" / result.best.name / "model").resolve()
        console.print(f"[bold green]best:[/bold green] #{result.best.index} {result.best.name} "
                      f"{result.summary['objective']['name']} = {result.best.objective:.2f}")
        console.print(f"model: {model}")
    else:
        console.print("[yellow]no training job produced an objective value[/yellow]")
    console.print(f"{result.status}: {result.reason}")
    console.print(f"summary: {result.run_dir / SUMMARY_FILE}")
    if result.plot is not None:
        console.print(f"plot:    {result.run_dir / PLOT_FILE}")
    if result.status == "Stopped":
        console.print(f"continue with: rltune local --resume {result.run_dir}")
        raise typer.Exit(EXIT_INTERRUPTED)
    if result.status == "Failed":
        raise typer.Exit(1)

