"""/opt/ml/model: what SageMaker tars into model.tar.gz.

- checkpoint/     the final RLlib checkpoint (Algorithm.from_checkpoint resumes or evaluates it);
- policy/         the default policy's RLModule on its own: RLModule.from_checkpoint("<model>/policy");
- metadata.json   algorithm, env, hyperparameters, final metrics, versions, env steps and time.
"""

from __future__ import annotations

import json
import platform
import shutil
import uuid
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from .checkpoints import MARKER

POLICY_MODULE_ID = "default_policy"
POLICY_IN_CHECKPOINT = Path("learner_group") / "learner" / "rl_module" / POLICY_MODULE_ID


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for dist in ("ray", "torch", "gymnasium", "numpy"):
        try:
            found[dist] = importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            found[dist] = "absent"
    try:
        import rltune  # noqa: PLC0415

        found["rltune"] = rltune.__version__
    except (ImportError, AttributeError):
        found["rltune"] = "unknown"
    return found


def export_model(model_dir: Path, checkpoint: Path, metadata: dict[str, Any]) -> None:
    """Replace model/checkpoint, model/policy and model/metadata.json with this run's (staged, then renamed)."""
    policy_src = checkpoint / POLICY_IN_CHECKPOINT
    if not policy_src.is_dir():
        raise FileNotFoundError(f"no policy module at {policy_src}; is this a single-agent new-API-stack run?")
    model_dir.mkdir(parents=True, exist_ok=True)
    staging = model_dir / f".tmp-export-{uuid.uuid4().hex[:8]}"
    try:
        shutil.copytree(checkpoint, staging / "checkpoint", ignore=shutil.ignore_patterns(MARKER))
        shutil.copytree(policy_src, staging / "policy")
        full = {
            **metadata,
            "created": datetime.now(UTC).isoformat(),
            "versions": versions(),
            "layout": {
                "checkpoint": "final RLlib checkpoint: ray.rllib.algorithms.algorithm.Algorithm.from_checkpoint(path)",
                "policy": "RLModule of the policy: ray.rllib.core.rl_module.rl_module.RLModule.from_checkpoint(path)",
            },
        }
        (staging / "metadata.json").write_text(json.dumps(full, indent=2, sort_keys=True, default=str) + "\n")
        for name in ("checkpoint", "policy", "metadata.json"):
            target = model_dir / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
            (staging / name).rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
