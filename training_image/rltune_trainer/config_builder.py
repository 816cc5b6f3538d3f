"""TrainerSpec -> RLlib AlgorithmConfig, with every key checked against the algorithm's real config.

`AlgorithmConfig.update_from_dict` silently `setattr`s unknown keys, so a typo would be ignored and a tuning
job would tune nothing. Here a key is accepted only when it is a parameter of one of the config's builder
methods (`.training()`, `.env_runners()`, ...) for the chosen algorithm, its value matches the parameter's
type annotation, and it is applied through that builder method. Old-stack names that RLlib renamed are
translated with a warning; anything else unknown gets a "did you mean".
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import inspect
import json
import logging
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from .envs import ResolvedEnv, resolve
from .spec import BadInput, TrainerSpec, did_you_mean

log = logging.getLogger("rltune.trainer")

# Imported directly: `ray.tune.registry.get_trainable_cls` registers DreamerV3, which needs extra packages.
ALGORITHM_MODULES = {
    "PPO": ("ray.rllib.algorithms.ppo", "PPO", "PPOConfig"),
    "APPO": ("ray.rllib.algorithms.appo", "APPO", "APPOConfig"),
    "IMPALA": ("ray.rllib.algorithms.impala", "IMPALA", "IMPALAConfig"),
    "DQN": ("ray.rllib.algorithms.dqn", "DQN", "DQNConfig"),
    "SAC": ("ray.rllib.algorithms.sac", "SAC", "SACConfig"),
}

# Builder methods whose parameters are flat config keys, in routing priority order.
BUILDERS = ("training", "env_runners", "learners", "reporting", "debugging", "resources", "evaluation",
            "fault_tolerance", "checkpointing")
SECTION_BUILDER = {"training": None, "env_runners": "env_runners", "learners": "learners", "reporting": "reporting"}

# Old-stack names RLlib renamed (its own deprecation table; some raise, some warn, some are silently ignored).
RENAMED = {
    "sgd_minibatch_size": "minibatch_size",
    "num_sgd_iter": "num_epochs",
    "num_rollout_workers": "num_env_runners",
    "num_workers": "num_env_runners",
    "num_envs_per_worker": "num_envs_per_env_runner",
    "num_cpus_per_worker": "num_cpus_per_env_runner",
    "num_gpus_per_worker": "num_gpus_per_env_runner",
    "custom_resources_per_worker": "custom_resources_per_env_runner",
    "num_learner_workers": "num_learners",
    "num_cpus_per_learner_worker": "num_cpus_per_learner",
    "num_gpus_per_learner_worker": "num_gpus_per_learner",
    "num_cpus_for_driver": "num_cpus_for_main_process",
    "num_cpus_for_local_worker": "num_cpus_for_main_process",
    "evaluation_num_workers": "evaluation_num_env_runners",
    "metrics_smoothing_episodes": "metrics_num_episodes_for_smoothing",
    "min_iter_time_s": "min_time_s_per_iteration",
    "timesteps_per_iteration": "min_sample_timesteps_per_iteration",
    "recreate_failed_workers": "restart_failed_env_runners",
    "ignore_worker_failures": "ignore_env_runner_failures",
    "lambda": "lambda_",
}
# Old-stack model settings that moved from `.training(model=...)` to the RLModule's model config.
MODEL_KEYS_MOVED = ("vf_share_layers",)
# Keys with their own hyperparameter.
OWN_KEYS = {"env": "rl.env", "env_config": "rl.env_config.<key>", "seed": "rl.seed"}

# The trainer's defaults, applied under the user's keys. 0 env runners x vectorised envs is the fast
# default on a small instance: the driver samples and learns, no actor pays a process and torch import.
FAST_PPO_CARTPOLE = {
    # RLlib's tuned CartPole example (rllib/examples/algorithms/ppo/cartpole_ppo.py: lr 3e-4, 6 epochs,
    # vf_loss_coeff 0.01, [32] linear shared), with half its train batch and a higher lr: measured here
    # (bench/bench_trainer.py), return 450 in 56k-80k env steps instead of 76k-128k.
    "training": {"lr": 0.0005, "num_epochs": 6, "vf_loss_coeff": 0.01, "train_batch_size_per_learner": 2000},
    "rl_module": {"fcnet_hiddens": [32], "fcnet_activation": "linear", "vf_share_layers": True},
}
DEFAULT_STOP_PRESET = {"episode_return_mean": 450.0, "num_env_steps_sampled_lifetime": 500_000}
DEFAULT_STOP = {"num_env_steps_sampled_lifetime": 1_000_000}


def trainer_defaults(algorithm: str, env: str) -> dict[str, dict[str, Any]]:
    """Defaults by section: sized for a small CPU instance; RLlib's tuned CartPole settings for PPO on CartPole."""
    defaults: dict[str, dict[str, Any]] = {"training": {}, "env_runners": {"num_env_runners": 0}, "learners": {},
                                           "reporting": {}, "rl_module": {}}
    if algorithm in ("IMPALA", "APPO"):
        # Their defaults (2 runners + a remote learner) need 4 CPUs and hang on 2; they need >= 1 runner.
        defaults["env_runners"] = {"num_env_runners": 1}
        defaults["learners"] = {"num_learners": 0}
    if algorithm == "PPO":
        defaults["env_runners"]["num_envs_per_env_runner"] = 8
    if algorithm == "PPO" and env == "CartPole-v1":
        for section, values in FAST_PPO_CARTPOLE.items():
            defaults[section].update(values)
    return defaults


