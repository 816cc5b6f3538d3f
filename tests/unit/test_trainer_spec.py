"""hyperparameters.json -> TrainerSpec, and every kind of bad input rejected before Ray starts."""

from __future__ import annotations

import json
import time

import pytest
from rltune_trainer import EXIT_BAD_INPUT, main, spec
from rltune_trainer.config_builder import build_config
from rltune_trainer.paths import Paths, job_name
from rltune_trainer.runner import prepare

from rltune import hyperparameters as hp


def write_hps(root, hps):
    path = Paths(root).hyperparameters
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(hps) if not isinstance(hps, str) else hps)
    return Paths(root)


def test_values_decode_like_sagemaker_strings():
    parsed = spec.parse({
        "rl.training.config.lr": "0.001",
        "rl.training.config.use_kl_loss": "false",
        "rl.rl_module.fcnet_hiddens": "[64,64]",
        "rl.env_config.render_mode": "rgb_array",
        "rl.seed": "7",
        "rl.algorithm": "ppo",
        "rl.stop.episode_return_mean": "450",
        "rl.checkpoint.keep": "3",
        "_tuning_objective_metric": "episode_reward_mean",
        "sagemaker_estimator_class_name": '"Estimator"',
    })
    assert parsed.algorithm == "PPO"
    assert parsed.seed == 7
    assert parsed.sections["training"] == {"lr": 0.001, "use_kl_loss": False}
    assert parsed.sections["rl_module"] == {"fcnet_hiddens": [64, 64]}
    assert parsed.env_config == {"render_mode": "rgb_array"}
    assert parsed.stop == {"episode_return_mean": 450.0}
    assert parsed.checkpoint.keep == 3
    assert parsed.ignored_keys == ["_tuning_objective_metric", "sagemaker_estimator_class_name"]
    assert "_tuning_objective_metric" not in parsed.hyperparameters


def test_encoded_payload_values_round_trip():
    values = {"rl.training.config.lr": 0.0003, "rl.rl_module.fcnet_hiddens": [32], "rl.env": "CartPole-v1",
              "rl.training.config.use_gae": True}
    parsed = spec.parse({k: hp.encode_value(v) for k, v in values.items()})
    assert parsed.hyperparameters == values


def test_hash_depends_on_values_not_on_injected_keys():
    a = spec.parse({"rl.training.config.lr": "0.001"})
    b = spec.parse({"rl.training.config.lr": "0.001", "_tuning_objective_metric": "x"})
    c = spec.parse({"rl.training.config.lr": "0.002"})
    assert a.hp_hash == b.hp_hash != c.hp_hash
    assert len(a.hp_hash) == 12


def test_dotted_sub_keys_nest_like_the_sagemaker_launcher():
    parsed = spec.parse({"rl.env_config.physics.gravity": "9.8", "rl.env_config.physics.mass": "1"})
    assert parsed.env_config == {"physics": {"gravity": 9.8, "mass": 1}}


@pytest.mark.parametrize(
    ("hps", "expected"),
    [
        ({"rl.algorithm": "PP0"}, ["rl.algorithm", "did you mean 'PPO'"]),
        ({"rl.stop.training_iterations": "3"},
         ["rl.stop.training_iterations", "did you mean 'rl.stop.training_iteration'"]),
        ({"learning_rate": "0.1"}, ["'learning_rate'", "rl.training.config.<key>"]),
        ({"rl.stop.training_iteration": "2.5"}, ["rl.stop.training_iteration", "integer >= 1"]),
        ({"rl.stop.time_total_s": "soon"}, ["rl.stop.time_total_s", "finite number"]),
        ({"rl.seed": "-1"}, ["rl.seed", "integer >= 0"]),
        ({"rl.checkpoint.every_n_iterations": "0", "rl.checkpoint.every_seconds": "0"}, ["both 0"]),
        ({"rl.env": "42"}, ["rl.env", "gymnasium id"]),
    ],
)
def test_bad_keys_and_values_name_the_key_and_the_fix(hps, expected):
    with pytest.raises(spec.BadInput) as info:
        spec.parse(hps)
    for text in expected:
        assert text in str(info.value)


def test_every_problem_is_reported_at_once():
    with pytest.raises(spec.BadInput) as info:
        spec.parse({"rl.algorithm": "XYZ", "rl.stop.training_iteration": "0", "nonsense": "1"})
    assert len(info.value.issues) == 3


