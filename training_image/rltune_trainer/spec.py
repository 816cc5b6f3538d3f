"""hyperparameters.json -> TrainerSpec. Standard library only: bad input is caught here before Ray is imported.

SageMaker passes every hyperparameter as a string under a flat dotted key. Values are decoded with the
shared contract (`rltune.hyperparameters.decode_value`: JSON where it parses, otherwise the string), keys
SageMaker injects are ignored, and every other key must fall in a namespace the trainer understands.
Keys inside the open namespaces (`rl.training.config.*`, ...) are checked against RLlib's real config later,
in `config_builder`.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rltune import hyperparameters as hp


class BadInput(Exception):
    """Input the trainer cannot run: every problem found, each naming the key and the fix."""

    def __init__(self, issues: Iterable[str]) -> None:
        self.issues = list(issues)
        super().__init__(str(self))

    def __str__(self) -> str:
        count = len(self.issues)
        lines = [f"Bad hyperparameters ({count} problem{'s' if count != 1 else ''}):"]
        lines += [f"- {issue}" for issue in self.issues]
        return "\n".join(lines)


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """' (did you mean 'x'?)' when a close candidate exists, else ''."""
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {matches[0]!r}?)" if matches else ""


# Section of the trainer spec each open namespace feeds.
SECTION_OF_NAMESPACE = {
    "rl.training.config.": "training",
    "rl.env_runners.": "env_runners",
    "rl.learners.": "learners",
    "rl.rl_module.": "rl_module",
    "rl.reporting.": "reporting",
}
SECTIONS = tuple(SECTION_OF_NAMESPACE.values())

DEFAULT_CHECKPOINT_EVERY_N_ITERATIONS = 10
DEFAULT_CHECKPOINT_EVERY_SECONDS = 60.0
DEFAULT_CHECKPOINT_KEEP = 2


@dataclass(frozen=True)
class CheckpointSettings:
    every_n_iterations: int = DEFAULT_CHECKPOINT_EVERY_N_ITERATIONS  # 0 disables this trigger
    every_seconds: float = DEFAULT_CHECKPOINT_EVERY_SECONDS  # 0 disables this trigger
    keep: int = DEFAULT_CHECKPOINT_KEEP


@dataclass
class TrainerSpec:
    algorithm: str = hp.DEFAULT_ALGORITHM
    env: str = hp.DEFAULT_ENV
    env_config: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    # Section name -> {config key: value}, as given (translation and checks happen in config_builder).
    sections: dict[str, dict[str, Any]] = field(default_factory=lambda: {s: {} for s in SECTIONS})
    stop: dict[str, float] = field(default_factory=dict)  # empty -> the trainer's defaults
    checkpoint: CheckpointSettings = field(default_factory=CheckpointSettings)
    hyperparameters: dict[str, Any] = field(default_factory=dict)  # decoded user keys (injected ones dropped)
    ignored_keys: list[str] = field(default_factory=list)

    @property
    def hp_hash(self) -> str:
        return hyperparameter_hash(self.hyperparameters)


def hyperparameter_hash(decoded: Mapping[str, Any]) -> str:
    """12 hex chars identifying a set of hyperparameters; a checkpoint is resumed only by the same hash."""
    canonical = json.dumps(decoded, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def load_hyperparameters(path: Path) -> dict[str, Any]:
    """The raw hyperparameters.json mapping; {} when the file is absent (local runs with defaults)."""
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInput([f"{path}: not a readable JSON object ({exc}); write a JSON object of string values"]) from exc
    if not isinstance(raw, dict):
        raise BadInput([f"{path}: expected a JSON object of hyperparameters, got {type(raw).__name__}"])
    return raw


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _int_value(key: str, value: Any, minimum: int, issues: list[str]) -> int | None:
    if _is_number(value) and math.isfinite(value) and float(value).is_integer() and value >= minimum:
        return int(value)
    issues.append(f"{key}: expected an integer >= {minimum}, got {json.dumps(value)}")
    return None


def _float_value(key: str, value: Any, minimum: float | None, issues: list[str]) -> float | None:
    if _is_number(value) and math.isfinite(value) and (minimum is None or value >= minimum):
        return float(value)
    bound = f" >= {minimum:g}" if minimum is not None else ""
    issues.append(f"{key}: expected a finite number{bound}, got {json.dumps(value)}")
    return None


def _nest(target: dict[str, Any], dotted: str, value: Any, key: str, issues: list[str]) -> None:
    """Put `value` at a dotted sub-path (`model.fcnet_hiddens`), as SageMaker's RL launcher did."""
    parts = dotted.split(".")
    node = target
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            issues.append(f"{key}: conflicts with the non-dict value already given for {part!r}")
            return
        node = child
    if isinstance(node.get(parts[-1]), dict) and not isinstance(value, dict):
        issues.append(f"{key}: conflicts with sub-keys already given under it")
        return
    node[parts[-1]] = value


