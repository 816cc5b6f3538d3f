"""`rltune local`: the same payload, tuned on this machine as a faithful stand-in for SageMaker.

The payload is validated and turned into a `CreateHyperParameterTuningJob` request by the same code the
cloud path uses; the local backend consumes that request (`spec.parse_request`), runs every trial as a
real training job (`trial.TrialProcess`, a `training_image/train` subprocess with its own `/opt/ml`),
searches with optuna (`search`), orchestrates with SageMaker's rules (`sweep.Sweep`), and writes the
cloud's best-job record (`records`) and a plot (`plot`).
"""

from __future__ import annotations

from rltune.local.run import DEFAULT_PAYLOAD_PATH, LocalOptions, prepare_request, run_local

__all__ = ["DEFAULT_PAYLOAD_PATH", "LocalOptions", "prepare_request", "run_local"]