def default_stop(algorithm: str, env: str) -> dict[str, float]:
    return dict(DEFAULT_STOP_PRESET if (algorithm, env) == ("PPO", "CartPole-v1") else DEFAULT_STOP)


def algorithm_classes(name: str) -> tuple[type, type]:
    module_name, algo_name, config_name = ALGORITHM_MODULES[name]
    module = importlib.import_module(module_name)
    return getattr(module, algo_name), getattr(module, config_name)


@dataclass
class Param:
    name: str
    builder: str
    annotation: Any


def _is_deprecated_default(default: Any) -> bool:
    from ray._common.deprecation import DEPRECATED_VALUE  # noqa: PLC0415  (Ray only after input checks)

    return type(default) is type(DEPRECATED_VALUE) and default == DEPRECATED_VALUE


def builder_params(config_cls: type) -> dict[str, Param]:
    """Flat config key -> the builder method that sets it, across the class's MRO (first builder wins)."""
    params: dict[str, Param] = {}
    for builder in BUILDERS:
        for klass in config_cls.__mro__:
            fn = klass.__dict__.get(builder)
            if fn is None:
                continue
            try:
                hints = typing.get_type_hints(fn)
            except Exception:
                hints = {}
            for p in inspect.signature(fn).parameters.values():
                if p.name == "self" or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) or p.name in params:
                    continue
                if _is_deprecated_default(p.default) or p.name in RENAMED or p.name.startswith("_"):
                    continue
                params[p.name] = Param(p.name, builder, hints.get(p.name, p.annotation))
    return params


def model_params() -> dict[str, Any]:
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig  # noqa: PLC0415

    hints = typing.get_type_hints(DefaultModelConfig)
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(DefaultModelConfig)}


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if not typing.get_args(annotation) else None
    text = text or str(annotation)
    return text.replace("typing.", "").replace("NoneType", "None")


def conforms(annotation: Any, value: Any) -> bool:  # noqa: PLR0911
    """Does a JSON value fit a builder parameter's annotation? Classes and callables never do."""
    if annotation is Any or annotation is inspect.Parameter.empty:
        return True
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(conforms(a, value) for a in args)
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if annotation is str:
        return isinstance(value, str)
    if annotation is dict or origin is dict:
        return isinstance(value, dict)
    if annotation in (list, tuple) or origin in (list, tuple, typing.Sequence):
        if not isinstance(value, list):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(conforms(a, v) for a, v in zip(args, value, strict=True))
        item = args[0] if args else Any
        return all(conforms(item, v) for v in value)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return value in [m.value for m in annotation] or value in annotation.__members__
    return False  # types, callables, connector factories: not settable from a hyperparameter


def coerce(annotation: Any, value: Any) -> Any:
    """Integral floats (SageMaker's continuous ranges print '3.0') become ints where an int is expected."""
    if isinstance(value, float) and not conforms(annotation, value) and value.is_integer() \
            and conforms(annotation, int(value)):
        return int(value)
    return value


