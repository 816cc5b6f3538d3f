"""One local training job: an `/opt/ml`-shaped directory, a `train` subprocess, and its scraped metrics.

A trial is prepared and judged the way SageMaker prepares and judges a training job:
- `input/config/hyperparameters.json` holds static + tuned values as strings plus `_tuning_objective_metric`;
- `TRAINING_JOB_NAME` is the child job name; the CPU share arrives as `SM_NUM_CPUS`;
- metrics come only from the process's output (stdout and stderr, as in CloudWatch), through the
  request's MetricDefinitions regexes; the last value emitted is the final one;
- a job that writes `output/failure` or exits non-zero fails, with that reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rltune.metrics import parse_metric_lines

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TRAIN_SCRIPT = REPO_ROOT / "training_image" / "train"
LOG_NAME = "train.log"
JOB_FILE = "job.json"
FAILURE_REASON_MAX = 1024  # SageMaker truncates FailureReason to 1024 characters
LOCAL_ACCOUNT = "000000000000"
LOCAL_REGION = "local"

# Why the local backend stopped a trial (SIGTERM), and what SageMaker would report for it.
STOP_PRUNED = "pruned"  # early stopping (median rule or Hyperband)
STOP_MAX_RESOURCE = "max-resource"  # Hyperband's MaxResource reached
STOP_MAX_RUNTIME = "max-runtime"  # the training job's StoppingCondition.MaxRuntimeInSeconds
STOP_TUNING_DONE = "tuning-complete"  # a completion criterion ended the tuning job
STOP_INTERRUPTED = "interrupted"  # Ctrl-C: resumable with --resume


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def training_job_arn(name: str) -> str:
    return f"arn:aws:sagemaker:{LOCAL_REGION}:{LOCAL_ACCOUNT}:training-job/{name}"


def tuning_job_arn(name: str) -> str:
    return f"arn:aws:sagemaker:{LOCAL_REGION}:{LOCAL_ACCOUNT}:hyper-parameter-tuning-job/{name}"


@dataclass
class TrialRecord:
    """What the sweep knows about one training job; persisted as `job.json` in the trial directory."""

    index: int
    name: str
    tuned: dict[str, str]  # tuned hyperparameters as SageMaker passes them (strings)
    values: dict[str, Any]  # the same, in their natural types
    params: dict[str, Any] = field(default_factory=dict)  # optuna's own parameters, for resuming exactly
    status: str = "InProgress"  # InProgress | Completed | Failed | Stopped
    secondary_status: str = "Starting"
    failure_reason: str | None = None
    stop_reason: str | None = None
    exit_code: int | None = None
    objective: float | None = None  # the final (last emitted) objective value
    objective_history: list[float] = field(default_factory=list)
    final_metrics: dict[str, float] = field(default_factory=dict)
    creation_time: str = field(default_factory=now_iso)
    start_time: str | None = None
    end_time: str | None = None
    training_seconds: float = 0.0  # summed over attempts
    first_report_s: float | None = None  # process start to the first metric line (first attempt): the overhead
    attempts: int = 0
    pid: int | None = None  # of the running attempt, so a resume after a crash can stop an orphan

    @property
    def finished(self) -> bool:
        return self.status != "InProgress" and self.stop_reason != STOP_INTERRUPTED

    @property
    def pruned(self) -> bool:
        return self.stop_reason == STOP_PRUNED

    @property
    def objective_status(self) -> str:
        if self.status == "InProgress" or (self.stop_reason == STOP_INTERRUPTED and self.objective is None):
            return "Pending"
        return "Succeeded" if self.objective is not None and self.status != "Failed" else "Failed"

    def save(self, trial_dir: Path) -> None:
        tmp = trial_dir / (JOB_FILE + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2, sort_keys=True))
        tmp.replace(trial_dir / JOB_FILE)

    @classmethod
    def load(cls, trial_dir: Path) -> TrialRecord:
        return cls(**json.loads((trial_dir / JOB_FILE).read_text()))


def write_opt_ml(trial_dir: Path, hyperparameters: Mapping[str, str]) -> None:
    """Lay out the trial's `/opt/ml` the way SageMaker does before the container starts."""
    config = trial_dir / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    for sub in ("checkpoints", "model", "output/data"):
        (trial_dir / sub).mkdir(parents=True, exist_ok=True)
    (config / "hyperparameters.json").write_text(json.dumps(dict(hyperparameters), indent=2, sort_keys=True))
    (config / "resourceconfig.json").write_text(
        json.dumps({"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0"})
    )
    (config / "inputdataconfig.json").write_text("{}")


