"""One training job: validate, start Ray, resume, train until a stop criterion or SIGTERM, export the model."""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rltune import metrics

from . import EXIT_OK, EXIT_SIGINT, EXIT_SIGTERM
from .checkpoints import CheckpointInfo, CheckpointManager
from .config_builder import BuiltConfig, build_config, effective_config, json_safe
from .export import export_model
from .paths import Paths, job_name
from .reporting import MetricsCsv, print_metrics
from .resources import available, check, demand
from .spec import BadInput, TrainerSpec, load_hyperparameters, parse

log = logging.getLogger("rltune.trainer")

OBJECT_STORE_MB_ENV = "RLTUNE_OBJECT_STORE_MB"
DEFAULT_OBJECT_STORE_MB = 100  # Ray's minimum is 75 MB; Docker's default /dev/shm is 64 MB
SIGTERM_GRACE_ENV = "RLTUNE_SIGTERM_GRACE_S"
DEFAULT_SIGTERM_GRACE_S = 90.0  # spot and StopTrainingJob give 120 s before SIGKILL

ResultHook = Callable[[Mapping[str, Any], dict[str, float]], None]


@dataclass
class Prepared:
    """Everything checked before Ray starts."""

    spec: TrainerSpec
    built: BuiltConfig
    job: str
    cpus: float
    gpus: float
    resources: dict[str, Any] = field(default_factory=dict)


def prepare(paths: Paths, environ: Mapping[str, str]) -> Prepared:
    """hyperparameters.json -> a checked config. Raises BadInput; never starts Ray."""
    spec = parse(load_hyperparameters(paths.hyperparameters))
    built = build_config(spec)
    try:
        have = available(dict(environ))
    except ValueError as exc:
        raise BadInput([f"resources: {exc}"]) from exc
    need = demand(built.config, built.algorithm_cls)
    problems, warnings = check(need, have, built.config)
    if problems:
        raise BadInput(problems)
    built.warnings += warnings
    resources = {"available": {"cpus": have.cpus, "gpus": have.gpus, "source": have.source}, "needed": need.to_dict()}
    return Prepared(spec, built, job_name(dict(environ)), have.cpus, have.gpus, resources)


class Stopper:
    """SIGTERM/SIGINT set a flag; the loop checkpoints and exits after the current iteration.

    A watchdog ends the process if the iteration in flight outlives the grace period, so SageMaker's SIGKILL
    (120 s after SIGTERM) never lands mid-checkpoint: the last periodic checkpoint stands.
    """

    def __init__(self, grace_s: float) -> None:
        self.grace_s = grace_s
        self.signum: int | None = None
        self.received_at: float | None = None
        self.timer: threading.Timer | None = None

    @property
    def stopped(self) -> bool:
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        return EXIT_SIGINT if self.signum == signal.SIGINT else EXIT_SIGTERM

    def handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            return
        self.signum, self.received_at = signum, time.monotonic()
        log.warning("received %s: finishing the current iteration, then checkpoint, export and exit",
                    signal.Signals(signum).name)
        self.timer = threading.Timer(self.grace_s, self._expire)
        self.timer.daemon = True
        self.timer.start()

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()

    def _expire(self) -> None:
        log.error("still running %.0f s after the signal: exiting without a new checkpoint", self.grace_s)
        logging.shutdown()
        os._exit(self.exit_code)

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.handle)
            signal.signal(signal.SIGINT, self.handle)


def stop_reason(values: Mapping[str, float], stop: Mapping[str, float]) -> str | None:
    for key, target in stop.items():
        value = values.get(key)
        if value is not None and math.isfinite(value) and value >= target:
            return f"{key} {value:g} >= {target:g}"
    return None


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)


def learner_readback(algo: Any, keys: list[str]) -> list[dict[str, Any]]:
    """What each Learner actually holds: optimizer learning rates and the overridden config values."""

    def probe(learner: Any, **_: Any) -> dict[str, Any]:
        optimizers = {}
        for module_id in learner.module.keys():  # noqa: SIM118  (a MultiRLModule, not a dict)
            for name, optimizer in learner.get_optimizers_for_module(module_id):
                optimizers[f"{module_id}/{name}"] = [float(g["lr"]) for g in optimizer.param_groups]
        config = {k: json_safe(getattr(learner.config, k)) for k in keys if hasattr(learner.config, k)}
        if any(k.startswith("rl_module.") for k in keys):
            config["model_config"] = json_safe(learner.config.model_config)
        return {"optimizer_lr": optimizers, "config": config}

    return [r.get() for r in algo.learner_group.foreach_learner(probe)]


