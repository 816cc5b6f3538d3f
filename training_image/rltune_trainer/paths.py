"""SageMaker's container layout under /opt/ml, relocatable with RLTUNE_OPT_ML for local runs and tests."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

DEFAULT_ROOT = "/opt/ml"
ROOT_ENV = "RLTUNE_OPT_ML"
JOB_NAME_ENV = "TRAINING_JOB_NAME"
LOCAL_JOB_NAME = "local"


@dataclass(frozen=True)
class Paths:
    root: Path

    @classmethod
    def from_env(cls, environ: os._Environ[str] | dict[str, str] | None = None) -> Paths:
        environ = os.environ if environ is None else environ
        return cls(Path(environ.get(ROOT_ENV) or DEFAULT_ROOT))

    @property
    def hyperparameters(self) -> Path:
        return self.root / "input" / "config" / "hyperparameters.json"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def failure(self) -> Path:
        return self.root / "output" / "failure"

    @property
    def data(self) -> Path:
        return self.root / "output" / "data"

    @property
    def metrics_csv(self) -> Path:
        return self.data / "metrics.csv"

    @property
    def effective_config(self) -> Path:
        return self.data / "effective_config.json"


def job_name(environ: os._Environ[str] | dict[str, str] | None = None) -> str:
    """The training job's name (SageMaker keeps it across spot restarts), safe as a folder name."""
    environ = os.environ if environ is None else environ
    raw = (environ.get(JOB_NAME_ENV) or "").strip()
    if not raw:
        return LOCAL_JOB_NAME
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", raw)[:128].strip(".")
    return safe or LOCAL_JOB_NAME