def sagemaker_hyperparameters(static: Mapping[str, str], tuned: Mapping[str, str], objective: str) -> dict[str, str]:
    """hyperparameters.json content: static + tuned (all strings) + the objective tuning adds."""
    merged = {**static, **tuned, "_tuning_objective_metric": objective}
    bad = {k: v for k, v in merged.items() if not isinstance(v, str)}
    if bad:
        raise TypeError(f"SageMaker passes hyperparameters as strings; got non-strings for {sorted(bad)}")
    return merged


class MetricScraper:
    """Applies MetricDefinitions to log lines as they arrive; thread-safe reads of the latest values."""

    def __init__(self, definitions: Sequence[Mapping[str, str]], objective: str) -> None:
        self.definitions = [{"Name": d["Name"], "Regex": d["Regex"]} for d in definitions]
        for d in self.definitions:
            re.compile(d["Regex"])  # a bad regex fails here, on the main thread, not in the log reader
        self.objective = objective
        self._lock = threading.Lock()
        self.latest: dict[str, float] = {}
        self.objective_history: list[float] = []
        self.first_metric_at: float | None = None  # monotonic time of the first metric line fed live

    def feed(self, line: str, live: bool = True) -> None:
        found = parse_metric_lines([line], self.definitions)
        if not found:
            return
        with self._lock:
            if self.first_metric_at is None and live:
                self.first_metric_at = time.monotonic()
            for name, values in found.items():
                self.latest[name] = values[-1]
                if name == self.objective:
                    self.objective_history.extend(values)

    def snapshot(self) -> tuple[dict[str, float], list[float]]:
        with self._lock:
            return dict(self.latest), list(self.objective_history)


def final_metrics(log_path: Path, definitions: Sequence[Mapping[str, str]]) -> dict[str, list[float]]:
    """Every value each metric's regex captured in the whole log (all attempts), in order."""
    if not log_path.exists():
        return {}
    with log_path.open(encoding="utf-8", errors="replace") as lines:
        return parse_metric_lines(lines, definitions)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


