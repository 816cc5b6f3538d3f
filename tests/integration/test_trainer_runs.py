"""The trainer on real RLlib 2.60 runs (CPU, small budgets).

One in-process run checks what reaches the learner, the metric lines and the exported policy; one
subprocess sequence on a shared directory checks SIGTERM, resume, job isolation and corrupt-checkpoint
fallback; two subprocess runs check that bad input exits 2 before Ray starts.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rltune_trainer.paths import Paths
from rltune_trainer.runner import run

from rltune import metrics

ROOT = Path(__file__).resolve().parents[2]
TRAIN = ROOT / "training_image" / "train"
# Small, fast iterations: 0 env runners x 4 envs, 500 steps, one epoch.
FAST = {
    "rl.env_runners.num_envs_per_env_runner": "4",
    "rl.training.config.train_batch_size_per_learner": "500",
    "rl.training.config.minibatch_size": "250",
    "rl.training.config.num_epochs": "1",
}


def write_hps(root: Path, hps: dict[str, str]) -> Paths:
    path = Paths(root).hyperparameters
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(hps))
    return Paths(root)


# -- in process: lr reaches the learner, metric lines match the result dicts, the policy exports ------------

@pytest.fixture(scope="module")
def lr_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("lr_run")
    paths = write_hps(root, {**FAST, "rl.training.config.lr": "0.00123", "rl.stop.training_iteration": "3",
                             "rl.seed": "3", "_tuning_objective_metric": "episode_reward_mean"})
    results: list[dict] = []
    stream = io.StringIO()

    def keep(result, values):
        results.append({"env_runners": dict(result["env_runners"]), "learners": dict(result["learners"]),
                        **{k: result[k] for k in ("training_iteration", "num_env_steps_sampled_lifetime",
                                                  "time_total_s")}})

    code = run(paths, {"RLTUNE_OPT_ML": str(root), "TRAINING_JOB_NAME": "lr-job", "SM_NUM_CPUS": "1",
                       "SM_NUM_GPUS": "0"}, on_result=keep, stream=stream)
    return {"code": code, "paths": paths, "results": results, "stdout": stream.getvalue()}


def test_tuned_lr_reaches_the_learners_optimizer(lr_run):
    assert lr_run["code"] == 0
    effective = json.loads(lr_run["paths"].effective_config.read_text())
    assert effective["rllib_config"]["lr"] == 0.00123
    assert {"key": "lr", "value": 0.00123, "source": "rl.training.config.lr"} in effective["overrides"]
    (learner,) = effective["learner"]
    assert learner["optimizer_lr"] == {"default_policy/default_optimizer": [pytest.approx(0.00123)]}
    assert learner["config"]["lr"] == 0.00123
    for result in lr_run["results"]:  # what the learner reported while training
        assert result["learners"]["default_policy"]["default_optimizer_learning_rate"] == pytest.approx(0.00123)


def test_metric_regexes_capture_what_the_result_dicts_had(lr_run):
    lines = lr_run["stdout"].splitlines()
    assert lines  # never the result dict
    assert all(line.startswith(metrics.LINE_TAG) for line in lines)
    parsed = metrics.parse_metric_lines(lines, metrics.metric_definitions())
    results = lr_run["results"]
    assert parsed["training_iteration"] == [1.0, 2.0, 3.0]
    for metric in metrics.METRICS:
        expected = []
        for result in results:
            raw = metrics.lookup(result, metric.result_key)
            if raw is not None and float(raw) == float(raw):
                expected.append(float(raw))
        assert parsed.get(metric.name, []) == pytest.approx(expected), metric.name
    assert parsed["episode_reward_mean"] == parsed["episode_return_mean"]
    assert parsed["episode_reward_mean"][-1] == pytest.approx(results[-1]["env_runners"]["episode_return_mean"])
    rows = list(csv.DictReader(lr_run["paths"].metrics_csv.open()))
    assert [float(r["num_env_steps_sampled_lifetime"]) for r in rows] == parsed["num_env_steps_sampled_lifetime"]


def test_exported_policy_loads_on_its_own_and_acts(lr_run):
    import gymnasium as gym
    import torch
    from ray.rllib.core.rl_module.rl_module import RLModule

    model = lr_run["paths"].model
    meta = json.loads((model / "metadata.json").read_text())
    assert meta["algorithm"] == "PPO"
    assert meta["env"] == "CartPole-v1"
    assert meta["status"] == "completed"
    assert meta["training_iteration"] == 3
    assert meta["num_env_steps_sampled_lifetime"] >= 1500
    assert meta["hyperparameters"]["rl.training.config.lr"] == 0.00123
    assert meta["versions"]["ray"] == "2.60.0"
    assert meta["final_metrics"]["training_iteration"] == 3.0
    assert (model / "checkpoint" / "rllib_checkpoint.json").is_file()

    module = RLModule.from_checkpoint(str(model / "policy"))
    env = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=0)
    with torch.no_grad():
        out = module.forward_inference({"obs": torch.as_tensor(obs, dtype=torch.float32).unsqueeze(0)})
    logits = out["action_dist_inputs"]
    assert logits.shape == (1, 2)
    action = int(torch.argmax(logits, dim=-1)[0])
    _, reward, *_ = env.step(action)
    assert reward == 1.0


# -- subprocesses on one shared directory: SIGTERM, resume, isolation, corrupt fallback -----------------------

def start(root: Path, job: str, cpus: str = "1") -> subprocess.Popen:
    env = {**os.environ, "RLTUNE_OPT_ML": str(root), "TRAINING_JOB_NAME": job, "SM_NUM_CPUS": cpus,
           "SM_NUM_GPUS": "0", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, str(TRAIN)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)


def finish(proc: subprocess.Popen, timeout: float = 240) -> dict:
    out, err = proc.communicate(timeout=timeout)
    parsed = metrics.parse_metric_lines(out.splitlines(), metrics.metric_definitions())
    return {"code": proc.returncode, "stdout": out, "stderr": err, "metrics": parsed}


BUDGET = 8
SHARED_HPS = {**FAST, "rl.stop.training_iteration": str(BUDGET), "rl.checkpoint.every_n_iterations": "2",
              "rl.checkpoint.every_seconds": "3600", "rl.checkpoint.keep": "2"}


@pytest.fixture(scope="module")
def spot(tmp_path_factory):
    base = tmp_path_factory.mktemp("spot")
    a, b = base / "a", base / "b"
    write_hps(a, SHARED_HPS)
    write_hps(b, {**SHARED_HPS, "rl.stop.training_iteration": "2"})
    b.joinpath("checkpoints").symlink_to(a / "checkpoints", target_is_directory=True)  # one shared checkpoint dir
    (a / "checkpoints").mkdir()
    runs = {}

    # 1. job-a, SIGTERM once iteration 3 is printed.
    proc = start(a, "job-a")
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith(f"{metrics.LINE_TAG} training_iteration=3.0;"):
            proc.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            break
    first = finish(proc)
    first["sigterm_to_exit_s"] = time.monotonic() - signalled
    first["metrics"] = metrics.parse_metric_lines(seen + first["stdout"].splitlines(), metrics.metric_definitions())
    first["checkpoints"] = sorted(p.name for p in (a / "checkpoints" / "job-a").glob("*/ckpt-*"))
    first["model_metadata"] = json.loads((a / "model" / "metadata.json").read_text())
    runs["interrupted"] = first

    # 2. job-a again: resumes and stops at the budget.
    runs["resumed"] = finish(start(a, "job-a"))
    runs["csv"] = list(csv.DictReader((a / "output" / "data" / "metrics.csv").open()))

    # 3. job-b on the same checkpoint directory: never resumes from job-a.
    runs["other_job"] = finish(start(b, "job-b"))

    # 4. job-a once more with its newest checkpoint corrupted: falls back to the one before and redoes the rest.
    ckpts = sorted((a / "checkpoints" / "job-a").glob("*/ckpt-*"))
    runs["before_corruption"] = [p.name for p in ckpts]
    state = next(p for p in sorted(ckpts[-1].rglob("*.pkl")) if p.stat().st_size > 100)
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    runs["fallback"] = finish(start(a, "job-a"))

    # 5. job-a after it finished: nothing left to train; exits 0 with the model in place.
    runs["again"] = finish(start(a, "job-a"))
    runs["a"], runs["b"] = a, b
    yield runs
    shutil.rmtree(base, ignore_errors=True)


def test_sigterm_checkpoints_exports_and_exits_143_within_seconds(spot):
    run1 = spot["interrupted"]
    assert run1["code"] == 143, run1["stderr"][-3000:]
    assert run1["sigterm_to_exit_s"] < 20
    last = int(run1["metrics"]["training_iteration"][-1])
    assert 3 <= last < BUDGET
    assert f"ckpt-{last:09d}" in run1["checkpoints"]
    meta = run1["model_metadata"]
    assert meta["status"] == "stopped"
    assert meta["training_iteration"] == last


def test_resume_continues_counters_and_stops_at_the_budget(spot):
    run1, run2 = spot["interrupted"], spot["resumed"]
    assert run2["code"] == 0, run2["stderr"][-3000:]
    last = int(run1["metrics"]["training_iteration"][-1])
    iterations = [int(i) for i in run2["metrics"]["training_iteration"]]
    assert iterations == list(range(last + 1, BUDGET + 1))  # resumed at the checkpoint, stopped at the budget
    steps_before = run1["metrics"]["num_env_steps_sampled_lifetime"][-1]
    assert run2["metrics"]["num_env_steps_sampled_lifetime"][0] > steps_before  # the counter continues
    assert run2["metrics"]["num_env_steps_sampled_lifetime"][0] < steps_before + 1000
    assert run2["metrics"]["time_total_s"][0] > run1["metrics"]["time_total_s"][-1]  # cumulative across restarts
    # No work redone: every iteration appears once in metrics.csv across both processes.
    assert [int(float(r["training_iteration"])) for r in spot["csv"]] == list(range(1, BUDGET + 1))
    meta = json.loads((spot["a"] / "model" / "metadata.json").read_text())
    assert meta["status"] == "completed"
    assert meta["training_iteration"] == BUDGET


def test_jobs_sharing_a_checkpoint_directory_never_resume_from_each_other(spot):
    other = spot["other_job"]
    assert other["code"] == 0, other["stderr"][-3000:]
    assert other["metrics"]["training_iteration"] == [1.0, 2.0]
    assert other["metrics"]["num_env_steps_sampled_lifetime"][0] <= 1000
    assert "starting fresh" in other["stderr"]
    shared = spot["a"] / "checkpoints"
    assert {p.name for p in shared.iterdir()} == {"job-a", "job-b"}


def test_corrupt_newest_checkpoint_falls_back_to_the_previous_one(spot):
    fallback = spot["fallback"]
    assert fallback["code"] == 0, fallback["stderr"][-3000:]
    newest, previous = spot["before_corruption"][-1], spot["before_corruption"][-2]
    assert newest == f"ckpt-{BUDGET:09d}"
    assert f"{newest} is not usable" in fallback["stderr"]
    assert "resumed from" in fallback["stderr"]
    assert previous in fallback["stderr"]
    previous_iteration = int(previous.split("-")[1])
    assert fallback["metrics"]["training_iteration"] == [float(i) for i in range(previous_iteration + 1, BUDGET + 1)]


# -- bad input in a real subprocess: exit 2, failure file, Ray never started -------------------------------------

@pytest.mark.parametrize(
    ("hps", "cpus", "expected"),
    [
        ({"rl.training.config.lrr": "0.001"}, "1", "did you mean 'lr'"),
        ({"rl.algorithm": "IMPALA", "rl.env_runners.num_env_runners": "2", "rl.learners.num_learners": "1"}, "2",
         "would wait forever"),
    ],
)
def test_bad_input_exits_2_with_a_failure_file_before_ray_starts(tmp_path, hps, cpus, expected):
    write_hps(tmp_path, hps)
    started = time.monotonic()
    result = finish(start(tmp_path, "bad-job", cpus=cpus), timeout=60)
    elapsed = time.monotonic() - started
    assert result["code"] == 2
    assert elapsed < 30
    failure = (tmp_path / "output" / "failure").read_text()
    assert expected in failure
    assert "starting Ray" not in result["stderr"]
    assert result["stdout"] == ""


def test_a_restart_after_the_budget_was_met_trains_nothing(spot):
    again = spot["again"]
    assert again["code"] == 0, again["stderr"][-3000:]
    assert again["stdout"] == ""
    assert f"stop criterion met: training_iteration {BUDGET} >= {BUDGET}" in again["stderr"]
    meta = json.loads((spot["a"] / "model" / "metadata.json").read_text())
    assert meta["status"] == "completed"
    assert meta["training_iteration"] == BUDGET
