"""Local backend benchmarks, measured side by side in one run (the machine is shared and noisy).

1. Parallelism: the same 2 trials (a Grid over two learning rates, a fixed step budget) run 2-at-a-time
   (1 CPU each) against one after the other (2 CPUs each), in ABBA order. Goal: parallel / sequential <= 0.65.
2. Per-trial overhead: process start + Ray start + first iteration (time to the first metric line),
   as a share of each trial's wall time.
3. The default demo (`make demo`): wall time and best objective (goal: < 10 min, return >= 450).

Usage: .venv/bin/python bench/bench_local.py [--skip-demo] [--steps N] [--rounds 1|2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rltune.local import LocalOptions, run_local  # noqa: E402
from rltune.local.run import DEFAULT_PAYLOAD_PATH  # noqa: E402


def same_two_trials(steps: int) -> dict:
    """The default payload as a 2-point Grid with a fixed step budget (no early finish at return 450)."""
    payload = json.loads(DEFAULT_PAYLOAD_PATH.read_text())
    payload.pop("max_jobs", None)
    payload["strategy"] = "Grid"
    payload["hyperparameter_ranges"] = {"rl.training.config.lr": ["0.0003", "0.0005"]}
    static = payload["static_hyperparameters"]
    static["rl.stop.episode_return_mean"] = 100_000  # unreachable: every trial trains exactly `steps`
    static["rl.stop.num_env_steps_sampled_lifetime"] = steps
    return payload


def timed_run(payload: dict, workdir: Path, parallel: int) -> tuple[float, list]:
    start = time.perf_counter()
    result = run_local(payload, LocalOptions(max_parallel_jobs=parallel, workdir=workdir))
    wall = time.perf_counter() - start
    failed = [r.name for r in result.records if r.status != "Completed"]
    if failed:
        raise SystemExit(f"benchmark trials failed: {failed}; see {workdir}")
    return wall, result.records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=16_000, help="env steps per trial in the parallelism bench")
    parser.add_argument("--rounds", type=int, choices=(1, 2), default=2,
                        help="1: parallel then sequential; 2: ABBA order (parallel, sequential, sequential, parallel)")
    parser.add_argument("--skip-demo", action="store_true", help="skip the full default demo")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-local-") as tmp:
        tmp_path = Path(tmp)
        payload = same_two_trials(args.steps)
        # ABBA order, so a neighbour's load drifting during the run biases neither side.
        walls: dict[str, list[float]] = {"parallel": [], "sequential": []}
        runs: list[tuple[str, list]] = []
        for round_number, label in enumerate(["parallel", "sequential", "sequential", "parallel"][: 2 * args.rounds]):
            wall, records = timed_run(payload, tmp_path / f"{label}-{round_number}",
                                      parallel=2 if label == "parallel" else 1)
            walls[label].append(wall)
            runs.append((label, records))
            print(f"  {label:10s} (round {round_number + 1}): {wall:.1f} s")
        parallel_wall, sequential_wall = sum(walls["parallel"]), sum(walls["sequential"])
        ratio = parallel_wall / sequential_wall
        print(f"2 trials x {args.steps:,} env steps, mean wall: parallel (2 x 1 CPU) "
              f"{parallel_wall / len(walls['parallel']):.1f} s, sequential (1 x 2 CPUs) "
              f"{sequential_wall / len(walls['sequential']):.1f} s")
        print(f"parallel / sequential wall time: {ratio:.2f} (goal <= 0.65) -> {'OK' if ratio <= 0.65 else 'MISSED'}")

        shares = []
        for label, records in runs:
            for record in records:
                if record.first_report_s is None or record.training_seconds <= 0:
                    continue
                share = record.first_report_s / record.training_seconds
                shares.append(share)
                print(f"  {label:10s} {record.name[-12:]}: first iteration reported after "
                      f"{record.first_report_s:.1f} s of {record.training_seconds:.1f} s "
                      f"({100 * share:.0f}% overhead: process + Ray start + first iteration)")
        if shares:
            print(f"per-trial overhead share: median {100 * statistics.median(shares):.0f}% "
                  f"(min {100 * min(shares):.0f}%, max {100 * max(shares):.0f}%)")

        if not args.skip_demo:
            start = time.perf_counter()
            result = run_local(None, LocalOptions(workdir=tmp_path / "demo"))
            wall = time.perf_counter() - start
            best = result.best.objective if result.best else float("nan")
            print(f"default demo: {len(result.records)} trials, {result.spec.max_parallel_jobs} parallel, "
                  f"wall {wall:.0f} s ({wall / 60:.1f} min, goal < 10 min), best {result.spec.objective_metric} "
                  f"{best:.1f} (goal >= 450) -> {'OK' if wall < 600 and best >= 450 else 'MISSED'}")


if __name__ == "__main__":
    main()
