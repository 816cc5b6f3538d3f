"""Trainer benchmarks, measured side by side in one run (this machine is shared and noisy).

1. Throughput: trainer env-steps/s over a bare RLlib `algo.train()` loop on the same config (goal >= 0.97).
2. Checkpoint time as a share of the training loop's wall time at the default interval (goal <= 3 %).
3. SIGTERM -> exit, and process start -> first resumed iteration.
4. The default payload (examples/cartpole_ppo.json) to a mean return of 450: wall time and env steps, against
   Stable-Baselines3 with rl-zoo's PPO CartPole settings where SB3 is importable (by this interpreter or by
   $RLTUNE_SB3_PYTHON); otherwise that line prints 'skipped'. SB3 is not a project dependency.

Usage: .venv/bin/python bench/bench_trainer.py [--rounds N] [--iterations N]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT / "training_image" / "train"
sys.path[:0] = [str(ROOT / "training_image"), str(ROOT)]

from rltune_trainer.paths import Paths  # noqa: E402

from rltune import hyperparameters as hp  # noqa: E402
from rltune import metrics  # noqa: E402


def default_payload_hps() -> dict[str, str]:
    """The example payload's static hyperparameters; its tuned keys are left to the trainer's defaults."""
    payload = json.loads((ROOT / "examples" / "cartpole_ppo.json").read_text())
    values = {k: v for k, v in payload["static_hyperparameters"].items() if k not in payload["hyperparameter_ranges"]}
    return {k: hp.encode_value(v) for k, v in values.items()}


def write_hps(root: Path, hps: dict[str, str]) -> None:
    path = Paths(root).hyperparameters
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(hps))


# -- children (one Ray cluster per process) ----------------------------------------------------------------

def child_trainer(iterations: int, out: Path) -> None:
    import io

    from ray.rllib.algorithms.ppo import PPO
    from rltune_trainer.runner import run

    calls: list[tuple[float, float]] = []  # (start, end) of every algo.train() inside the trainer
    original = PPO.train

    def timed(self):
        started = time.perf_counter()
        try:
            return original(self)
        finally:
            calls.append((started, time.perf_counter()))

    PPO.train = timed
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_hps(root, {"rl.stop.training_iteration": str(iterations)})  # defaults otherwise: 0 x 8 PPO
        stamps: list[tuple[float, float]] = []
        code = run(Paths(root), {"SM_NUM_CPUS": "2", "SM_NUM_GPUS": "0", "TRAINING_JOB_NAME": "bench"},
                   on_result=lambda r, v: stamps.append((time.perf_counter(), v["num_env_steps_sampled_lifetime"])),
                   stream=io.StringIO())
        meta = json.loads((root / "model" / "metadata.json").read_text())
        out.write_text(json.dumps({"code": code, "stamps": stamps, "calls": calls,
                                   "checkpoint_s": meta["checkpoint_seconds"]}))


def child_bare(iterations: int, out: Path) -> None:
    import ray
    from rltune_trainer.config_builder import build_config
    from rltune_trainer.runner import _init_ray
    from rltune_trainer.spec import parse

    built = build_config(parse({}))  # the very config the trainer builds by default
    _init_ray(2, 0)
    algo = built.config.build_algo()
    stamps = []
    for _ in range(iterations):
        result = algo.train()
        stamps.append((time.perf_counter(), float(result["num_env_steps_sampled_lifetime"])))
    algo.stop()
    ray.shutdown()
    out.write_text(json.dumps({"stamps": stamps}))


def steps_per_s(stamps: list[list[float]]) -> float:
    """Throughput after the first iteration (both sides pay the same warm-up)."""
    (t0, s0), (t1, s1) = stamps[0], stamps[-1]
    return (s1 - s0) / (t1 - t0)


def spawn(mode: str, iterations: int) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json") as handle:
        subprocess.run([sys.executable, __file__, "--child", mode, "--iterations", str(iterations), "--out",
                        handle.name], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return json.loads(Path(handle.name).read_text())


# -- subprocess runs of training_image/train ---------------------------------------------------------------

def train_env(root: Path, job: str) -> dict[str, str]:
    return {**os.environ, "RLTUNE_OPT_ML": str(root), "TRAINING_JOB_NAME": job, "SM_NUM_CPUS": "2",
            "SM_NUM_GPUS": "0", "PYTHONUNBUFFERED": "1"}


def sigterm_and_resume() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_hps(root, {"rl.stop.training_iteration": "40"})
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, str(TRAIN)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                text=True, env=train_env(root, "bench-spot"))
        first_line = None
        for line in proc.stdout:
            first_line = first_line or time.perf_counter()
            if line.startswith(f"{metrics.LINE_TAG} training_iteration=5.0;"):
                break
        signalled = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=120)
        exited = time.perf_counter()
        assert proc.returncode == 143, proc.returncode

        restarted = time.perf_counter()
        proc = subprocess.Popen([sys.executable, str(TRAIN)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                text=True, env=train_env(root, "bench-spot"))
        first_resumed = None
        for line in proc.stdout:
            if line.startswith(f"{metrics.LINE_TAG} training_iteration="):
                first_resumed = (time.perf_counter(), float(line.split("=")[1].rstrip(";\n")))
                break
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=120)
        return {"fresh_start_to_first_iteration_s": first_line - started, "sigterm_to_exit_s": exited - signalled,
                "restart_to_first_resumed_iteration_s": first_resumed[0] - restarted,
                "first_resumed_iteration": first_resumed[1]}


def default_payload_to_450() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_hps(root, default_payload_hps())
        started = time.perf_counter()
        result = subprocess.run([sys.executable, str(TRAIN)], capture_output=True, text=True,
                                env=train_env(root, "bench-default"), check=False)
        wall = time.perf_counter() - started
        found = metrics.parse_metric_lines(result.stdout.splitlines(), metrics.metric_definitions())
        return {"code": result.returncode, "wall_s": wall, "training_s": found["time_total_s"][-1],
                "env_steps": found["num_env_steps_sampled_lifetime"][-1], "return": found["episode_return_mean"][-1]}


SB3_SCRIPT = r"""
import json, time
t_import = time.perf_counter()
import gymnasium as gym, numpy as np, torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env