def test_job_name_is_a_safe_folder_name():
    assert job_name({}) == "local"
    assert job_name({"TRAINING_JOB_NAME": "tune-abc-001-1a2b3c4d"}) == "tune-abc-001-1a2b3c4d"
    assert "/" not in job_name({"TRAINING_JOB_NAME": "../../etc"})


# -- checks against RLlib's real config (imports RLlib, never starts Ray) ----------------------------------

@pytest.mark.parametrize(
    ("hps", "environ", "expected"),
    [
        ({"rl.training.config.lrr": "0.1"}, {}, ["rl.training.config.lrr", "did you mean 'lr'"]),
        ({"rl.training.config.lr": "fast"}, {}, ["rl.training.config.lr", '"fast" is not a valid value']),
        ({"rl.training.config.num_epochs": "2.5"}, {}, ["rl.training.config.num_epochs", "2.5"]),
        ({"rl.env_runners.num_env_runner": "1"}, {}, ["did you mean 'num_env_runners'"]),
        ({"rl.rl_module.fcnet_hidden": "[8]"}, {}, ["rl.rl_module.fcnet_hidden", "did you mean 'fcnet_hiddens'"]),
        ({"rl.training.config.learner_class": "x"}, {}, ["class or callable"]),
        ({"rl.training.config.env": "CartPole-v1"}, {}, ["set it with rl.env"]),
        ({"rl.env": "CartPol-v1"}, {}, ["rl.env", "did you mean 'CartPole-v1'"]),
        ({"rl.env": "no_such_module_xyz:Env"}, {}, ["rl.env", "cannot import module"]),
        ({"rl.env_config.gravity": "1"}, {}, ["rl.env_config", "gravity"]),
        ({"rl.algorithm": "SAC", "rl.env": "Pendulum-v1", "rl.training.config.lr": "0.1"}, {},
         ["RLlib rejected", "actor_lr"]),
        ({"rl.training.config.minibatch_size": "9000"}, {}, ["RLlib rejected", "minibatch_size"]),
        ({"rl.env_runners.num_env_runners": "4"}, {"SM_NUM_CPUS": "2"},
         ["needs 4 CPUs", "SM_NUM_CPUS=2", "num_env_runners"]),
        ({"rl.algorithm": "IMPALA", "rl.learners.num_learners": "1", "rl.env_runners.num_env_runners": "2"},
         {"SM_NUM_CPUS": "2"}, ["needs 3 CPUs", "would wait forever"]),
        ({"rl.learners.num_gpus_per_learner": "1"}, {"SM_NUM_CPUS": "2", "SM_NUM_GPUS": "0"}, ["needs 1 GPUs"]),
        # Ray gets whole CPUs (1 of 1.5): 3 runners x 0.5 CPU would wait forever.
        ({"rl.env_runners.num_env_runners": "3", "rl.env_runners.num_cpus_per_env_runner": "0.5"},
         {"SM_NUM_CPUS": "1.5"}, ["needs 1.5 CPUs", "only 1 are available"]),
        ({}, {"SM_NUM_CPUS": "two"}, ["SM_NUM_CPUS must be a number", "'two'"]),
        ({"rl.training.config.train_batch_size": "1000", "rl.training.config.train_batch_size_per_learner": "500"},
         {}, ["rl.training.config.train_batch_size: would be ignored", "keep one"]),
        ("{not json", {}, ["not a readable JSON object"]),
        ('["a"]', {}, ["expected a JSON object"]),
    ],
)
def test_bad_input_fails_before_ray_with_a_clear_message(tmp_path, hps, environ, expected):
    paths = write_hps(tmp_path, hps)
    with pytest.raises(spec.BadInput) as info:
        prepare(paths, {"SM_NUM_CPUS": "2", "SM_NUM_GPUS": "0", **environ})
    for text in expected:
        assert text in str(info.value), str(info.value)


def test_main_writes_the_failure_file_and_exits_2_without_starting_ray(tmp_path, monkeypatch):
    import ray

    write_hps(tmp_path, {"rl.training.config.lrr": "0.1", "rl.algorithm": "PPO"})
    monkeypatch.setenv("RLTUNE_OPT_ML", str(tmp_path))
    started = time.monotonic()
    code = main.main([], {"RLTUNE_OPT_ML": str(tmp_path), "SM_NUM_CPUS": "1"})
    assert code == EXIT_BAD_INPUT == 2
    assert time.monotonic() - started < 20
    assert not ray.is_initialized()
    failure = (tmp_path / "output" / "failure").read_text()
    assert failure.startswith("Bad hyperparameters (1 problem)")
    assert "rl.training.config.lrr" in failure
    assert "did you mean 'lr'" in failure
    assert len(failure) <= main.FAILURE_LIMIT + 1


