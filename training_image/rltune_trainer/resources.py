"""What an RLlib config asks Ray for, against the CPUs and GPUs this container has.

Outside Ray Tune the driver reserves nothing: each actor (remote env runner, remote learner, aggregator)
asks Ray for its bundle when it is created, and waits forever if the cluster cannot grant it. IMPALA's
defaults ask for 3 CPUs of actors, so on a 2-CPU instance RLlib hangs without a word. Checking the same
bundles RLlib computes turns that hang into a failure message before Ray starts.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Available:
    cpus: float
    gpus: float
    source: str  # where the numbers came from, for messages


def available(environ: dict[str, str] | os._Environ[str] | None = None) -> Available:
    """SM_NUM_CPUS / SM_NUM_GPUS (SageMaker sets both; the local backend sets a trial's share), else the machine."""
    environ = os.environ if environ is None else environ
    sources = []
    if environ.get("SM_NUM_CPUS"):
        cpus = _count(environ, "SM_NUM_CPUS")
        sources.append(f"SM_NUM_CPUS={environ['SM_NUM_CPUS']}")
    else:
        cpus = float(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
        sources.append(f"{cpus:g} CPUs on this machine")
    if environ.get("SM_NUM_GPUS"):
        gpus = _count(environ, "SM_NUM_GPUS")
        sources.append(f"SM_NUM_GPUS={environ['SM_NUM_GPUS']}")
    else:
        try:
            import torch  # noqa: PLC0415

            gpus = float(torch.cuda.device_count())
        except Exception:
            gpus = 0.0
        sources.append(f"{gpus:g} GPUs visible to torch")
    if cpus < 1:
        raise ValueError(f"SM_NUM_CPUS must be >= 1, got {environ.get('SM_NUM_CPUS')!r}")
    # ray.init gets whole CPUs and GPUs (runner._init_ray), so the check counts what Ray will have.
    return Available(float(math.floor(cpus)), float(math.floor(gpus)), ", ".join(sources))


def _count(environ: Mapping[str, str], name: str) -> float:
    text = environ[name]
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a number of devices >= 0, got {text!r}; unset it to use the machine's")
    return value


@dataclass(frozen=True)
class Demand:
    main: dict[str, float]  # the driver process (with the local learner when num_learners=0)
    actors: list[tuple[str, dict[str, float]]]  # (what, bundle) for every actor RLlib will create

    @property
    def actor_cpus(self) -> float:
        return sum(b.get("CPU", 0) for _, b in self.actors)

    @property
    def gpus(self) -> float:
        return self.main.get("GPU", 0) + sum(b.get("GPU", 0) for _, b in self.actors)

    @property
    def total_cpus(self) -> float:
        return self.main.get("CPU", 0) + self.actor_cpus

    def to_dict(self) -> dict[str, Any]:
        return {"main_process": self.main, "actors": [{"actor": w, **b} for w, b in self.actors],
                "actor_cpus": self.actor_cpus, "total_cpus": self.total_cpus, "gpus": self.gpus}


def demand(config: Any, algorithm_cls: type) -> Demand:
    """The bundles RLlib 2.60 derives for this config (the same helpers `default_resource_request` uses)."""
    from ray.rllib.algorithms.utils import (  # noqa: PLC0415
        _get_env_runner_bundles,
        _get_learner_bundles,
        _get_main_process_bundle,
    )

    def clean(bundle: dict[str, Any]) -> dict[str, float]:
        return {k: float(v) for k, v in bundle.items() if v}

    actors = [("env runner", clean(b)) for b in _get_env_runner_bundles(config)]
    learner_what = "learner" if config.num_learners > 0 else "aggregator actor"
    actors += [(learner_what, clean(b)) for b in _get_learner_bundles(config)]
    if config.evaluation_interval and config.evaluation_num_env_runners > 0:
        eval_config = config.get_evaluation_config_object()
        actors += [("evaluation env runner", clean(b)) for b in _get_env_runner_bundles(eval_config)]
    return Demand(clean(_get_main_process_bundle(config)), actors)


def check(need: Demand, have: Available, config: Any) -> tuple[list[str], list[str]]:
    """(problems, warnings). A problem is a config that would hang waiting for resources."""
    problems: list[str] = []
    warnings: list[str] = []
    if need.actor_cpus > have.cpus:
        parts = [f"{config.num_env_runners} env runner(s) x {config.num_cpus_per_env_runner} CPU"]
        if config.num_learners:
            parts.append(f"{config.num_learners} remote learner(s)")
        if config.num_aggregator_actors_per_learner:
            parts.append(f"{config.num_aggregator_actors_per_learner} aggregator actor(s) per learner")
        problems.append(
            f"resources: the config needs {need.actor_cpus:g} CPUs for its Ray actors ({', '.join(parts)}) but only "
            f"{have.cpus:g} are available ({have.source}); RLlib would wait forever. Lower "
            "rl.env_runners.num_env_runners (0 samples in the main process; raise "
            "rl.env_runners.num_envs_per_env_runner instead), set rl.learners.num_learners=0, or use a larger "
            "instance type"
        )
    if need.gpus > have.gpus:
        problems.append(
            f"resources: the config needs {need.gpus:g} GPUs but {have.gpus:g} are available ({have.source}); set "
            "rl.learners.num_gpus_per_learner=0 and rl.env_runners.num_gpus_per_env_runner=0, or use a GPU "
            "instance type"
        )
    if not problems and need.total_cpus > have.cpus:
        warnings.append(f"the main process and the actors want {need.total_cpus:g} CPUs, {have.cpus:g} are "
                        "available: they will share cores")
    return problems, warnings