def value_problem(name: str, annotation: Any, value: Any) -> str | None:
    """Why `value` cannot be given to the parameter `name`; None when it can."""
    if conforms(annotation, value):
        return None
    # Ray allows fractional resources even where RLlib annotates int (num_cpus_per_env_runner=0.5).
    if name.startswith(("num_cpus", "num_gpus")) and isinstance(value, int | float) and not isinstance(value, bool):
        return None if math.isfinite(value) and value >= 0 else "expects a resource count >= 0"
    if not any(conforms(annotation, probe) for probe in (0, 0.5, True, "x", [], {})):
        return "takes a Python class or callable, which a hyperparameter cannot carry"
    return f"expects {_type_name(annotation)}"


@dataclass
class Setting:
    key: str  # flat RLlib key, or 'rl_module.<field>'
    value: Any
    source: str  # the hyperparameter it came from, or 'rltune default'
    builder: str


@dataclass
class BuiltConfig:
    config: Any  # the AlgorithmConfig
    algorithm_cls: type
    env: ResolvedEnv
    settings: dict[str, Setting] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    stop: dict[str, float] = field(default_factory=dict)
    stop_source: str = "hyperparameters"

    def overrides(self) -> list[dict[str, Any]]:
        return [{"key": s.key, "value": s.value, "source": s.source} for s in self.settings.values()]


class _Collector:
    def __init__(self, params: dict[str, Param], model: dict[str, Any], algorithm: str) -> None:
        self.params, self.model, self.algorithm = params, model, algorithm
        self.issues: list[str] = []
        self.warnings: list[str] = []
        self.settings: dict[str, Setting] = {}

    def _set(self, key: str, value: Any, source: str, builder: str, annotation: Any) -> None:
        value = coerce(annotation, value)
        problem = value_problem(key.removeprefix("rl_module."), annotation, value)
        if problem is not None:
            self.issues.append(f"{source}: {json.dumps(value)} is not a valid value; {key} {problem}")
            return
        previous = self.settings.get(key)
        if previous is not None and previous.source != "rltune default" and previous.value != value:
            self.issues.append(f"{source}: conflicts with {previous.source}={json.dumps(previous.value)} "
                               f"(both set {key}); keep one of them")
            return
        self.settings[key] = Setting(key, value, source, builder)

    def model_key(self, name: str, value: Any, source: str) -> None:
        if name not in self.model:
            self.issues.append(f"{source}: {name!r} is not a field of RLlib's DefaultModelConfig"
                               + did_you_mean(name, self.model))
            return
        self._set(f"rl_module.{name}", value, source, "rl_module", self.model[name])

    def flat_key(self, name: str, value: Any, source: str, builder: str | None) -> None:
        """A key of rl.training.config.* (builder None: any builder) or of one builder's namespace."""
        if name in OWN_KEYS:
            self.issues.append(f"{source}: set it with {OWN_KEYS[name]} instead")
            return
        if name in RENAMED:
            new = RENAMED[name]
            self.warnings.append(f"{source}: {name!r} is the old RLlib name of {new!r}; using {new}={value!r}")
            name = new
        if name == "model" and builder is None and isinstance(value, dict):
            self.warnings.append(f"{source}: the new API stack takes model settings from the RLModule's model "
                                 "config; moving them to rl.rl_module.*")
            for sub, sub_value in value.items():
                self.model_key(sub, sub_value, f"{source}.{sub}")
            return
        if name in MODEL_KEYS_MOVED and name in self.model:
            self.warnings.append(f"{source}: {name!r} moved to the RLModule's model config; "
                                 f"using rl.rl_module.{name}={value!r}")
            self.model_key(name, value, source)
            return
        param = self.params.get(name)
        if param is None or (builder is not None and param.builder != builder):
            candidates = [p.name for p in self.params.values() if builder is None or p.builder == builder]
            where = f"{builder}()" if builder else "training() or any other AlgorithmConfig builder"
            self.issues.append(f"{source}: {name!r} is not a setting of {self.algorithm}'s {where}"
                               + did_you_mean(name, [*candidates, *RENAMED]))
            return
        self._set(name, value, source, param.builder, param.annotation)


def _unshadow_train_batch_size(collector: _Collector) -> None:
    """On the new stack a set `train_batch_size_per_learner` wins over `train_batch_size`
    (`AlgorithmConfig.total_train_batch_size`), so a tuned `train_batch_size` must not sit under a default."""
    total = collector.settings.get("train_batch_size")
    per_learner = collector.settings.get("train_batch_size_per_learner")
    if total is None or total.source == "rltune default" or per_learner is None:
        return
    if per_learner.source == "rltune default":
        del collector.settings["train_batch_size_per_learner"]
    else:
        collector.issues.append(f"{total.source}: would be ignored, because RLlib's new API stack uses "
                                f"{per_learner.source}={json.dumps(per_learner.value)} when both are set; keep one "
                                "of them")