def _init_ray(cpus: float, gpus: float) -> None:
    import ray  # noqa: PLC0415  (Ray starts only after every input check)

    object_store_mb = int(os.environ.get(OBJECT_STORE_MB_ENV, DEFAULT_OBJECT_STORE_MB))
    ray.init(
        address="local",  # never attach to another trial's cluster
        num_cpus=max(1, math.floor(cpus)),
        num_gpus=math.floor(gpus),
        include_dashboard=False,
        object_store_memory=object_store_mb * 1024 * 1024,
        log_to_driver=True,
        configure_logging=True,
        logging_level=logging.WARNING,
    )


class Trainer:
    def __init__(self, paths: Paths, prepared: Prepared, stopper: Stopper, *, on_result: ResultHook | None = None,
                 stream: Any = None) -> None:
        self.paths, self.prepared, self.stopper = paths, prepared, stopper
        self.on_result, self.stream = on_result, stream
        spec, built = prepared.spec, prepared.built
        self.checkpoints = CheckpointManager(paths.checkpoints, prepared.job, spec.hp_hash, spec.checkpoint)
        self.csv = MetricsCsv(paths.metrics_csv)
        self.algo: Any = None
        self.values: dict[str, float] = {}
        self.time_total_s = 0.0
        self.restored: CheckpointInfo | None = None
        self.last_checkpoint: Path | None = None
        self.started = time.monotonic()
        # Wall time of this process's loop: inside algo.train() versus everything the trainer adds around it
        # (metric lines, metrics.csv, stop checks, checkpoints). bench/bench_trainer.py reports the ratio.
        self.train_s = 0.0
        self.loop_s = 0.0
        self.extra: dict[str, Any] = {"training_job_name": prepared.job, "resources": prepared.resources}
        self.stop = built.stop

    # -- setup -----------------------------------------------------------------------------------------------
    def write_effective_config(self) -> dict[str, Any]:
        payload = effective_config(self.prepared.built, self.prepared.spec, self.extra)
        _write_json(self.paths.effective_config, payload)
        return payload

    def build_and_restore(self) -> None:
        config = self.prepared.built.config
        self.algo = config.build_algo()
        others = self.checkpoints.other_checkpoint_folders()
        if others:
            shown = ", ".join(others[:10]) + (f" and {len(others) - 10} more" if len(others) > 10 else "")
            log.info("not resuming from other jobs' or other hyperparameters' checkpoints: %s", shown)
        for info in self.checkpoints.candidates():
            try:
                self.algo.restore_from_path(str(info.path))
            except Exception as exc:
                log.warning("restoring %s failed (%s: %s); falling back to the one before",
                            info.path, type(exc).__name__, exc)
                self.algo.stop()
                self.algo = config.build_algo()
                continue
            if getattr(self.algo, "iteration", info.iteration) != info.iteration:
                log.warning("%s restored iteration %s, its marker says %d", info.path, self.algo.iteration,
                            info.iteration)
            self.restored, self.last_checkpoint = info, info.path
            self.time_total_s = info.time_total_s
            self.values = {**info.metrics, "training_iteration": float(info.iteration),
                           "num_env_steps_sampled_lifetime": info.num_env_steps_sampled_lifetime,
                           "time_total_s": info.time_total_s}
            self.checkpoints.mark(info.iteration)
            log.info("resumed from %s: iteration %d, %d env steps, %.1f s of training", info.path, info.iteration,
                     info.num_env_steps_sampled_lifetime, info.time_total_s)
            break
        else:
            log.info("no checkpoint of job %s with hyperparameters %s: starting fresh", self.prepared.job,
                     self.prepared.spec.hp_hash)
        self.extra["resumed_from"] = None if self.restored is None else {
            "path": str(self.restored.path), "iteration": self.restored.iteration,
            "num_env_steps_sampled_lifetime": self.restored.num_env_steps_sampled_lifetime}
        keys = [s.key for s in self.prepared.built.settings.values()]
        self.extra["learner"] = learner_readback(self.algo, keys)
        self.write_effective_config()
        log.info("learner holds: %s", json.dumps(self.extra["learner"], default=str))

    # -- checkpoint and export ---------------------------------------------------------------------------
    def checkpoint(self) -> Path:
        iteration = int(self.values.get("training_iteration", 0))
        self.last_checkpoint = self.checkpoints.save(
            lambda path: self.algo.save_to_path(str(path)),
            iteration=iteration,
            num_env_steps_sampled_lifetime=self.values.get("num_env_steps_sampled_lifetime", 0.0),
            time_total_s=self.time_total_s,
            metrics=self.values,
        )
        log.info("checkpoint %s written", self.last_checkpoint)
        return self.last_checkpoint

    def export(self, status: str, reason: str | None) -> None:
        if self.last_checkpoint is None:
            log.warning("no checkpoint to export yet: /opt/ml/model left as it is")
            return
        spec, built = self.prepared.spec, self.prepared.built
        export_model(self.paths.model, self.last_checkpoint, {
            "algorithm": spec.algorithm,
            "env": spec.env,
            "env_config": spec.env_config,
            "training_job_name": self.prepared.job,
            "hyperparameters": spec.hyperparameters,
            "hyperparameter_hash": spec.hp_hash,
            "overrides": built.overrides(),
            "stop": self.stop,
            "status": status,
            "stop_reason": reason,
            "final_metrics": self.values,
            "training_iteration": int(self.values.get("training_iteration", 0)),
            "num_env_steps_sampled_lifetime": self.values.get("num_env_steps_sampled_lifetime", 0.0),
            "time_total_s": self.time_total_s,
            "checkpoint": self.last_checkpoint.name,
            "checkpoint_seconds": round(self.checkpoints.seconds_spent, 4),
            "loop_seconds": {"algo_train": round(self.train_s, 4), "total": round(self.loop_s, 4)},
            "observation_space": built.env.observation_space,
            "action_space": built.env.action_space,
        })
        log.info("model exported to %s (%s)", self.paths.model, status)

    # -- loop --------------------------------------------------------------------------------------------------
    def finish_if_done(self) -> int | None:
        reason = stop_reason(self.values, self.stop) if self.values else None
        iteration = int(self.values.get("training_iteration", 0))
        if reason:
            log.info("stop criterion met: %s", reason)
            if self.last_checkpoint is None or self.checkpoints.last_iteration != iteration:
                self.checkpoint()
            self.export("completed", reason)
            return EXIT_OK
        if self.stopper.stopped:
            if iteration and self.checkpoints.last_iteration != iteration:
                self.checkpoint()
            self.export("stopped", f"signal {self.stopper.signum}")
            log.warning("stopped by signal after iteration %d; a restart resumes from %s", iteration,
                        self.last_checkpoint)
            return self.stopper.exit_code
        return None

    def train(self) -> int:
        done = self.finish_if_done()  # a restart after the budget was met, or a signal during setup
        if done is not None:
            return done
        while True:
            loop_started = time.perf_counter()
            result = self.algo.train()
            self.train_s += time.perf_counter() - loop_started
            self.time_total_s += float(result.get("time_this_iter_s") or 0.0)
            result["time_total_s"] = self.time_total_s  # RLlib resets it on restore; ours spans restarts
            values = metrics.extract_metrics(result)
            print_metrics(values, self.stream)
            self.csv.append(values)
            self.values = values
            if self.on_result is not None:
                self.on_result(result, values)
            done = self.finish_if_done()
            if done is not None:
                self.loop_s += time.perf_counter() - loop_started
                return done
            if self.checkpoints.due(int(values.get("training_iteration", 0))):
                self.checkpoint()
            self.loop_s += time.perf_counter() - loop_started


