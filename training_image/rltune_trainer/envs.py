"""Resolve `rl.env` (a gymnasium id, or `module:Class` for a custom env) and prove it builds with env_config."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from .spec import did_you_mean


@dataclass(frozen=True)
class ResolvedEnv:
    name: str  # as given in rl.env
    rllib_env: Any  # what goes to AlgorithmConfig.environment(env=...): the id string or the class
    observation_space: str
    action_space: str


def _custom_class(name: str) -> type | None:
    """The class for 'module:Class', or None when `name` is not that shape (or is 'ale_py:ALE/Pong-v5')."""
    if ":" not in name:
        return None
    module_name, _, attr = name.partition(":")
    if not module_name or not attr.isidentifier():
        return None
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"rl.env: cannot import module {module_name!r} for {name!r} ({exc}); the module must be "
                         "importable in the training image (on PYTHONPATH)") from exc
    obj = getattr(module, attr, None)
    if obj is None:
        raise ValueError(f"rl.env: module {module_name!r} has no attribute {attr!r}"
                         + did_you_mean(attr, [n for n in dir(module) if not n.startswith("_")]))
    if not isinstance(obj, type):
        raise ValueError(f"rl.env: {name!r} is not a class; give 'module:EnvClass' of a gymnasium.Env subclass")
    return obj


def resolve(name: str, env_config: dict[str, Any]) -> ResolvedEnv:
    """Build the env once, the way RLlib will, so a bad id or env_config fails before Ray starts.

    RLlib makes a gymnasium id with `gym.make(id, **env_config)` and a custom class with `Class(env_config)`.
    Raises ValueError with the message to put in the failure file.
    """
    import gymnasium as gym  # noqa: PLC0415  (imported once input is known to need it)

    cls = _custom_class(name)
    if cls is not None:
        if not issubclass(cls, gym.Env):
            raise ValueError(f"rl.env: {name!r} is not a gymnasium.Env subclass")
        from ray.rllib.env.env_context import EnvContext  # noqa: PLC0415

        try:
            env = cls(EnvContext(dict(env_config), worker_index=0))
        except Exception as exc:
            raise ValueError(f"rl.env: {name}({env_config!r}) failed: {type(exc).__name__}: {exc}; "
                             "check rl.env_config.* (the class receives them as one config dict)") from exc
        rllib_env: Any = cls
    else:
        try:
            gym.spec(name)
        except gym.error.Error as exc:
            raise ValueError(
                f"rl.env: {name!r} is not a registered gymnasium environment{did_you_mean(name, gym.registry)}; "
                "give a gymnasium id such as 'CartPole-v1' or 'module:Class' for a custom env"
            ) from exc
        try:
            env = gym.make(name, **env_config)
        except TypeError as exc:
            raise ValueError(f"rl.env_config: {name} rejected {sorted(env_config)}: {exc}") from exc
        except Exception as exc:
            raise ValueError(f"rl.env: gymnasium.make({name!r}) failed: {type(exc).__name__}: {exc}") from exc
        rllib_env = name
    try:
        return ResolvedEnv(name, rllib_env, repr(env.observation_space), repr(env.action_space))
    finally:
        env.close()