class TrialProcess:
    """A running training job: the subprocess, its log, and the live metric scraper."""

    def __init__(
        self,
        record: TrialRecord,
        *,
        trial_dir: Path,
        command: Sequence[str],
        env: Mapping[str, str],
        definitions: Sequence[Mapping[str, str]],
        objective: str,
    ) -> None:
        self.record = record
        self.trial_dir = trial_dir
        self.command = list(command)
        self.env = dict(env)
        self.definitions = [dict(d) for d in definitions]
        self.scraper = MetricScraper(definitions, objective)
        self.log_path = trial_dir / "logs" / LOG_NAME
        self.process: subprocess.Popen[bytes] | None = None
        self.stop_requested: str | None = None
        self.stop_sent_at: float | None = None
        self.started_at = 0.0
        self._reader: threading.Thread | None = None
        self._killed = False
        self._drained = False

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # A resumed job continues its log, so the objective history (and "last value wins") spans attempts.
        if self.log_path.exists():
            with self.log_path.open(encoding="utf-8", errors="replace") as previous:
                for line in previous:
                    self.scraper.feed(line, live=False)
        failure = self.trial_dir / "output" / "failure"
        failure.unlink(missing_ok=True)  # a fresh attempt, as in a fresh container
        self.record.attempts += 1
        self.record.status = "InProgress"
        self.record.secondary_status = "Training"
        self.record.stop_reason = None
        self.record.start_time = self.record.start_time or now_iso()
        # The job writes straight into its log file (like the container's stdout into CloudWatch), so its
        # output survives rltune itself; a reader thread follows the file and scrapes the metrics.
        with self.log_path.open("ab") as log:
            log.write(f"# rltune local: attempt {self.record.attempts} of {self.record.name} at {now_iso()}\n".encode())
            log.flush()
            offset = log.tell()
            self.started_at = time.monotonic()
            self.process = subprocess.Popen(
                self.command,
                cwd=self.trial_dir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches rltune only; rltune stops trials with SIGTERM
            )
        self.record.pid = self.process.pid
        self._reader = threading.Thread(target=self._follow, args=(offset,), name=f"log-{self.record.name}",
                                        daemon=True)
        self._reader.start()

    def _follow(self, offset: int) -> None:
        """Feed every complete line the job appends to its log, until it has exited and the file is drained."""
        assert self.process is not None
        partial = b""
        with self.log_path.open("rb") as log:
            log.seek(offset)
            while True:
                chunk = log.read(65536)
                if chunk:
                    *lines, partial = (partial + chunk).split(b"\n")
                    for line in lines:
                        self.scraper.feed(line.decode("utf-8", errors="replace"))
                    continue
                if self.process.poll() is not None and self._drained:
                    break
                if self.process.poll() is not None:
                    self._drained = True  # one more read after the exit catches the last writes
                    continue
                time.sleep(0.05)
        if partial:
            self.scraper.feed(partial.decode("utf-8", errors="replace"))

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started_at if self.started_at else 0.0

    def poll(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def stop(self, reason: str) -> None:
        """Ask the job to stop the way SageMaker does: SIGTERM, then a grace period (see `enforce_grace`)."""
        if self.stop_requested is not None or self.process is None or self.process.poll() is not None:
            return
        self.stop_requested = reason
        self.stop_sent_at = time.monotonic()
        self.record.secondary_status = "Stopping"
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)

    def enforce_grace(self, grace_s: float) -> None:
        """Kill the job's whole process group when it outlives the SIGTERM grace period."""
        if self.stop_sent_at is not None and not self._killed and time.monotonic() - self.stop_sent_at > grace_s:
            self.kill()

    def kill(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self._killed = True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def finish(self, objective: str) -> TrialRecord:
        """Judge the exited job like SageMaker: failure file or non-zero exit fails it, with the reason."""
        assert self.process is not None
        code = self.process.wait()
        # Ray's helpers may outlive the driver (and hold its output open); a finished job leaves nothing running.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        if self._reader is not None:
            self._reader.join(timeout=30)  # drains what is still buffered in the pipe
        record = self.record
        record.pid = None
        record.exit_code = code
        record.end_time = now_iso()
        record.training_seconds += self.elapsed
        first = self.scraper.first_metric_at
        if record.first_report_s is None and record.attempts == 1 and first is not None:
            record.first_report_s = first - self.started_at
        scraped = final_metrics(self.log_path, self.definitions)
        record.final_metrics = {name: values[-1] for name, values in scraped.items()}
        record.objective_history = list(scraped.get(objective, []))
        record.objective = record.final_metrics.get(objective)
        failure_file = self.trial_dir / "output" / "failure"
        failure_text = failure_file.read_text(errors="replace").strip() if failure_file.exists() else ""
        record.stop_reason = self.stop_requested
        if self.stop_requested is not None and not failure_text:
            if self.stop_requested == STOP_MAX_RESOURCE:
                record.status, record.secondary_status = "Completed", "Completed"
            else:
                record.status = "Stopped"
                record.secondary_status = "MaxRuntimeExceeded" if self.stop_requested == STOP_MAX_RUNTIME else "Stopped"
            record.failure_reason = None
        elif failure_text:
            record.status, record.secondary_status = "Failed", "Failed"
            record.failure_reason = f"AlgorithmError: {failure_text}"[:FAILURE_REASON_MAX]
        elif code != 0:
            record.status, record.secondary_status = "Failed", "Failed"
            how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
            record.failure_reason = (f"AlgorithmError: training exited with {how} and wrote no output/failure. "
                                     f"Last log lines:\n{_tail(self.log_path)}")[:FAILURE_REASON_MAX]
        else:
            record.status, record.secondary_status = "Completed", "Completed"
            record.failure_reason = None
        record.save(self.trial_dir)
        return record


def stop_orphan(record: TrialRecord, trial_dir: Path, grace_s: float) -> bool:
    """A job left running by a crashed `rltune` (recorded pid still alive, running in this trial's
    directory): SIGTERM it so it checkpoints, then kill its group. True when there was one."""
    pid = record.pid
    if pid is None:
        return False
    try:
        same_dir = Path(f"/proc/{pid}/cwd").resolve() == trial_dir.resolve()
    except OSError:
        return False
    if not same_dir:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    return True


def trial_command(trainer: Sequence[str] | None) -> list[str]:
    """The command that runs `train` from this checkout (with this interpreter, so the venv's Ray is used)."""
    if trainer:
        # Trials run inside their own directory: make path arguments that exist here absolute.
        return [str(Path(arg).resolve()) if ("/" in arg or arg.endswith(".py")) and Path(arg).exists() else arg
                for arg in trainer]
    if not DEFAULT_TRAIN_SCRIPT.exists():
        raise FileNotFoundError(f"the training entry point {DEFAULT_TRAIN_SCRIPT} is missing; run from a checkout of "
                                "rltune or pass --trainer PATH")
    return [sys.executable, str(DEFAULT_TRAIN_SCRIPT)]


def docker_command(image: str, trial_dir: Path, env: Mapping[str, str], cpus: int,
                   extra_env: Sequence[str] = ()) -> list[str]:
    """Run the built training image like SageMaker does: `/opt/ml` mounted, `train` as the argument."""
    command = ["docker", "run", "--rm", "--init", f"--cpus={cpus}", "--shm-size=1g",
               "-v", f"{trial_dir.resolve()}:/opt/ml"]
    for key in ("TRAINING_JOB_NAME", "TRAINING_JOB_ARN", "SM_NUM_CPUS", "SM_NUM_GPUS", "SM_CURRENT_HOST", *extra_env):
        if key in env:
            command += ["-e", f"{key}={env[key]}"]
    return [*command, image, "train"]


def trial_environment(
    base: Mapping[str, str],
    name: str,
    trial_dir: Path,
    cpus: int,
    extra: Mapping[str, str],
) -> dict[str, str]:
    """The job's environment: the request's Environment, SageMaker's variables, and the local /opt/ml."""
    env = dict(base)
    env.update(extra)
    threads = str(cpus)
    env.update({
        "TRAINING_JOB_NAME": name,
        "TRAINING_JOB_ARN": training_job_arn(name),
        "SM_NUM_CPUS": str(cpus),
        "SM_NUM_GPUS": "0",
        "SM_CURRENT_HOST": "algo-1",
        "RLTUNE_OPT_ML": str(trial_dir.resolve()),
        "PYTHONUNBUFFERED": "1",
        "RAY_USAGE_STATS_ENABLED": "0",
        # torch and BLAS stay inside the job's CPU share, so parallel jobs do not oversubscribe.
        "OMP_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
        "OPENBLAS_NUM_THREADS": threads,
    })
    env.pop("RAY_ADDRESS", None)  # every job starts its own Ray, as in its own container
    return env
