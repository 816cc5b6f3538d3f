"""Atomic, per-job, verified checkpoints under /opt/ml/checkpoints (which SageMaker syncs with S3).

Layout: <root>/<training job name>/<hyperparameter hash>/ckpt-<iteration:09d>/, each with a completion
marker written last. A checkpoint is written to a hidden temporary directory, renamed into place, and only
then gets its marker, which lists every file with its size and SHA-256. RLlib writes `rllib_checkpoint.json`
first, so that file proves nothing; and SageMaker uploads and downloads files in no particular order, so
after a spot restart even the marker can arrive before the data: a resume therefore re-checks every file
against the marker before trusting the checkpoint, and falls back to the one before with a warning.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .spec import CheckpointSettings

log = logging.getLogger("rltune.trainer")

PREFIX = "ckpt-"
TMP_PREFIX = ".tmp-"
MARKER = "rltune_checkpoint_complete.json"
FORMAT = 1


@dataclass
class CheckpointInfo:
    path: Path
    iteration: int
    num_env_steps_sampled_lifetime: float
    time_total_s: float
    metrics: dict[str, float] = field(default_factory=dict)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def manifest(directory: Path) -> dict[str, dict[str, Any]]:
    files = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        rel = path.relative_to(directory).as_posix()
        if rel != MARKER:
            files[rel] = {"size": path.stat().st_size, "sha256": _sha256(path)}
    return files


def _write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}.{uuid.uuid4().hex[:8]}")
    with tmp.open("w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=1, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _iteration_of(name: str) -> int | None:
    if not name.startswith(PREFIX):
        return None
    try:
        return int(name[len(PREFIX):])
    except ValueError:
        return None


class CheckpointManager:
    def __init__(self, root: Path, job: str, hp_hash: str, settings: CheckpointSettings,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.root, self.job, self.hp_hash, self.settings, self.clock = root, job, hp_hash, settings, clock
        self.directory = root / job / hp_hash
        self.last_iteration = 0
        self.last_time = clock()
        self.seconds_spent = 0.0  # wall time spent writing checkpoints in this process

    # -- cadence -------------------------------------------------------------------------------------------
    def mark(self, iteration: int) -> None:
        """Restart the interval clock (after a save or a restore)."""
        self.last_iteration, self.last_time = iteration, self.clock()

    def due(self, iteration: int) -> bool:
        """Every N iterations or T seconds, whichever comes first."""
        n, seconds = self.settings.every_n_iterations, self.settings.every_seconds
        return bool((n and iteration - self.last_iteration >= n)
                    or (seconds and self.clock() - self.last_time >= seconds))

    # -- save ------------------------------------------------------------------------------------------------
    def save(self, save_fn: Callable[[Path], Any], *, iteration: int, num_env_steps_sampled_lifetime: float,
             time_total_s: float, metrics: dict[str, float]) -> Path:
        started = time.perf_counter()
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / f"{TMP_PREFIX}{PREFIX}{iteration:09d}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            save_fn(tmp)
            files = manifest(tmp)
            final = self.directory / f"{PREFIX}{iteration:09d}"
            if final.exists():  # a redone iteration after a fallback: replace the old (possibly corrupt) one
                doomed = self.directory / f"{TMP_PREFIX}old-{final.name}-{uuid.uuid4().hex[:8]}"
                os.rename(final, doomed)
                shutil.rmtree(doomed, ignore_errors=True)
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _write_json_atomic(final / MARKER, {
            "format": FORMAT,
            "training_job_name": self.job,
            "hyperparameter_hash": self.hp_hash,
            "iteration": iteration,
            "num_env_steps_sampled_lifetime": num_env_steps_sampled_lifetime,
            "time_total_s": time_total_s,
            "metrics": metrics,
            "created": datetime.now(UTC).isoformat(),
            "files": files,
        })
        self.mark(iteration)
        self.prune()
        self.seconds_spent += time.perf_counter() - started
        return final

    def prune(self) -> None:
        """Keep the newest `keep` complete checkpoints; drop older ones, unfinished ones and temporaries."""
        if not self.directory.is_dir():
            return
        complete: list[tuple[int, Path]] = []
        for entry in self.directory.iterdir():
            iteration = _iteration_of(entry.name)
            if entry.name.startswith(TMP_PREFIX) or (iteration is not None and not (entry / MARKER).is_file()):
                shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
            elif iteration is not None:
                complete.append((iteration, entry))
        complete.sort(reverse=True)
        for _, entry in complete[self.settings.keep:]:
            shutil.rmtree(entry, ignore_errors=True)

    # -- resume ----------------------------------------------------------------------------------------------
    def verify(self, path: Path) -> tuple[CheckpointInfo | None, str]:  # noqa: PLR0911
        """(info, '') for a complete checkpoint of this job and hyperparameters, else (None, why not)."""
        marker_path = path / MARKER
        if not marker_path.is_file():
            return None, "it has no completion marker (interrupted while being written)"
        try:
            marker = json.loads(marker_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            return None, f"its completion marker is unreadable ({exc})"
        if marker.get("training_job_name") != self.job or marker.get("hyperparameter_hash") != self.hp_hash:
            return None, (f"it belongs to job {marker.get('training_job_name')!r} with hyperparameters "
                          f"{marker.get('hyperparameter_hash')!r}")
        files = marker.get("files") or {}
        if not files:
            return None, "its completion marker lists no files"
        for rel, expected in files.items():
            file = path / rel
            if not file.is_file():
                return None, f"{rel} is missing"
            if file.stat().st_size != expected.get("size"):
                return None, f"{rel} has {file.stat().st_size} bytes, the marker says {expected.get('size')}"
            if _sha256(file) != expected.get("sha256"):
                return None, f"{rel} does not match its SHA-256 in the marker"
        try:
            return CheckpointInfo(path, int(marker["iteration"]), float(marker["num_env_steps_sampled_lifetime"]),
                                  float(marker["time_total_s"]), dict(marker.get("metrics") or {})), ""
        except (KeyError, TypeError, ValueError) as exc:
            return None, f"its completion marker lacks {exc}"

    def candidates(self) -> Iterator[CheckpointInfo]:
        """Complete checkpoints of this job and hyperparameters, newest first; warns about each one skipped."""
        if not self.directory.is_dir():
            return
        entries = sorted(((iteration, e) for e in self.directory.iterdir()
                          if (iteration := _iteration_of(e.name)) is not None and e.is_dir()), reverse=True)
        for _, entry in entries:
            info, reason = self.verify(entry)
            if info is None:
                log.warning("checkpoint %s is not usable: %s; falling back to the one before", entry, reason)
                continue
            yield info

    def other_checkpoint_folders(self) -> list[str]:
        """Checkpoint folders of other jobs or other hyperparameters in the shared root (never resumed)."""
        found = []
        with contextlib.suppress(OSError):
            for job_dir in self.root.iterdir():
                if job_dir.is_dir():
                    found += [f"{job_dir.name}/{h.name}" for h in job_dir.iterdir()
                              if h.is_dir() and h != self.directory]
        return sorted(found)
