"""The hyperparameter contract between a payload and the trainer.

SageMaker hands every hyperparameter to the container as a string under a flat, dotted key such as
`rl.training.config.lr`. This module is the single source of truth for:
- which key namespaces the trainer understands (the payload validator rejects anything else);
- how values are encoded to strings (request builder, local backend) and decoded back (trainer);
- which keys SageMaker injects on its own and the trainer must ignore.

Pure standard library: the training image copies this file next to `metrics.py`.
"""

from __future__ import annotations

import json
from typing import Any

PREFIX = "rl."

# Exact keys (no sub-keys).
ALGORITHM_KEY = "rl.algorithm"
ENV_KEY = "rl.env"
SEED_KEY = "rl.seed"
EXACT_KEYS = (ALGORITHM_KEY, ENV_KEY, SEED_KEY)

ALGORITHMS = ("PPO", "APPO", "IMPALA", "DQN", "SAC")
DEFAULT_ALGORITHM = "PPO"
DEFAULT_ENV = "CartPole-v1"

# Namespaces whose sub-keys map onto a part of RLlib's AlgorithmConfig. The trainer checks each
# sub-key against the algorithm's real config; the validator only checks the namespace.
NAMESPACES: dict[str, str] = {
    "rl.training.config.": "AlgorithmConfig.training(...)",
    "rl.env_config.": "the environment's env_config dict",
    "rl.env_runners.": "AlgorithmConfig.env_runners(...)",
    "rl.learners.": "AlgorithmConfig.learners(...)",
    "rl.rl_module.": "the RLModule's DefaultModelConfig (fcnet_hiddens, ...)",
    "rl.reporting.": "AlgorithmConfig.reporting(...)",
    "rl.stop.": "stop criteria",
    "rl.checkpoint.": "checkpoint cadence and retention",
}

# Closed namespaces: every valid sub-key is known here.
STOP_KEYS = ("training_iteration", "num_env_steps_sampled_lifetime", "episode_return_mean", "time_total_s")
CHECKPOINT_KEYS = ("every_n_iterations", "every_seconds", "keep")
CLOSED_NAMESPACES: dict[str, tuple[str, ...]] = {"rl.stop.": STOP_KEYS, "rl.checkpoint.": CHECKPOINT_KEYS}

TIME_TOTAL_KEY = "rl.stop.time_total_s"

# Keys SageMaker adds to hyperparameters.json by itself; never user input.
SAGEMAKER_INJECTED_PREFIXES = ("_tuning_objective_metric", "sagemaker_", "_")


def is_sagemaker_injected(key: str) -> bool:
    return key.startswith(SAGEMAKER_INJECTED_PREFIXES)


def namespace_of(key: str) -> str | None:
    """The namespace a key falls in ('rl.algorithm' for exact keys), or None when it is not understood."""
    if key in EXACT_KEYS:
        return key
    for namespace in NAMESPACES:
        if key.startswith(namespace) and len(key) > len(namespace):
            return namespace
    return None


def key_problem(key: str) -> str | None:
    """Why the trainer would not understand `key`, with the fix; None when it would."""
    namespace = namespace_of(key)
    if namespace is None:
        known = ", ".join([*EXACT_KEYS, *(f"{ns}<key>" for ns in NAMESPACES)])
        return f"the trainer does not understand {key!r}; use one of: {known}"
    allowed = CLOSED_NAMESPACES.get(namespace)
    if allowed is not None and key[len(namespace):] not in allowed:
        return f"{key!r} is not a known {namespace}* key; use one of: {', '.join(namespace + k for k in allowed)}"
    return None


def encode_value(value: Any) -> str:
    """A hyperparameter value as the string SageMaker passes: strings as they are, the rest as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def decode_value(text: str) -> Any:
    """The inverse the trainer applies: JSON where it parses (numbers, booleans, lists, dicts), else the string."""
    try:
        return json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return text