def parse(raw: Mapping[str, Any]) -> TrainerSpec:
    """Decode and check hyperparameters.json's mapping. Raises BadInput listing every problem."""
    spec = TrainerSpec()
    issues: list[str] = []
    stop: dict[str, float] = {}
    checkpoint: dict[str, Any] = {}

    for key in sorted(raw):
        text = raw[key]
        if hp.is_sagemaker_injected(key):
            spec.ignored_keys.append(key)
            continue
        value = hp.decode_value(text) if isinstance(text, str) else text
        spec.hyperparameters[key] = value
        problem = hp.key_problem(key)
        if problem is not None:
            candidates = [*hp.EXACT_KEYS, *(f"{ns}{k}" for ns, ks in hp.CLOSED_NAMESPACES.items() for k in ks)]
            issues.append(problem + did_you_mean(key, candidates))
            continue
        namespace = hp.namespace_of(key)
        if key == hp.ALGORITHM_KEY:
            names = {a.upper(): a for a in hp.ALGORITHMS}
            if isinstance(value, str) and value.strip().upper() in names:
                spec.algorithm = names[value.strip().upper()]
            else:
                issues.append(
                    f"{key}: {json.dumps(value)} is not supported; use one of {', '.join(hp.ALGORITHMS)}"
                    + did_you_mean(str(value).upper(), hp.ALGORITHMS)
                )
        elif key == hp.ENV_KEY:
            if isinstance(value, str) and value.strip():
                spec.env = value.strip()
            else:
                issues.append(f"{key}: expected a gymnasium id such as 'CartPole-v1' or 'module:Class', got "
                              f"{json.dumps(value)}")
        elif key == hp.SEED_KEY:
            seed = _int_value(key, value, 0, issues)
            spec.seed = seed
        elif namespace == "rl.env_config.":
            _nest(spec.env_config, key[len(namespace):], value, key, issues)
        elif namespace == "rl.stop.":
            name = key[len(namespace):]
            if name in ("training_iteration", "num_env_steps_sampled_lifetime"):
                parsed = _int_value(key, value, 1, issues)
            elif name == "time_total_s":
                parsed = _float_value(key, value, 0.0, issues)
                if parsed == 0.0:
                    issues.append(f"{key}: must be > 0 seconds")
                    parsed = None
            else:  # episode_return_mean: any finite target
                parsed = _float_value(key, value, None, issues)
            if parsed is not None:
                stop[name] = parsed
        elif namespace == "rl.checkpoint.":
            name = key[len(namespace):]
            if name == "every_n_iterations":
                checkpoint[name] = _int_value(key, value, 0, issues)
            elif name == "every_seconds":
                checkpoint[name] = _float_value(key, value, 0.0, issues)
            else:
                checkpoint[name] = _int_value(key, value, 1, issues)
        else:
            section = SECTION_OF_NAMESPACE[namespace]  # type: ignore[index]
            _nest(spec.sections[section], key[len(namespace):], value, key, issues)

    if checkpoint and None not in checkpoint.values():
        spec.checkpoint = CheckpointSettings(**{**CheckpointSettings().__dict__, **checkpoint})
        if spec.checkpoint.every_n_iterations == 0 and spec.checkpoint.every_seconds == 0:
            issues.append(
                "rl.checkpoint.every_n_iterations and rl.checkpoint.every_seconds are both 0: a spot interruption "
                "would lose the whole run; set at least one of them above 0"
            )
    spec.stop = stop
    if issues:
        raise BadInput(issues)
    return spec
