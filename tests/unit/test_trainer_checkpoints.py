"""Atomic, per-job, verified checkpoints: written with a fake saver, no Ray."""

from __future__ import annotations

import json

import pytest
from rltune_trainer.checkpoints import MARKER, TMP_PREFIX, CheckpointManager
from rltune_trainer.spec import CheckpointSettings


def fake_save(payload: str):
    def save(path):
        (path / "learner_group").mkdir(parents=True)
        (path / "rllib_checkpoint.json").write_text("{}")
        (path / "learner_group" / "state.pkl").write_text(payload)
    return save


def manager(root, job="job-a", hp_hash="aaaaaaaaaaaa", *, keep=2, clock=None, n=10, seconds=60.0):
    settings = CheckpointSettings(every_n_iterations=n, every_seconds=seconds, keep=keep)
    return CheckpointManager(root, job, hp_hash, settings, **({"clock": clock} if clock else {}))


def save(m, iteration, payload="state"):
    return m.save(fake_save(f"{payload}-{iteration}"), iteration=iteration,
                  num_env_steps_sampled_lifetime=iteration * 100.0, time_total_s=iteration * 1.5,
                  metrics={"training_iteration": float(iteration)})


def test_layout_marker_and_manifest(tmp_path):
    m = manager(tmp_path)
    path = save(m, 3)
    assert path == tmp_path / "job-a" / "aaaaaaaaaaaa" / "ckpt-000000003"
    marker = json.loads((path / MARKER).read_text())
    assert marker["training_job_name"] == "job-a"
    assert marker["hyperparameter_hash"] == "aaaaaaaaaaaa"
    assert marker["iteration"] == 3
    assert marker["num_env_steps_sampled_lifetime"] == 300.0
    assert marker["time_total_s"] == 4.5
    assert set(marker["files"]) == {"rllib_checkpoint.json", "learner_group/state.pkl"}
    assert not [p for p in path.parent.iterdir() if p.name.startswith(TMP_PREFIX)]


def test_keeps_the_last_k_and_resumes_newest_first(tmp_path):
    m = manager(tmp_path, keep=2)
    for iteration in (2, 4, 6):
        save(m, iteration)
    assert sorted(p.name for p in m.directory.iterdir()) == ["ckpt-000000004", "ckpt-000000006"]
    assert [c.iteration for c in m.candidates()] == [6, 4]


@pytest.mark.parametrize("damage", ["truncate", "same_size_garbage", "delete_file", "no_marker", "bad_marker"])
def test_a_corrupt_newest_checkpoint_falls_back_to_the_one_before(tmp_path, damage, caplog):
    m = manager(tmp_path)
    save(m, 4)
    newest = save(m, 6)
    state = newest / "learner_group" / "state.pkl"
    if damage == "truncate":
        state.write_text("st")
    elif damage == "same_size_garbage":
        state.write_text("X" * len(state.read_text()))
    elif damage == "delete_file":
        state.unlink()
    elif damage == "no_marker":
        (newest / MARKER).unlink()
    else:
        (newest / MARKER).write_text("{broken")
    with caplog.at_level("WARNING", logger="rltune.trainer"):
        found = [c.iteration for c in manager(tmp_path).candidates()]
    assert found == [4]
    assert "ckpt-000000006 is not usable" in caplog.text


def test_jobs_and_hyperparameters_never_share_checkpoints(tmp_path):
    save(manager(tmp_path, job="job-a"), 8)
    save(manager(tmp_path, job="job-a", hp_hash="bbbbbbbbbbbb"), 9)
    other = manager(tmp_path, job="job-b")
    assert list(other.candidates()) == []
    assert other.other_checkpoint_folders() == ["job-a/aaaaaaaaaaaa", "job-a/bbbbbbbbbbbb"]
    assert [c.iteration for c in manager(tmp_path, job="job-a").candidates()] == [8]


def test_a_copied_folder_with_a_foreign_marker_is_refused(tmp_path):
    import shutil

    source = save(manager(tmp_path, job="job-a"), 5)
    target = tmp_path / "job-b" / "aaaaaaaaaaaa" / source.name
    shutil.copytree(source, target)
    assert list(manager(tmp_path, job="job-b").candidates()) == []


def test_a_failed_save_leaves_no_partial_checkpoint(tmp_path):
    m = manager(tmp_path)
    save(m, 2)

    def broken(path):
        (path / "partial").mkdir(parents=True)
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        m.save(broken, iteration=4, num_env_steps_sampled_lifetime=1, time_total_s=1, metrics={})
    assert sorted(p.name for p in m.directory.iterdir()) == ["ckpt-000000002"]


def test_redoing_an_iteration_replaces_its_old_checkpoint(tmp_path):
    m = manager(tmp_path)
    path = save(m, 6, payload="old")
    (path / "learner_group" / "state.pkl").write_text("corrupted")
    save(m, 6, payload="new")
    assert (path / "learner_group" / "state.pkl").read_text() == "new-6"
    assert [c.iteration for c in m.candidates()] == [6]


def test_stale_temporaries_and_unfinished_checkpoints_are_pruned(tmp_path):
    m = manager(tmp_path)
    m.directory.mkdir(parents=True)
    (m.directory / f"{TMP_PREFIX}ckpt-000000009-123-abc").mkdir()
    (m.directory / "ckpt-000000010").mkdir()  # renamed but never got its marker
    save(m, 3)
    assert sorted(p.name for p in m.directory.iterdir()) == ["ckpt-000000003"]


def test_cadence_every_n_iterations_or_t_seconds_whichever_first(tmp_path):
    now = [0.0]
    m = manager(tmp_path, n=5, seconds=30.0, clock=lambda: now[0])
    assert not m.due(4)
    assert m.due(5)
    m.mark(5)
    now[0] = 29.0
    assert not m.due(6)
    now[0] = 31.0
    assert m.due(6)
    m.mark(6)
    assert not m.due(7)
    seconds_only = manager(tmp_path, n=0, seconds=30.0, clock=lambda: now[0])
    assert not seconds_only.due(1000)