NAMESPACE_OF_SECTION = {"training": "rl.training.config.", "env_runners": "rl.env_runners.",
                        "learners": "rl.learners.", "reporting": "rl.reporting.", "rl_module": "rl.rl_module."}


def _collect(collector: _Collector, sections: dict[str, dict[str, Any]], source_of: Any) -> None:
    for section, values in sections.items():
        for name, value in values.items():
            source = source_of(section, name)
            if section == "rl_module":
                collector.model_key(name, value, source)
            else:
                collector.flat_key(name, value, source, SECTION_BUILDER[section])


def build_config(spec: TrainerSpec) -> BuiltConfig:
    """The AlgorithmConfig for `spec`, or BadInput listing every problem. Does not start Ray."""
    algorithm_cls, config_cls = algorithm_classes(spec.algorithm)
    params = builder_params(config_cls)
    collector = _Collector(params, model_params(), spec.algorithm)

    defaults = trainer_defaults(spec.algorithm, spec.env)
    _collect(collector, defaults, lambda section, name: "rltune default")
    if collector.issues:  # a bug in the defaults table, not user input
        raise RuntimeError("; ".join(collector.issues))
    _collect(collector, spec.sections, lambda section, name: f"{NAMESPACE_OF_SECTION[section]}{name}")
    _unshadow_train_batch_size(collector)

    try:
        env = resolve(spec.env, spec.env_config)
    except ValueError as exc:
        collector.issues.append(str(exc))
        env = None
    if collector.issues:
        raise BadInput(collector.issues)
    assert env is not None

    config = config_cls()
    by_builder: dict[str, dict[str, Any]] = {}
    model: dict[str, Any] = {}
    for setting in collector.settings.values():
        if setting.builder == "rl_module":
            model[setting.key.removeprefix("rl_module.")] = setting.value
        else:
            by_builder.setdefault(setting.builder, {})[setting.key] = setting.value
    try:
        config.environment(env=env.rllib_env, env_config=dict(spec.env_config))
        if spec.seed is not None:
            config.debugging(seed=spec.seed)
        for builder, kwargs in by_builder.items():
            getattr(config, builder)(**kwargs)
        if model:
            config.rl_module(model_config=model)
        config.validate()
    except Exception as exc:  # RLlib's own checks (e.g. SAC rejects `lr`; minibatch > batch)
        keys = ", ".join(s.source for s in collector.settings.values() if s.source != "rltune default")
        raise BadInput([f"RLlib rejected the {spec.algorithm} config ({type(exc).__name__}: {exc}). "
                        f"Keys given: {keys or 'none'}"]) from exc

    built = BuiltConfig(config, algorithm_cls, env, collector.settings, collector.warnings)
    if spec.stop:
        built.stop = dict(spec.stop)
    else:
        built.stop, built.stop_source = default_stop(spec.algorithm, spec.env), "rltune default"
    return built


def json_safe(value: Any) -> Any:  # noqa: PLR0911
    """A JSON-serialisable copy of an RLlib config value (classes and callables by qualified name)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v) for v in value]
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        try:
            return json_safe(value.item())
        except Exception:
            pass
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return json_safe(dataclasses.asdict(value))
    if isinstance(value, type) or callable(value):
        return f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', repr(value))}"
    if isinstance(value, enum.Enum):
        return value.value
    return repr(value)


def effective_config(built: BuiltConfig, spec: TrainerSpec, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    rllib = built.config.to_dict()
    rllib["model_config"] = built.config.model_config
    return {
        "algorithm": spec.algorithm,
        "env": spec.env,
        "env_config": spec.env_config,
        "seed": spec.seed,
        "hyperparameters": spec.hyperparameters,
        "hyperparameter_hash": spec.hp_hash,
        "ignored_keys": spec.ignored_keys,
        "overrides": built.overrides(),
        "warnings": built.warnings,
        "stop": built.stop,
        "stop_source": built.stop_source,
        "checkpoint": dataclasses.asdict(spec.checkpoint),
        "observation_space": built.env.observation_space,
        "action_space": built.env.action_space,
        **(extra or {}),
        "rllib_config": json_safe(rllib),
    }
