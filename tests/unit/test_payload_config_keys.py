"""RLlib config-key typos are payload errors: the validator checks keys against the committed catalog
(rltune/rllib_config_keys.json, generated from the trainer), so no training job is paid for to find them."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rltune import hyperparameters as hp
from rltune.errors import PayloadError
from rltune.payload import CONFIG_KEY_NAMESPACES, rllib_config_keys, validate_payload

ROOT = Path(__file__).resolve().parents[2]
LR_RANGE = {"min_value": 1e-5, "max_value": 1e-3}


def payload(ranges: dict[str, Any] | None = None, **static: Any) -> dict[str, Any]:
    return {"hyperparameter_ranges": ranges or {"rl.training.config.lr": LR_RANGE}, "static_hyperparameters": static,
            "max_jobs": 2, "max_parallel_jobs": 1}


def issues(raw: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(PayloadError) as info:
        validate_payload(raw)
    return {issue.path: issue.message for issue in info.value.issues}


def test_a_static_typo_is_rejected_with_did_you_mean_naming_the_algorithm() -> None:
    found = issues(payload(**{"rl.training.config.lrr": 0.001}))
    message = found["static_hyperparameters.rl.training.config.lrr"]
    assert "'lrr'" in message
    assert "PPO" in message  # the default algorithm
    assert "did you mean 'rl.training.config.lr'? Rename it" in message
    assert f"RLlib {rllib_config_keys()['ray_version']}" in message
    assert len(found) == 1


def test_a_tunable_typo_is_rejected_for_the_static_algorithm() -> None:
    found = issues(payload({"rl.training.config.gama": [0.9, 0.99]}, **{"rl.algorithm": "DQN"}))
    message = found["hyperparameter_ranges.rl.training.config.gama"]
    assert "DQN" in message
    assert "did you mean 'rl.training.config.gamma'?" in message


@pytest.mark.parametrize(("key", "guess"), [
    ("rl.env_runners.num_env_runner", "rl.env_runners.num_env_runners"),
    ("rl.learners.num_learner", "rl.learners.num_learners"),
    ("rl.reporting.metrics_num_episodes_for_smoothin", "rl.reporting.metrics_num_episodes_for_smoothing"),
    ("rl.rl_module.fcnet_hidden", "rl.rl_module.fcnet_hiddens"),
    ("rl.rl_module.fcnet_hidden.x", "rl.rl_module.fcnet_hiddens"),  # only the first segment names the setting
    ("rl.training.config.num_sgd", "rl.training.config.num_epochs"),  # close to an old name: its new name
])
def test_every_open_rllib_namespace_is_checked(key: str, guess: str) -> None:
    message = issues(payload(**{key: 1}))[f"static_hyperparameters.{key}"]
    assert f"did you mean {guess!r}?" in message


def test_a_key_in_the_wrong_namespace_names_the_right_one() -> None:
    found = issues(payload(**{"rl.env_runners.lr": 0.1, "rl.env_runners.num_learners": 1}))
    assert "use 'rl.training.config.lr'" in found["static_hyperparameters.rl.env_runners.lr"]
    assert "use 'rl.learners.num_learners'" in found["static_hyperparameters.rl.env_runners.num_learners"]


def test_a_key_of_another_algorithm_says_which_accept_it() -> None:
    message = issues(payload(**{"rl.algorithm": "DQN", "rl.training.config.clip_param": 0.2}))[
        "static_hyperparameters.rl.training.config.clip_param"]
    assert "DQN" in message
    assert "only PPO, APPO accept it" in message


def test_keys_with_their_own_hyperparameter_point_to_it() -> None:
    found = issues(payload(**{"rl.training.config.env": "CartPole-v1"}))
    message = found["static_hyperparameters.rl.training.config.env"]
    assert "set it with rl.env instead" in message


def test_a_tuned_algorithm_needs_keys_every_tuned_algorithm_accepts() -> None:
    ranges = {"rl.algorithm": ["PPO", "DQN"], "rl.training.config.clip_param": [0.1, 0.2]}
    message = issues(payload(ranges))["hyperparameter_ranges.rl.training.config.clip_param"]
    assert "DQN" in message
    validate_payload(payload({"rl.algorithm": ["PPO", "APPO"], "rl.training.config.clip_param": [0.1, 0.2]}))


def test_renamed_old_stack_names_model_dicts_and_env_config_are_accepted() -> None:
    validate_payload(payload(**{
        "rl.training.config.num_sgd_iter": 4,  # the trainer translates it to num_epochs, with a warning
        "rl.training.config.lambda": 0.95,
        "rl.env_runners.num_rollout_workers": 0,
        "rl.training.config.model.fcnet_hiddens": [32],  # moved to rl.rl_module.* by the trainer
        "rl.training.config.vf_share_layers": True,
        "rl.env_config.anything_at_all": 1,  # custom environments take any config
        "rl.env_config.nested.key": "x",
    }))
    renamed = rllib_config_keys()["renamed"]
    assert renamed["num_sgd_iter"] == "num_epochs"


def test_an_unknown_algorithm_is_reported_once_not_per_key() -> None:
    found = issues(payload(**{"rl.algorithm": "PPOO", "rl.training.config.lrr": 1}))
    assert list(found) == ["static_hyperparameters.rl.algorithm"]


def test_every_example_payload_is_still_valid() -> None:
    examples = [p for p in sorted((ROOT / "examples").glob("*.json")) if p.name != "payload.schema.json"]
    assert examples
    for path in examples:
        validate_payload(path.read_bytes())


def test_the_catalog_covers_every_algorithm_and_namespace() -> None:
    catalog = rllib_config_keys()
    assert set(catalog["algorithms"]) == set(hp.ALGORITHMS)
    assert set(CONFIG_KEY_NAMESPACES) == set(hp.NAMESPACES) - {"rl.env_config.", *hp.CLOSED_NAMESPACES}
    for algorithm, namespaces in catalog["algorithms"].items():
        assert set(namespaces) == set(CONFIG_KEY_NAMESPACES), algorithm
        assert all(keys == sorted(keys) and keys for keys in namespaces.values()), algorithm
    assert rllib_config_keys() is catalog  # loaded once


def test_payload_module_loads_the_catalog_without_ray_or_the_cli_stack() -> None:
    code = ("import sys, rltune.payload as p; p.rllib_config_keys();"
            "print([m for m in ('ray', 'typer', 'rich', 'boto3') if m in sys.modules])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert ast.literal_eval(result.stdout.strip()) == []


def test_the_catalog_is_package_data() -> None:
    import tomllib

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "rllib_config_keys.json" in data["rltune"]
    json.loads((ROOT / "rltune" / "rllib_config_keys.json").read_text())