def run(paths: Paths, environ: Mapping[str, str], *, on_result: ResultHook | None = None, stream: Any = None,
        prepared: Prepared | None = None) -> int:
    """Exit code of one training job. BadInput propagates (the caller writes the failure file)."""
    stopper = Stopper(float(environ.get(SIGTERM_GRACE_ENV, DEFAULT_SIGTERM_GRACE_S)))
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    stopper.install()  # before Ray starts, too: a signal during setup exits cleanly
    try:
        prepared = prepared or prepare(paths, environ)
        trainer = Trainer(paths, prepared, stopper, on_result=on_result, stream=stream)
        payload = trainer.write_effective_config()
        for warning in prepared.built.warnings:
            log.warning("%s", warning)
        log.info("effective config written to %s: %s", paths.effective_config,
                 json.dumps({k: v for k, v in payload.items() if k != "rllib_config"}, default=str))
        log.info("full RLlib config: %s", json.dumps(payload["rllib_config"], default=str))
        if stopper.stopped:
            return stopper.exit_code
        import ray  # noqa: PLC0415

        log.info("starting Ray with %g CPUs and %g GPUs", prepared.cpus, prepared.gpus)
        _init_ray(prepared.cpus, prepared.gpus)
        stopper.install()  # ray.init replaced our SIGTERM handler with sys.exit
        try:
            trainer.build_and_restore()
            return trainer.train()
        finally:
            if trainer.algo is not None:
                try:
                    trainer.algo.stop()
                except Exception as exc:  # shutting down anyway
                    log.warning("algo.stop() failed: %s", exc)
            ray.shutdown()
    finally:
        stopper.cancel()
        if threading.current_thread() is threading.main_thread():
            for signum, handler in previous.items():
                signal.signal(signum, handler)
