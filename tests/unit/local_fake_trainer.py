"""A stand-in for training_image/train that honours the trainer contract, for sharp local-backend tests.

It reads `$RLTUNE_OPT_ML/input/config/hyperparameters.json` and, per iteration, prints metric lines with
`rltune.metrics.format_metric_line`: the objective is `rl.env_config.quality * iteration`, so a
higher `quality` is a better trial. Other knobs (all `rl.env_config.*`: an open namespace, so the
payload validator, which checks RLlib keys, lets them through):
- `iterations` (default 5), `sleep` (seconds per iteration, default 0.05);
- `fail_at` (iteration): write output/failure and exit 2; `crash_at`: exit 3 without a failure file;
- `noise`: also print a decoy line that must not match (`episode_reward_mean_decoy=...`).
It checkpoints after every iteration and resumes from `checkpoints/state.json`; SIGTERM checkpoints,
writes the model and exits 143. It records every start in `output/data/starts.log`.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from rltune.metrics import format_metric_line

root = Path(os.environ["RLTUNE_OPT_ML"])
hps = json.loads((root / "input/config/hyperparameters.json").read_text())
assert all(isinstance(v, str) for v in hps.values()), "SageMaker passes strings only"


def hp(name: str, default: float) -> float:
    return float(hps.get(f"rl.env_config.{name}", default))


quality = hp("quality", 1.0)
iterations = int(hp("iterations", 5))
sleep = hp("sleep", 0.05)
fail_at = int(hp("fail_at", 0))
crash_at = int(hp("crash_at", 0))
state_file = root / "checkpoints" / "state.json"
data = root / "output" / "data"
data.mkdir(parents=True, exist_ok=True)
with (data / "starts.log").open("a") as starts:
    starts.write(json.dumps({"job": os.environ["TRAINING_JOB_NAME"], "cpus": os.environ["SM_NUM_CPUS"],
                             "objective": hps.get("_tuning_objective_metric"),
                             "checkpoint_dir": str(state_file.parent)}) + "\n")
start = json.loads(state_file.read_text())["iteration"] if state_file.exists() else 0
current = start


def checkpoint(iteration: int) -> None:
    tmp = state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps({"iteration": iteration, "job": os.environ["TRAINING_JOB_NAME"]}))
    tmp.replace(state_file)


def export_model() -> None:
    (root / "model").mkdir(parents=True, exist_ok=True)
    (root / "model" / "policy.json").write_text(json.dumps({"quality": quality, "iteration": current}))


def on_sigterm(signum: int, frame: object) -> None:
    checkpoint(current)
    export_model()
    print("got SIGTERM: checkpointed and exported", flush=True)
    sys.exit(143)


signal.signal(signal.SIGTERM, on_sigterm)
print(f"fake trainer starting at iteration {start} with cpus={os.environ['SM_NUM_CPUS']}", flush=True)
for iteration in range(start + 1, iterations + 1):
    time.sleep(sleep)
    if iteration == fail_at:
        (root / "output" / "failure").write_text(f"ValueError: diverged at iteration {iteration}")
        sys.exit(2)
    if iteration == crash_at:
        print("Traceback: segfault-ish crash", flush=True)
        sys.exit(3)
    current = iteration
    if hp("noise", 0):
        print(f"[rltune] episode_reward_mean_decoy={9999.0};", flush=True)
    print(format_metric_line("episode_reward_mean", quality * iteration), flush=True)
    print(format_metric_line("num_env_steps_sampled_lifetime", 1000.0 * iteration), flush=True)
    print(format_metric_line("training_iteration", float(iteration)), flush=True)
    checkpoint(iteration)
export_model()
print("done", flush=True)
