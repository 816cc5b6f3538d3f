"""From a payload to a finished local sweep: validate, build the SageMaker request, run it here."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rltune.environments import DeploymentTarget, EnvironmentConfig, Guardrails
from rltune.errors import Issue, PayloadError
from rltune.local.spec import apply_overrides
from rltune.local.sweep import Sweep, SweepResult
from rltune.payload import validate_payload
from rltune.request import DEFAULT_PAYLOAD, build_tuning_request

DEFAULT_PAYLOAD_PATH = DEFAULT_PAYLOAD
LOCAL_ENVIRONMENT = "local"
DEFAULT_RUNS_DIR = Path("runs")


@dataclass(frozen=True)
class LocalOptions:
    """Command-line caps and choices for one local run."""

    max_jobs: int | None = None
    max_parallel_jobs: int | None = None
    budget_steps: int | None = None
    workdir: Path | None = None
    trainer: Sequence[str] | None = None  # the train command; default: this checkout's training_image/train
    docker_image: str | None = None


def load_raw_payload(path: Path | None) -> tuple[bytes, Path]:
    source = path or DEFAULT_PAYLOAD_PATH
    try:
        return source.read_bytes(), source
    except FileNotFoundError:
        raise PayloadError([Issue("", f"payload file {source} does not exist; pass a JSON payload file, or none "
                                      f"for the built-in default {DEFAULT_PAYLOAD_PATH.name}")]) from None


def _check_overrides(options: LocalOptions, guardrails: Guardrails, max_jobs: int, max_parallel: int) -> None:
    issues = []
    if options.max_jobs is not None and not 1 <= options.max_jobs <= guardrails.max_jobs:
        issues.append(Issue("--max-jobs", f"must be 1..{guardrails.max_jobs} (the local guardrail), "
                                          f"got {options.max_jobs}"))
    if options.max_parallel_jobs is not None and not 1 <= options.max_parallel_jobs <= guardrails.max_parallel_jobs:
        issues.append(Issue("--max-parallel-jobs", f"must be 1..{guardrails.max_parallel_jobs} (the local guardrail), "
                                                   f"got {options.max_parallel_jobs}"))
    if options.budget_steps is not None and options.budget_steps < 1:
        issues.append(Issue("--budget-steps", f"must be a positive number of environment steps, "
                                              f"got {options.budget_steps}"))
    if (options.max_jobs or options.max_parallel_jobs) and max_parallel > max_jobs:
        issues.append(Issue("--max-parallel-jobs", f"{max_parallel} parallel jobs exceed the {max_jobs} jobs to run; "
                                                   "lower --max-parallel-jobs or raise --max-jobs"))
    if issues:
        raise PayloadError(issues)


def prepare_request(
    raw: Mapping[str, Any] | str | bytes, options: LocalOptions, execution_id: str
) -> tuple[dict[str, Any], str]:
    """Validate the payload and build its SageMaker request with the cloud's own code; apply local caps.

    Raises `PayloadError` with every problem before anything runs.
    """
    config = EnvironmentConfig(name=LOCAL_ENVIRONMENT)
    payload = validate_payload(raw, config.guardrails, LOCAL_ENVIRONMENT)
    target = DeploymentTarget.placeholder(config)
    request = build_tuning_request(payload, target, execution_id)
    limits = request["HyperParameterTuningJobConfig"]["ResourceLimits"]
    max_jobs = options.max_jobs or limits.get("MaxNumberOfTrainingJobs") or payload.grid_size()
    max_parallel = options.max_parallel_jobs or limits["MaxParallelTrainingJobs"]
    _check_overrides(options, config.guardrails, max_jobs, max_parallel)
    request = apply_overrides(request, max_jobs=options.max_jobs, max_parallel_jobs=options.max_parallel_jobs,
                              budget_steps=options.budget_steps)
    experiment = payload.experiment or f"{payload.algorithm}-{payload.env}"
    return request, experiment


def default_run_dir(experiment: str, now: datetime | None = None) -> Path:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", experiment).strip("-") or "run"
    return DEFAULT_RUNS_DIR / f"{slug}-{stamp}"


def run_local(
    payload: Mapping[str, Any] | str | bytes | Path | None = None,
    options: LocalOptions | None = None,
    *,
    resume: Path | None = None,
    ui: Any = None,
    **sweep_options: Any,
) -> SweepResult:
    """Run (or `resume`) a local sweep; returns `sweep.SweepResult`. Raises `PayloadError` on a bad payload."""
    options = options or LocalOptions()
    common = {"trainer": options.trainer, "docker_image": options.docker_image, "ui": ui, **sweep_options}
    if resume is not None:
        return Sweep.open(resume, **common).run()
    if payload is None or isinstance(payload, Path):
        raw: Any = load_raw_payload(payload)[0]
    else:
        raw = payload
    now = datetime.now(UTC)
    request, experiment = prepare_request(raw, options, execution_id=f"local-{now:%Y%m%dT%H%M%S%f}")
    run_dir = options.workdir or default_run_dir(experiment, now)
    return Sweep.create(run_dir, request, experiment, **common).run()

