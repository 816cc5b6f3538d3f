"""The local sweep against a fake `train` that honours the trainer contract (fast; the real trainer is in
tests/integration/test_local_end_to_end.py).

The fake's objective is `quality * iteration`; see tests/unit/local_fake_trainer.py for its knobs.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rltune.cli import app
from rltune.environments import DeploymentTarget, EnvironmentConfig
from rltune.errors import PayloadError
from rltune.local import LocalOptions, prepare_request, run_local
from rltune.local.sweep import Sweep, cpu_share
from rltune.local.trial import STOP_INTERRUPTED, STOP_MAX_RESOURCE, STOP_PRUNED, STOP_TUNING_DONE
from rltune.local.ui import SilentUI
from rltune.payload import validate_payload
from rltune.request import build_tuning_request

FAKE = Path(__file__).with_name("local_fake_trainer.py")
TRAINER = [sys.executable, str(FAKE)]
FAST = {"poll_interval": 0.05, "stop_grace_s": 20.0, "cores": 2}


def payload(**overrides):
    data = {
        "experiment": "fake",
        "hyperparameter_ranges": {"rl.env_config.quality": {"min_value": 0.5, "max_value": 10.0}},
        "static_hyperparameters": {"rl.env_config.iterations": 4, "rl.env_config.sleep": 0.05},
        "max_jobs": 3,
        "max_parallel_jobs": 2,
        "random_seed": 11,
    }
    data.update(overrides)
    return data


def request_for(data, **options):
    request, experiment = prepare_request(data, LocalOptions(**options), execution_id="test-exec")
    return request, experiment


def sweep(tmp_path, data, ui=None, **options):
    request, experiment = request_for(data, **options)
    return Sweep.create(tmp_path / "run", request, experiment, trainer=TRAINER, ui=ui, **FAST)


def starts(trial_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (trial_dir / "output/data/starts.log").read_text().splitlines()]


def test_sweep_runs_real_jobs_in_opt_ml_dirs_and_writes_the_cloud_record(tmp_path):
    result = sweep(tmp_path, payload()).run()
    run = tmp_path / "run"
    assert result.status == "Completed"
    assert len(result.records) == 3
    assert all(r.status == "Completed" for r in result.records)

    # Each trial is a SageMaker-shaped training job: named like a child job, strings-only hyperparameters.
    for record in result.records:
        trial_dir = run / "trials" / record.name
        assert record.name.startswith(result.spec.tuning_job_name + f"-{record.index:03d}-")
        hps = json.loads((trial_dir / "input/config/hyperparameters.json").read_text())
        assert hps["_tuning_objective_metric"] == "episode_reward_mean"
        assert hps["rl.env_config.quality"] == record.tuned["rl.env_config.quality"]
        assert hps["rl.env_config.iterations"] == "4"
        assert all(isinstance(v, str) for v in hps.values())
        (start,) = starts(trial_dir)
        assert start["job"] == record.name
        assert start["cpus"] == str(cpu_share(2, cores=2)) == "1"
        assert (trial_dir / "model/policy.json").exists()
        assert (trial_dir / "logs/train.log").exists()
        # The objective is the last value the job printed: quality * 4 iterations.
        assert record.objective == pytest.approx(float(record.tuned["rl.env_config.quality"]) * 4)
        assert record.objective_history == pytest.approx([record.objective / 4 * i for i in range(1, 5)])

    summary = json.loads((run / "summary.json").read_text())
    best = max(result.records, key=lambda r: r.objective)
    assert summary["status"] == "Completed"
    assert summary["best_training_job"]["name"] == best.name == result.best.name
    assert summary["objective"] == {"name": "episode_reward_mean", "type": "Maximize", "value": best.objective}
    assert summary["best_training_job"]["tuned_hyperparameters"] == best.tuned
    assert summary["best_training_job"]["model_artifacts"] == (run / "trials" / best.name / "model").resolve().as_uri()
    assert summary["counts"]["completed"] == 3
    assert [j["objective_value"] for j in summary["top_jobs"]] == sorted(
        (r.objective for r in result.records), reverse=True)
    assert (run / "trials.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_parallel_trials_never_share_a_checkpoint_directory(tmp_path):
    data = payload(max_jobs=2, static_hyperparameters={"rl.env_config.iterations": 6,
                                                        "rl.env_config.sleep": 0.1})
    result = sweep(tmp_path, data).run()
    first, second = result.records
    assert datetime.fromisoformat(first.start_time) < datetime.fromisoformat(second.end_time)
    assert datetime.fromisoformat(second.start_time) < datetime.fromisoformat(first.end_time), "ran in parallel"
    dirs = {starts(tmp_path / "run/trials" / r.name)[0]["checkpoint_dir"] for r in result.records}
    assert len(dirs) == 2
    for record in result.records:
        state = json.loads((tmp_path / "run/trials" / record.name / "checkpoints/state.json").read_text())
        assert state["job"] == record.name


def test_failure_file_and_non_zero_exit_fail_the_job_with_the_reason(tmp_path):
    data = payload(
        strategy="Grid",
        max_jobs=None,
        hyperparameter_ranges={"rl.env_config.fail_at": ["0", "2"], "rl.env_config.crash_at": ["0", "3"]},
    )
    data.pop("max_jobs")
    result = sweep(tmp_path, data).run()
    assert len(result.records) == 4, "Grid runs every combination"
    by_case = {(r.tuned["rl.env_config.fail_at"], r.tuned["rl.env_config.crash_at"]): r
               for r in result.records}
    assert by_case[("0", "0")].status == "Completed"
    failed = by_case[("2", "0")]
    assert failed.status == "Failed"
    assert failed.failure_reason == "AlgorithmError: ValueError: diverged at iteration 2"
    crashed = by_case[("0", "3")]
    assert crashed.status == "Failed"
    assert "exit code 3" in crashed.failure_reason
    assert "segfault-ish crash" in crashed.failure_reason
    assert crashed.objective_status == "Failed"
    assert result.best.name == by_case[("0", "0")].name
    summary = json.loads((tmp_path / "run/summary.json").read_text())
    assert summary["counts"]["failed"] == 3


def test_early_stopping_auto_prunes_a_bad_trial_with_sigterm_keeping_its_checkpoint_and_model(tmp_path):
    # Sequential Grid; RandomSeed fixes the order so the weak configuration runs after two good ones.
    data = payload(
        strategy="Grid", early_stopping="Auto", max_parallel_jobs=1, random_seed=3,
        hyperparameter_ranges={"rl.env_config.quality": ["10", "9", "0.5"]},
        static_hyperparameters={"rl.env_config.iterations": 20, "rl.env_config.sleep": 0.1},
    )
    data.pop("max_jobs")
    result = sweep(tmp_path, data).run()
    order = [r.tuned["rl.env_config.quality"] for r in sorted(result.records, key=lambda r: r.index)]
    assert order[-1] == "0.5", f"test premise: the weak trial runs last (got {order})"
    bad = result.records[-1]
    assert bad.pruned
    assert bad.stop_reason == STOP_PRUNED
    assert bad.status == "Stopped"
    assert len(bad.objective_history) < 20
    trial_dir = tmp_path / "run/trials" / bad.name
    assert "got SIGTERM" in (trial_dir / "logs/train.log").read_text()
    assert json.loads((trial_dir / "checkpoints/state.json").read_text())["iteration"] >= 1
    assert (trial_dir / "model/policy.json").exists()
    assert all(not r.pruned for r in result.records[:-1])


def test_hyperband_stops_jobs_at_max_resource(tmp_path):
    data = payload(strategy="Hyperband", hyperband={"min_resource": 1, "max_resource": 3}, max_jobs=2,
                   static_hyperparameters={"rl.env_config.iterations": 30, "rl.env_config.sleep": 0.1})
    result = sweep(tmp_path, data).run()
    for record in result.records:
        assert record.stop_reason in (STOP_MAX_RESOURCE, STOP_PRUNED)
        assert len(record.objective_history) <= 5  # 3 + what arrives before SIGTERM lands
    assert any(r.stop_reason == STOP_MAX_RESOURCE and r.status == "Completed" for r in result.records)


def test_a_job_over_its_max_runtime_is_stopped_like_sagemaker_does(tmp_path):
    request, experiment = request_for(payload(max_jobs=1, max_parallel_jobs=1, static_hyperparameters={
        "rl.env_config.iterations": 100, "rl.env_config.sleep": 0.1}))
    request["TrainingJobDefinition"]["StoppingCondition"]["MaxRuntimeInSeconds"] = 1  # SageMaker's floor is 60
    (record,) = Sweep.create(tmp_path / "run", request, experiment, trainer=TRAINER, **FAST).run().records
    assert record.status == "Stopped"
    assert record.secondary_status == "MaxRuntimeExceeded"
    assert record.objective is not None, "a stopped job keeps its last objective"
    assert (tmp_path / "run/trials" / record.name / "model/policy.json").exists()


def test_docker_mode_mounts_the_trial_as_opt_ml(tmp_path):
    from rltune.local.trial import docker_command, trial_environment

    env = trial_environment({}, "job-001-abc", tmp_path, 1, {"RLTUNE_EXPERIMENT": "x"})
    command = docker_command("rltune-training:latest", tmp_path, env, 1, ["RLTUNE_EXPERIMENT"])
    assert command[:2] == ["docker", "run"]
    assert f"{tmp_path.resolve()}:/opt/ml" in command
    assert "TRAINING_JOB_NAME=job-001-abc" in command
    assert "RLTUNE_EXPERIMENT=x" in command
    assert not any(c.startswith("RLTUNE_OPT_ML") for c in command), "inside the image /opt/ml is the real path"
    assert command[-2:] == ["rltune-training:latest", "train"]


def test_target_objective_completes_the_tuning_job_and_stops_running_jobs(tmp_path):
    data = payload(strategy="Grid", completion_criteria={"target_objective_value": 50.0},
                   hyperparameter_ranges={"rl.env_config.sleep": ["0.02", "0.5"]},
                   static_hyperparameters={"rl.env_config.iterations": 10, "rl.env_config.quality": 10})
    data.pop("max_jobs")
    result = sweep(tmp_path, data).run()
    assert result.status == "Completed"
    assert "target objective 50.0 reached" in result.reason
    fast, slow = sorted(result.records, key=lambda r: float(r.tuned["rl.env_config.sleep"]))
    assert fast.status == "Completed"
    assert fast.objective == 100.0
    assert slow.stop_reason == STOP_TUNING_DONE
    assert slow.status == "Stopped"
    assert len(slow.objective_history) < 10


class InterruptOnce(SilentUI):
    """A progress display that presses Ctrl-C once a trial has finished and another has reported progress."""

    fired = False

    def update(self, done, counts, running):
        # Mid-run only: a trial at its last iterations could finish on its own before the SIGTERM lands.
        if not self.fired and done >= 1 and any(v.iteration and v.iteration <= 4 for v in running):
            self.fired = True
            raise KeyboardInterrupt


def test_interrupted_sweep_resumes_without_redoing_finished_trials(tmp_path):
    data = payload(max_jobs=3, random_seed=5, static_hyperparameters={"rl.env_config.iterations": 8,
                                                                       "rl.env_config.sleep": 0.15})
    first = sweep(tmp_path, data, ui=InterruptOnce()).run()
    assert first.status == "Stopped"
    finished = [r for r in first.records if r.finished]
    interrupted = [r for r in first.records if r.stop_reason == STOP_INTERRUPTED]
    assert finished
    assert any(r.objective_history for r in interrupted), "Ctrl-C came while a trial had made progress"
    summary = json.loads((tmp_path / "run/summary.json").read_text())
    assert summary["status"] == "Stopped"
    assert summary["local"]["resumable"] is True

    second = Sweep.open(tmp_path / "run", **FAST).run()
    assert second.status == "Completed"
    assert len(second.records) == 3
    assert all(r.status == "Completed" for r in second.records)
    for record in finished:
        assert len(starts(tmp_path / "run/trials" / record.name)) == 1, "finished trials are not redone"
    for record in interrupted:
        resumed = next(r for r in second.records if r.name == record.name)
        assert resumed.attempts == 2
        assert resumed.tuned == record.tuned
        log = (tmp_path / "run/trials" / record.name / "logs/train.log").read_text()
        restart = log.split("attempt 2")[1]
        if record.objective_history:  # it had checkpointed; a job stopped before its first iteration starts over
            assert "starting at iteration 0" not in restart, "the interrupted trial resumed from its checkpoint"
        assert resumed.objective_history[-1] == pytest.approx(8 * float(record.tuned["rl.env_config.quality"]))


def test_an_interrupted_grid_resumes_covering_every_combination_once(tmp_path):
    data = payload(strategy="Grid", hyperparameter_ranges={"rl.env_config.quality": ["1", "2", "3", "4", "5"]},
                   static_hyperparameters={"rl.env_config.iterations": 6, "rl.env_config.sleep": 0.1})
    data.pop("max_jobs")
    first = sweep(tmp_path, data, ui=InterruptOnce()).run()
    assert first.status == "Stopped"
    assert len(first.records) < 5
    second = Sweep.open(tmp_path / "run", **FAST).run()
    values = sorted(r.tuned["rl.env_config.quality"] for r in second.records)
    assert values == ["1", "2", "3", "4", "5"]
    assert all(r.status == "Completed" for r in second.records)


def test_a_bad_payload_fails_before_any_trial_starts_with_the_validators_messages(tmp_path):
    bad = payload(max_jobs=0, hyperparameter_ranges={"rl.trianing.config.lr": {"min_value": 1, "max_value": 0.1}})
    with pytest.raises(PayloadError) as raised:
        run_local(bad, LocalOptions(workdir=tmp_path / "run", trainer=TRAINER))
    assert not (tmp_path / "run").exists()
    paths = {issue.path for issue in raised.value.issues}
    assert "max_jobs" in paths
    assert any("rl.trianing.config.lr" in p for p in paths)

    payload_file = tmp_path / "bad.json"
    payload_file.write_text(json.dumps(bad))
    result = CliRunner().invoke(app, ["local", str(payload_file), "--workdir", str(tmp_path / "cli-run"),
                                      "--trainer", " ".join(TRAINER), "--no-live"])
    assert result.exit_code == 2, result.output
    assert "max_jobs" in result.output
    assert "rl.trianing.config.lr" in result.output
    assert "Nothing ran" in result.output
    assert not (tmp_path / "cli-run").exists()


def test_cli_runs_caps_and_reports_the_best(tmp_path):
    payload_file = tmp_path / "p.json"
    payload_file.write_text(json.dumps(payload(max_jobs=5)))
    result = CliRunner().invoke(app, [
        "local", str(payload_file), "--workdir", str(tmp_path / "run"), "--trainer", " ".join(TRAINER),
        "--max-jobs", "2", "--max-parallel-jobs", "1", "--budget-steps", "5000", "--no-live"])
    assert result.exit_code == 0, result.output
    assert "best:" in result.output
    assert "model:" in result.output
    trials = sorted((tmp_path / "run/trials").iterdir())
    assert len(trials) == 2
    hps = json.loads((trials[0] / "input/config/hyperparameters.json").read_text())
    assert hps["rl.stop.num_env_steps_sampled_lifetime"] == "5000"
    run_state = json.loads((tmp_path / "run/run.json").read_text())
    assert run_state["request"]["HyperParameterTuningJobConfig"]["ResourceLimits"]["MaxParallelTrainingJobs"] == 1

    over = CliRunner().invoke(app, ["local", str(payload_file), "--workdir", str(tmp_path / "r2"),
                                    "--max-parallel-jobs", "99", "--no-live"])
    assert over.exit_code == 2
    assert "--max-parallel-jobs" in over.output


def test_request_builder_output_is_what_the_sweep_runs(tmp_path):
    """The local backend consumes the cloud request: same name, ranges, metric definitions."""
    config = EnvironmentConfig(name="local")
    validated = validate_payload(payload(), config.guardrails, "local")
    cloud = build_tuning_request(validated, DeploymentTarget.placeholder(config), "test-exec")
    local, _ = request_for(payload())
    assert local == cloud


def test_resume_refuses_a_directory_that_is_not_a_run_and_conflicting_options(tmp_path):
    runner = CliRunner()
    not_a_run = runner.invoke(app, ["local", "--resume", str(tmp_path), "--no-live"])
    assert not_a_run.exit_code == 2
    assert "is not a local tuning run" in not_a_run.output
    both = runner.invoke(app, ["local", "p.json", "--resume", str(tmp_path), "--no-live"])
    assert both.exit_code == 2
    assert "--resume continues an existing run" in both.output
    capped = runner.invoke(app, ["local", "--resume", str(tmp_path), "--max-jobs", "3", "--no-live"])
    assert capped.exit_code == 2
    assert "keeps the run's own limits" in capped.output


def test_after_a_crash_resume_stops_orphaned_jobs_and_continues(tmp_path):
    """rltune killed with SIGKILL leaves its jobs running; --resume stops them (they checkpoint) and resumes."""
    import os
    import signal
    import subprocess
    import time

    data = payload(max_jobs=2, static_hyperparameters={"rl.env_config.iterations": 40,
                                                        "rl.env_config.sleep": 0.1})
    request, experiment = request_for(data)
    run = tmp_path / "run"
    Sweep.create(run, request, experiment, trainer=TRAINER)
    driver = subprocess.Popen([sys.executable, "-c", (
        "import sys; from pathlib import Path; from rltune.local.sweep import Sweep; "
        f"Sweep.open(Path({str(run)!r}), poll_interval=0.05).run()")], cwd=Path(__file__).parents[2])
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            jobs = [json.loads(p.read_text()) for p in run.glob("trials/*/job.json")]
            if len(jobs) == 2 and all("[rltune]" in (run / "trials" / j["name"] / "logs/train.log").read_text()
                                      for j in jobs):
                break
            time.sleep(0.1)
        else:
            pytest.fail("the jobs never started")
        locked = Sweep.open(run, **FAST)
        with pytest.raises(FileExistsError, match="another rltune process"):
            locked.run()
    finally:
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
    pids = [json.loads(p.read_text())["pid"] for p in run.glob("trials/*/job.json")]
    assert all(Path(f"/proc/{pid}").exists() for pid in pids), "the jobs outlived the crashed driver"

    result = Sweep.open(run, **FAST).run()
    assert result.status == "Completed"
    assert not any(Path(f"/proc/{pid}").exists() and "local_fake_trainer" in Path(f"/proc/{pid}/cmdline").read_text()
                   for pid in pids)
    for record in result.records:
        log = (run / "trials" / record.name / "logs/train.log").read_text()
        assert "got SIGTERM" in log, "the orphan was stopped with SIGTERM, so it checkpointed"
        assert record.attempts == 2
        assert record.objective == pytest.approx(40 * float(record.tuned["rl.env_config.quality"]))


def test_best_objective_not_improving_by_one_percent_completes_the_tuning_job(tmp_path):
    from rltune.local.trial import TrialRecord

    request, experiment = request_for(payload(max_jobs=10, completion_criteria={"max_jobs_not_improving": 3}))
    created = Sweep.create(tmp_path / "run", request, experiment, trainer=TRAINER, **FAST)

    def finish(objectives):
        created.records = {
            i: TrialRecord(index=i, name=f"job-{i}", tuned={}, values={}, status="Completed", objective=value,
                           end_time=f"2026-12-04T10:00:{i:02d}+00:00")
            for i, value in enumerate(objectives, start=1)
        }
        return created._completion_reason(elapsed=0.0)

    assert finish([10.0, 10.05, 9.0]) is None
    # 10.09 beats 10.0 but by less than 1%: the third job in a row that does not improve.
    assert "3 training jobs in a row" in finish([10.0, 10.05, 9.0, 10.09])
    assert finish([10.0, 10.05, 9.0, 10.2]) is None, "a 2% gain resets the count"


def test_more_parallel_jobs_than_cores_is_called_out(tmp_path):
    request, experiment = request_for(payload(max_parallel_jobs=2))
    crowded = Sweep.create(tmp_path / "a", request, experiment, trainer=TRAINER, cores=1)
    assert crowded.cpus == 1
    assert any("2 parallel training jobs on 1 core(s)" in note for note in crowded._not_emulated())
    roomy = Sweep.create(tmp_path / "b", request, experiment, trainer=TRAINER, cores=2)
    assert not any("core" in note for note in roomy._not_emulated())
