"""The local tuning job: optuna asks, trials run as real training jobs, SageMaker's rules decide.

Run directory layout:
    run.json                      the request (after local caps), options, sessions
    trials/<training-job-name>/   one /opt/ml per trial: input/config, checkpoints, model, output, logs, job.json
    summary.json                  the cloud's best-job record, built from SageMaker-shaped descriptions
    trials.png                    objective per trial + best-so-far, learning curves of the top trials

Everything optuna touches happens on the main thread; each trial has one reader thread for its log.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from rltune.local import search
from rltune.local.plot import plot_trials
from rltune.local.records import best_record, build_summary, describe_tuning_job
from rltune.local.spec import TuningSpec, parse_request
from rltune.local.trial import (
    LOG_NAME,
    STOP_INTERRUPTED,
    STOP_MAX_RESOURCE,
    STOP_MAX_RUNTIME,
    STOP_PRUNED,
    STOP_TUNING_DONE,
    TrialProcess,
    TrialRecord,
    docker_command,
    now_iso,
    sagemaker_hyperparameters,
    stop_orphan,
    trial_command,
    trial_environment,
    write_opt_ml,
)
from rltune.local.ui import RunningView
from rltune.naming import training_job_name

RUN_FILE = "run.json"
SUMMARY_FILE = "summary.json"
PLOT_FILE = "trials.png"
TRIALS_DIR = "trials"
RUN_VERSION = 1


class SweepInterrupted(Exception):
    """Ctrl-C (or SIGTERM) stopped the sweep; finished trials are kept and `--resume` continues it."""


def available_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def cpu_share(max_parallel_jobs: int, cores: int | None = None) -> int:
    """SM_NUM_CPUS for each trial: the machine's cores split between the parallel trials."""
    if cores is None:
        cores = available_cores()
    return max(1, cores // max(1, max_parallel_jobs))


@dataclass
class SweepResult:
    run_dir: Path
    status: str  # Completed | Stopped | Failed (the tuning job's status)
    reason: str
    records: list[TrialRecord]
    best: TrialRecord | None
    summary: dict[str, Any]
    plot: Path | None
    spec: TuningSpec


class Sweep:
    """A local tuning job in a run directory; `create` starts one, `open` continues one."""

    def __init__(self, run_dir: Path, state: dict[str, Any], *, trainer: Sequence[str] | None = None,
                 docker_image: str | None = None, ui: Any = None, poll_interval: float = 0.25,
                 stop_grace_s: float = 120.0, cores: int | None = None) -> None:
        self.run_dir = run_dir
        self.state = state
        self.request: dict[str, Any] = state["request"]
        self.spec: TuningSpec = parse_request(self.request)
        self.experiment: str = state["experiment"]
        self.trainer = list(trainer) if trainer else state.get("trainer")
        self.docker_image = docker_image or state.get("docker_image")
        self.ui = ui
        self.poll_interval = poll_interval
        self.stop_grace_s = stop_grace_s
        self.cores = cores or available_cores()
        self.cpus = cpu_share(self.spec.max_parallel_jobs, self.cores)
        self.records: dict[int, TrialRecord] = {}
        self.hyperparameters: dict[str, dict[str, str]] = {}
        self._load_trials()

    # ---- run directory ---------------------------------------------------------------------------------
    @classmethod
    def create(cls, run_dir: Path, request: Mapping[str, Any], experiment: str, **options: Any) -> Sweep:
        spec = parse_request(request)  # fail before touching the disk
        if run_dir.exists() and any(run_dir.iterdir()):
            raise FileExistsError(f"{run_dir} is not empty: pick another --workdir, or continue it with "
                                  f"`rltune local --resume {run_dir}`")
        (run_dir / TRIALS_DIR).mkdir(parents=True, exist_ok=True)
        state = {
            "version": RUN_VERSION,
            "experiment": experiment,
            "tuning_job_name": spec.tuning_job_name,
            "request": dict(request),
            "created": now_iso(),
            "trainer": list(options["trainer"]) if options.get("trainer") else None,
            "docker_image": options.get("docker_image"),
            "elapsed_s": 0.0,
            "sessions": [],
            "status": "InProgress",
        }
        _write_json(run_dir / RUN_FILE, state)
        return cls(run_dir, state, **options)

    @classmethod
    def open(cls, run_dir: Path, **options: Any) -> Sweep:
        path = run_dir / RUN_FILE
        if not path.exists():
            raise FileNotFoundError(f"{run_dir} is not a local tuning run (no {RUN_FILE}); pass the directory "
                                    "`rltune local` printed at the start")
        state = json.loads(path.read_text())
        if state.get("version") != RUN_VERSION:
            raise ValueError(f"{path}: run format version {state.get('version')} is not {RUN_VERSION}")
        return cls(run_dir, state, **options)

    @property
    def training_image_label(self) -> str:
        """What ran the jobs, in place of the ECR image URI: the local image or the train command."""
        if self.docker_image:
            return f"docker:{self.docker_image}"
        return "local:" + " ".join(trial_command(self.trainer))

    def trial_dir(self, name: str) -> Path:
        return self.run_dir / TRIALS_DIR / name

    def _load_trials(self) -> None:
        for job_file in sorted((self.run_dir / TRIALS_DIR).glob("*/job.json")):
            record = TrialRecord.load(job_file.parent)
            self.records[record.index] = record
            hp_file = job_file.parent / "input" / "config" / "hyperparameters.json"
            self.hyperparameters[record.name] = json.loads(hp_file.read_text())

    # ---- the sweep -------------------------------------------------------------------------------------
    def _job_limit(self) -> int:
        if self.spec.strategy == "Grid":
            size = self.spec.grid_size()
            return min(size, self.spec.max_jobs) if self.spec.max_jobs else size
        assert self.spec.max_jobs is not None
        return self.spec.max_jobs

    def _finished(self) -> list[TrialRecord]:
        return [r for r in self.records.values() if r.finished]

    def _not_improving(self) -> tuple[int, float | None]:
        """Jobs since the last one that improved the best by >= 1% (in completion order), and the best."""
        best: float | None = None
        count = 0
        done = [r for r in self._finished() if r.objective_status == "Succeeded" and r.objective is not None]
        for record in sorted(done, key=lambda r: (r.end_time or "", r.index)):
            value = record.objective
            assert value is not None
            if self.spec.improves(value, best):
                count = 0
            else:
                count += 1
            if best is None or self.spec.better(value, best):
                best = value
        return count, best

    def _completion_reason(self, elapsed: float) -> str | None:
        spec = self.spec
        count, best = self._not_improving()
        if best is not None and spec.reaches_target(best):
            return f"target objective {spec.target_objective} reached ({best:g})"
        if spec.max_jobs_not_improving is not None and count >= spec.max_jobs_not_improving:
            return f"{count} training jobs in a row did not improve the best objective"
        if spec.max_runtime_s is not None and elapsed >= spec.max_runtime_s:
            return f"the tuning job's MaxRuntimeInSeconds ({spec.max_runtime_s}) elapsed"
        return None

    def _launch(self, record: TrialRecord) -> TrialProcess:
        trial_dir = self.trial_dir(record.name)
        hyperparameters = sagemaker_hyperparameters(self.spec.static_hyperparameters, record.tuned,
                                                    self.spec.objective_metric)
        write_opt_ml(trial_dir, hyperparameters)
        self.hyperparameters[record.name] = hyperparameters
        env = trial_environment(os.environ, record.name, trial_dir, self.cpus, self.spec.environment)
        if self.docker_image:
            command = docker_command(self.docker_image, trial_dir, env, self.cpus, tuple(self.spec.environment))
        else:
            command = trial_command(self.trainer)
        process = TrialProcess(record, trial_dir=trial_dir, command=command, env=env,
                               definitions=self.spec.metric_definitions, objective=self.spec.objective_metric)
        process.start()
        record.save(trial_dir)
        return process

    def run(self) -> SweepResult:
        """Run the sweep to its end (or Ctrl-C); one process at a time per run directory."""
        with _exclusive(self.run_dir):
            return self._run()

    def _run(self) -> SweepResult:
        spec = self.spec
        session_start = time.monotonic()
        prior_elapsed = float(self.state.get("elapsed_s", 0.0))
        self.state["sessions"].append({"started": now_iso(), "cpus_per_trial": self.cpus})
        self.state["status"] = "InProgress"
        _write_json(self.run_dir / RUN_FILE, self.state)

        # Seed differently per session so a resumed sweep does not replay the first session's suggestions.
        # Grid keeps its seed: its shuffled order must match the first session's.
        seed = spec.random_seed
        if seed is not None and spec.strategy != "Grid":
            seed += len(self.records)
        study = search.make_study(spec, seed)
        dists = search.distributions(spec)
        resumable: list[TrialRecord] = []
        for record in sorted(self.records.values(), key=lambda r: r.index):
            if not record.finished:
                if stop_orphan(record, self.trial_dir(record.name), self.stop_grace_s) and self.ui is not None:
                    self.ui.message(f"stopped {record.name}, left running by an earlier session")
                resumable.append(record)
                continue
            params = record.params or search.optuna_params(spec, record.values)
            intermediate = dict(enumerate(record.objective_history, start=1))
            state, value = _optuna_outcome(record)
            study.add_trial(optuna.trial.create_trial(state=state, value=value, params=params, distributions=dists,
                                                      intermediate_values=intermediate,
                                                      system_attrs=search.grid_attrs(study, params)))

        running: dict[int, tuple[TrialProcess, optuna.Trial]] = {}
        reported: dict[int, int] = {}
        limit = self._job_limit()
        tuning_done: str | None = None
        interrupted = False
        if self.ui is not None:
            self.ui.start(limit, f"[bold]{spec.tuning_job_name}[/bold]: {spec.strategy} search, up to {limit} "
                                 f"training jobs, {spec.max_parallel_jobs} at a time, {self.cpus} CPU(s) each\n"
                                 f"run directory: {self.run_dir}")
        for note in self._not_emulated():
            if self.ui is not None:
                self.ui.message(f"[yellow]{note}[/yellow]")
        previous_handler = _install_sigterm_as_interrupt()
        try:
            while True:
                elapsed = prior_elapsed + (time.monotonic() - session_start)
                for index in list(running):
                    process, trial = running[index]
                    self._observe(process, trial, reported)
                    if process.poll() is not None:
                        record = process.finish(spec.objective_metric)
                        del running[index]
                        self._tell(study, trial, record)
                        if self.ui is not None:
                            self.ui.trial_finished(record)
                if tuning_done is None:
                    tuning_done = self._completion_reason(elapsed)
                    if tuning_done is not None:
                        if self.ui is not None and running:
                            self.ui.message(f"{tuning_done}: stopping the running training jobs")
                        for process, _ in running.values():
                            process.stop(STOP_TUNING_DONE)
                while tuning_done is None and len(running) < spec.max_parallel_jobs:
                    if resumable:
                        record = resumable.pop(0)
                        params = record.params or search.optuna_params(spec, record.values)
                        study.enqueue_trial(params)
                        trial = study.ask()
                        search.mark_grid_point(study, trial, params)
                        search.suggest(trial, spec)
                    elif len(self.records) < limit:
                        trial = study.ask()
                        values = search.suggest(trial, spec)
                        index = max(self.records, default=0) + 1
                        record = TrialRecord(index=index, name=training_job_name(spec.tuning_job_name, index),
                                             tuned=search.tuned_strings(values), values=values,
                                             params=dict(trial.params))
                        self.records[index] = record
                    else:
                        break
                    running[record.index] = (self._launch(record), trial)
                    reported[record.index] = 0
                for process, _ in running.values():
                    process.enforce_grace(self.stop_grace_s)
                self._refresh_ui(running)
                if not running:
                    if tuning_done is None and not resumable and len(self.records) >= limit:
                        tuning_done = f"all {limit} training jobs finished"
                    if tuning_done is not None:
                        break
                time.sleep(self.poll_interval)
        except KeyboardInterrupt:
            interrupted = True
            self._stop_all(running)
        except BaseException:
            self._stop_all(running)  # never leave training jobs running behind an error
            raise
        finally:
            _restore_sigterm(previous_handler)
            if self.ui is not None:
                self.ui.stop()

        self.state["elapsed_s"] = prior_elapsed + (time.monotonic() - session_start)
        status = "Stopped" if interrupted else "Completed"
        reason = "interrupted (continue with --resume)" if interrupted else (tuning_done or "")
        return self._finish(status, reason)

    def _not_emulated(self) -> list[str]:
        """Parts of the request SageMaker would honour that a local run cannot."""
        config = self.request["HyperParameterTuningJobConfig"]
        notes = []
        if self.spec.max_parallel_jobs > self.cores:
            notes.append(f"{self.spec.max_parallel_jobs} parallel training jobs on {self.cores} core(s): each gets "
                         f"1 CPU and they share cores; --max-parallel-jobs {self.cores} runs each at full speed")
        if self.request.get("WarmStartConfig"):
            notes.append("WarmStartConfig is ignored locally: its parent tuning jobs live in SageMaker")
        convergence = ((config.get("TuningJobCompletionCriteria") or {}).get("ConvergenceDetected") or {})
        if convergence.get("CompleteOnConvergence") == "Enabled":
            notes.append("ConvergenceDetected is not emulated locally; the other completion criteria apply")
        return notes

    def _observe(self, process: TrialProcess, trial: Any, reported: dict[int, int]) -> None:
        """Report new objective values to optuna; apply early stopping, Hyperband and the job's runtime cap."""
        spec = self.spec
        index = process.record.index
        _, history = process.scraper.snapshot()
        for step in range(reported[index] + 1, len(history) + 1):
            trial.report(history[step - 1], step)
        new_values = len(history) > reported[index]
        reported[index] = len(history)
        if process.stop_requested is None and process.poll() is None:
            if new_values and (spec.strategy == "Hyperband" or spec.early_stopping == "Auto") and trial.should_prune():
                process.stop(STOP_PRUNED)
            elif spec.hyperband_max_resource is not None and len(history) >= spec.hyperband_max_resource:
                process.stop(STOP_MAX_RESOURCE)
            elif process.record.training_seconds + process.elapsed > spec.training_max_runtime_s:
                process.stop(STOP_MAX_RUNTIME)

    def _tell(self, study: Any, trial: Any, record: TrialRecord) -> None:
        if record.stop_reason == STOP_INTERRUPTED:
            return
        state, value = _optuna_outcome(record)
        study.tell(trial, value, state=state)

    def _stop_all(self, running: dict[int, tuple[TrialProcess, Any]]) -> None:
        """Ctrl-C: SIGTERM every running job so each checkpoints and exports; a second Ctrl-C kills them."""
        if self.ui is not None and running:
            self.ui.message(f"stopping {len(running)} running training job(s); they checkpoint first "
                            "(Ctrl-C again to kill them)")
        for process, _ in running.values():
            process.stop(STOP_INTERRUPTED)
        deadline = time.monotonic() + self.stop_grace_s
        while running:
            try:
                for index in list(running):
                    process, _ = running[index]
                    if process.poll() is not None or time.monotonic() > deadline:
                        if process.poll() is None:
                            process.kill()
                        process.finish(self.spec.objective_metric)
                        del running[index]
                time.sleep(0.1)
            except KeyboardInterrupt:
                for process, _ in running.values():
                    process.kill()

    def _refresh_ui(self, running: Mapping[int, tuple[TrialProcess, Any]]) -> None:
        if self.ui is None:
            return
        finished = self._finished()
        counts = {
            "running": len(running),
            "done": sum(1 for r in finished if r.status in ("Completed", "Stopped") and not r.pruned),
            "failed": sum(1 for r in finished if r.status == "Failed"),
            "pruned": sum(1 for r in finished if r.pruned),
        }
        views = []
        for process, _ in running.values():
            latest, _ = process.scraper.snapshot()
            views.append(RunningView(
                index=process.record.index, name=process.record.name,
                iteration=latest.get("training_iteration"), env_steps=latest.get("num_env_steps_sampled_lifetime"),
                objective=latest.get(self.spec.objective_metric), elapsed_s=process.elapsed,
                stopping=process.stop_requested,
            ))
        self.ui.update(len(finished), counts, views)

    def _finish(self, status: str, reason: str) -> SweepResult:
        records = sorted(self.records.values(), key=lambda r: r.index)
        not_improving, _ = self._not_improving()
        failure = None
        if status == "Completed" and records and all(r.status == "Failed" for r in records):
            status, failure = "Failed", "every training job failed; see the trials' failure reasons"
        end = now_iso()
        tuning_job = describe_tuning_job(
            self.spec, self.request, records, status=status, creation_time=self.state["created"], end_time=end,
            runtime_s=self.state["elapsed_s"], not_improving=not_improving, failure=failure,
            training_image=self.training_image_label,
        )
        summary = build_summary(
            experiment=self.experiment, spec=self.spec, request=self.request, records=records,
            trial_dirs={r.name: self.trial_dir(r.name) for r in records}, hyperparameters=self.hyperparameters,
            tuning_job=tuning_job, failure=failure, training_image=self.training_image_label,
        )
        summary["local"] = {
            "run_dir": str(self.run_dir.resolve()),
            "reason": reason,
            "cpus_per_trial": self.cpus,
            "resumable": status == "Stopped",
        }
        _write_json(self.run_dir / SUMMARY_FILE, summary)
        plot = None
        if records:
            plot = plot_trials(self.run_dir / PLOT_FILE, self.spec, records,
                               {r.name: self.trial_dir(r.name) / "logs" / LOG_NAME for r in records},
                               title=f"{self.experiment} ({self.spec.tuning_job_name}): {status.lower()}")
        self.state["status"] = status
        self.state["sessions"][-1].update({"ended": end, "status": status, "reason": reason})
        _write_json(self.run_dir / RUN_FILE, self.state)
        return SweepResult(self.run_dir, status, reason, records, best_record(self.spec, records), summary, plot,
                           self.spec)


def _optuna_outcome(record: TrialRecord) -> tuple[optuna.trial.TrialState, float | None]:
    """How optuna learns a finished trial: pruned, complete with its objective, or failed."""
    if record.pruned:
        return optuna.trial.TrialState.PRUNED, None
    if record.objective is not None and record.status != "Failed":
        return optuna.trial.TrialState.COMPLETE, record.objective
    return optuna.trial.TrialState.FAIL, None


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str))
    tmp.replace(path)


@contextlib.contextmanager
def _exclusive(run_dir: Path) -> Iterator[None]:
    with (run_dir / ".lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FileExistsError(f"another rltune process is running the sweep in {run_dir}; wait for it or stop "
                                  "it first") from None
        yield


def _install_sigterm_as_interrupt() -> Any:
    """SIGINT (even if inherited as ignored) and SIGTERM stop the sweep cleanly; main thread only."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    return {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}


def _restore_sigterm(previous: Any) -> None:
    for sig, handler in (previous or {}).items():
        signal.signal(sig, handler)
