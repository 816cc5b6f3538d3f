"""`rltune local` against the real trainer (training_image/train, real RLlib): tiny budgets, two trials.

Kept lean (about 1-2 minutes on 2 cores): one parallel 2-trial run through the command line, and one
interrupted-then-resumed run that proves a real trial restarts from its checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from rltune import metrics
from rltune.cli import app
from rltune.local import LocalOptions, prepare_request
from rltune.local.run import DEFAULT_PAYLOAD_PATH
from rltune.local.sweep import Sweep
from rltune.local.trial import STOP_INTERRUPTED
from rltune.local.ui import SilentUI

STEPS_PER_ITERATION = 2000  # train_batch_size_per_learner in the default payload


def test_two_real_trials_in_parallel_end_to_end(tmp_path):
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["local", "--workdir", str(run), "--max-jobs", "2",
                                      "--budget-steps", str(STEPS_PER_ITERATION), "--no-live"])
    assert result.exit_code == 0, result.output

    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "Completed"
    assert summary["counts"]["completed"] == 2
    best = summary["best_training_job"]
    assert best is not None
    assert best["objective_value"] == summary["objective"]["value"] > 0
    assert set(best["tuned_hyperparameters"]) == set(json.loads(DEFAULT_PAYLOAD_PATH.read_text())[
        "hyperparameter_ranges"])
    assert (run / "trials.png").read_bytes()[:4] == b"\x89PNG"

    trial_dirs = sorted((run / "trials").iterdir())
    assert len(trial_dirs) == 2
    for trial_dir in trial_dirs:
        hps = json.loads((trial_dir / "input/config/hyperparameters.json").read_text())
        assert hps["_tuning_objective_metric"] == "episode_reward_mean"
        assert hps["rl.stop.num_env_steps_sampled_lifetime"] == str(STEPS_PER_ITERATION)
        # The trial's objective is the last value its own log printed (SageMaker's rule), and the trainer's
        # metrics.csv agrees with it.
        log = (trial_dir / "logs/train.log").read_text().splitlines()
        scraped = metrics.parse_metric_lines(log, metrics.metric_definitions())
        job = json.loads((trial_dir / "job.json").read_text())
        assert job["objective"] == scraped["episode_reward_mean"][-1]
        assert float(hps["rl.training.config.lr"]) == scraped["learning_rate"][-1], "the tuned lr reached RLlib"
        assert (trial_dir / "output/data/metrics.csv").exists()
        assert any((trial_dir / "model").iterdir()), "the model was exported"
        assert any(p.is_file() for p in (trial_dir / "checkpoints").rglob("*")), "checkpoints stay in the trial"
        effective = json.loads((trial_dir / "output/data/effective_config.json").read_text())
        assert effective["training_job_name"] == trial_dir.name
        assert effective["resources"]["available"]["cpus"] == 1.0, "each of 2 parallel trials gets 1 of 2 cores"


class InterruptAfterFirstIteration(SilentUI):
    """Presses Ctrl-C once a running trial has completed an iteration."""

    fired = False

    def update(self, done, counts, running):
        if not self.fired and any((v.iteration or 0) >= 1 for v in running):
            self.fired = True
            raise KeyboardInterrupt


def test_a_real_interrupted_trial_resumes_from_its_checkpoint(tmp_path):
    """Ctrl-C: the real trainer checkpoints on SIGTERM; --resume restarts the same job from that checkpoint.
    (That finished trials are never redone is covered with the fake trainer in tests/unit.)"""
    options = LocalOptions(max_jobs=1, max_parallel_jobs=1, budget_steps=3 * STEPS_PER_ITERATION)
    request, experiment = prepare_request(DEFAULT_PAYLOAD_PATH.read_bytes(), options, execution_id="it-resume")
    run = tmp_path / "run"
    first = Sweep.create(run, request, experiment, ui=InterruptAfterFirstIteration(), poll_interval=0.2).run()
    assert first.status == "Stopped"
    (stopped,) = first.records
    assert stopped.stop_reason == STOP_INTERRUPTED
    assert stopped.exit_code == 143, "the trainer checkpointed and exited on SIGTERM"
    assert json.loads((run / "summary.json").read_text())["local"]["resumable"] is True

    second = Sweep.open(run, poll_interval=0.2).run()
    assert second.status == "Completed"
    (resumed,) = second.records
    assert resumed.name == stopped.name
    assert resumed.attempts == 2
    assert resumed.status == "Completed"
    log = (run / "trials" / resumed.name / "logs/train.log").read_text()
    assert "resumed from" in log.split("attempt 2")[1]
    iterations = metrics.parse_metric_lines(log.splitlines(), metrics.metric_definitions())["training_iteration"]
    assert iterations[-1] == 3.0, "iterations continue across the restart instead of starting over"
    assert len(iterations) == len(set(iterations)), "no iteration was trained twice"
    assert Path(json.loads((run / "summary.json").read_text())["local"]["run_dir"]) == run.resolve()