class Stop(BaseCallback):
    def _on_step(self):
        buf = self.model.ep_info_buffer
        return not (len(buf) >= 100 and np.mean([e["r"] for e in buf]) >= 450)

lin = lambda v: (lambda progress: progress * v)
started = time.perf_counter()
env = make_vec_env("CartPole-v1", n_envs=8, seed=42)
model = PPO("MlpPolicy", env, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20, ent_coef=0.0,
            learning_rate=lin(0.001), clip_range=lin(0.2), seed=42, device="cpu", verbose=0)
model.learn(total_timesteps=200_000, callback=Stop())
buf = model.ep_info_buffer
print(json.dumps({"wall_s": time.perf_counter() - started, "wall_with_import_s": time.perf_counter() - t_import,
                  "env_steps": int(model.num_timesteps), "return": float(np.mean([e["r"] for e in buf]))}))
"""


def sb3_python() -> str | None:
    candidates = [os.environ.get("RLTUNE_SB3_PYTHON"), sys.executable]
    for python in filter(None, candidates):
        probe = subprocess.run([python, "-c", "import stable_baselines3"], capture_output=True, check=False)
        if probe.returncode == 0:
            return python
    return None


def sb3_to_450() -> dict[str, float] | None:
    python = sb3_python()
    if python is None:
        return None
    started = time.perf_counter()
    result = subprocess.run([python, "-c", SB3_SCRIPT], capture_output=True, text=True, check=True)
    found = json.loads(result.stdout.strip().splitlines()[-1])
    found["process_wall_s"] = time.perf_counter() - started
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=12)
    parser.add_argument("--child", choices=["trainer", "bare"])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--only", choices=["throughput", "spot", "to450"], help="run one section")
    args = parser.parse_args()
    if args.child == "trainer":
        return child_trainer(args.iterations, args.out)
    if args.child == "bare":
        return child_bare(args.iterations, args.out)

    if args.only in (None, "throughput"):
        throughput(args.rounds, args.iterations)
    if args.only in (None, "spot"):
        spot_section()
    if args.only in (None, "to450"):
        to450_section()
    return None


def throughput(rounds: int, iterations: int) -> None:
    print(f"1. throughput: {rounds} rounds x (bare, trainer), {iterations} iterations, PPO 0x8 CartPole")
    bare, trainer, shares, inside, around = [], [], [], 0.0, 0.0
    for _ in range(rounds):
        b = spawn("bare", iterations)
        t = spawn("trainer", iterations)
        bare.append(steps_per_s(b["stamps"]))
        trainer.append(steps_per_s(t["stamps"]))
        calls = t["calls"]
        # Iterations 2..N: time inside algo.train() versus the trainer's own work between two train() calls.
        train_s = sum(end - start for start, end in calls[1:])
        gaps_s = sum(calls[i + 1][0] - calls[i][1] for i in range(len(calls) - 1))
        inside, around = inside + train_s, around + gaps_s
        shares.append(t["checkpoint_s"] / (train_s + gaps_s))
        print(f"   bare {bare[-1]:8.0f} steps/s   trainer {trainer[-1]:8.0f} steps/s   "
              f"ratio {trainer[-1] / bare[-1]:.3f}   trainer's own work {1000 * gaps_s / (len(calls) - 1):.1f} ms/iter")
    ratio = sum(trainer) / sum(bare)
    print(f"   trainer / bare throughput, side by side: {ratio:.3f} (goal >= 0.97)")
    print(f"   trainer / bare throughput from the trainer's own overhead: {inside / (inside + around):.4f} "
          "(insensitive to other load on the machine)")
    print(f"2. checkpoint share of wall time at the default interval (10 iterations / 60 s, plus the final one): "
          f"{100 * max(shares):.2f} % worst round (goal <= 3 %)")



def spot_section() -> None:
    spot = sigterm_and_resume()
    print(f"3. SIGTERM -> exit: {spot['sigterm_to_exit_s']:.2f} s; restart -> first resumed iteration "
          f"(#{spot['first_resumed_iteration']:.0f}): {spot['restart_to_first_resumed_iteration_s']:.2f} s "
          f"(fresh start -> first iteration: {spot['fresh_start_to_first_iteration_s']:.2f} s)")



def to450_section() -> None:
    ours = default_payload_to_450()
    print(f"4. default payload to return 450: {ours['wall_s']:.1f} s wall (process start to exit), "
          f"{ours['training_s']:.1f} s training, {ours['env_steps']:.0f} env steps, final return {ours['return']:.1f}"
          f" (exit {ours['code']})")
    sb3 = sb3_to_450()
    if sb3 is None:
        print("   Stable-Baselines3 rl-zoo PPO: skipped (stable_baselines3 not importable; set RLTUNE_SB3_PYTHON)")
    else:
        print(f"   Stable-Baselines3 rl-zoo PPO: {sb3['process_wall_s']:.1f} s wall (process), {sb3['wall_s']:.1f} s "
              f"training, {sb3['env_steps']} env steps, final return {sb3['return']:.1f}")
        print(f"   rltune / SB3: wall {ours['wall_s'] / sb3['process_wall_s']:.2f}, training time "
              f"{ours['training_s'] / sb3['wall_s']:.2f}, env steps {ours['env_steps'] / sb3['env_steps']:.2f} "
              "(< 1 is faster)")


if __name__ == "__main__":
    main()