def test_old_stack_names_are_translated_with_a_warning():
    built = build_config(spec.parse({
        "rl.training.config.sgd_minibatch_size": "64",
        "rl.training.config.num_sgd_iter": "3",
        "rl.training.config.num_rollout_workers": "0",
        "rl.training.config.model": '{"fcnet_hiddens": [16]}',
    }))
    assert built.config.minibatch_size == 64
    assert built.config.num_epochs == 3
    assert built.config.num_env_runners == 0
    assert built.config.model_config["fcnet_hiddens"] == [16]
    text = " ".join(built.warnings)
    for old in ("sgd_minibatch_size", "num_sgd_iter", "num_rollout_workers", "model"):
        assert old in text


def test_conflicting_spellings_of_one_setting_are_rejected():
    with pytest.raises(spec.BadInput, match="conflicts with"):
        build_config(spec.parse({"rl.training.config.num_sgd_iter": "3", "rl.training.config.num_epochs": "4"}))


def test_tuned_values_override_defaults_and_reach_the_config():
    built = build_config(spec.parse({"rl.training.config.lr": "0.00123", "rl.env_runners.num_envs_per_env_runner": "2",
                                     "rl.rl_module.fcnet_hiddens": "[16,16]", "rl.training.config.num_epochs": "2.0"}))
    config = built.config
    assert config.lr == 0.00123
    assert config.num_envs_per_env_runner == 2
    assert config.num_epochs == 2
    assert isinstance(config.num_epochs, int)
    assert config.model_config["fcnet_hiddens"] == [16, 16]
    sources = {o["key"]: o["source"] for o in built.overrides()}
    assert sources["lr"] == "rl.training.config.lr"
    assert sources["num_env_runners"] == "rltune default"


def test_a_tuned_train_batch_size_is_not_shadowed_by_the_per_learner_default():
    built = build_config(spec.parse({"rl.training.config.train_batch_size": "1000"}))
    assert built.config.total_train_batch_size == 1000
    assert "train_batch_size_per_learner" not in {o["key"] for o in built.overrides()}


def test_defaults_are_the_fast_cartpole_config():
    built = build_config(spec.parse({}))
    config = built.config
    assert (config.env, config.num_env_runners, config.num_envs_per_env_runner) == ("CartPole-v1", 0, 8)
    assert (config.lr, config.num_epochs, config.vf_loss_coeff) == (0.0005, 6, 0.01)
    assert config.train_batch_size_per_learner == 2000
    assert config.model_config["fcnet_hiddens"] == [32]
    assert built.stop == {"episode_return_mean": 450.0, "num_env_steps_sampled_lifetime": 500_000}


@pytest.mark.parametrize("algorithm", ["PPO", "APPO", "IMPALA", "DQN", "SAC"])
def test_every_algorithm_builds_a_config_that_fits_two_cpus(tmp_path, algorithm):
    env = "Pendulum-v1" if algorithm == "SAC" else "CartPole-v1"
    paths = write_hps(tmp_path, {"rl.algorithm": algorithm, "rl.env": env})
    prepared = prepare(paths, {"SM_NUM_CPUS": "2", "SM_NUM_GPUS": "0"})
    assert prepared.built.config.algo_class.__name__ == algorithm
    assert prepared.resources["needed"]["actor_cpus"] <= 2


def test_custom_env_class_by_module_path(tmp_path, monkeypatch):
    module = tmp_path / "my_envs_for_rltune.py"
    module.write_text(
        "import gymnasium as gym\n"
        "class Corridor(gym.Env):\n"
        "    def __init__(self, config):\n"
        "        self.length = config.get('length', 5)\n"
        "        self.observation_space = gym.spaces.Box(0.0, 100.0, (1,))\n"
        "        self.action_space = gym.spaces.Discrete(2)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    built = build_config(spec.parse({"rl.env": "my_envs_for_rltune:Corridor", "rl.env_config.length": "9"}))
    assert built.config.env.__name__ == "Corridor"
    assert built.config.env_config == {"length": 9}
    with pytest.raises(spec.BadInput, match="did you mean 'Corridor'"):
        build_config(spec.parse({"rl.env": "my_envs_for_rltune:Coridor"}))
