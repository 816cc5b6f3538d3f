"""The committed RLlib key catalog equals one generated now from the trainer and the installed Ray.

This fails when RLlib is upgraded (or the trainer's key routing changes) without `make key-catalog`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from rltune_trainer import key_catalog
from rltune_trainer.config_builder import BadInput, build_config
from rltune_trainer.spec import parse

from rltune.payload import rllib_config_keys

ROOT = Path(__file__).resolve().parents[2]


def test_committed_catalog_equals_a_fresh_one() -> None:
    committed = (ROOT / "rltune" / "rllib_config_keys.json").read_text()
    fresh = key_catalog.render(key_catalog.catalog())
    assert committed == fresh, "rltune/rllib_config_keys.json is stale: run `make key-catalog` and commit it"


def test_the_trainer_and_the_catalog_agree_on_sample_keys() -> None:
    """Spot-check the probe against the trainer's real path: catalog keys build, a non-catalog key does not."""
    catalog = rllib_config_keys()["algorithms"]["PPO"]
    assert "num_epochs" in catalog["rl.training.config."]
    assert "lrr" not in catalog["rl.training.config."]
    build_config(parse({"rl.training.config.num_epochs": "3", "rl.training.config.num_sgd_iter": "3",
                        "rl.env_runners.num_envs_per_env_runner": "2", "rl.rl_module.fcnet_hiddens": "[16]"}))
    with pytest.raises(BadInput, match="lrr"):
        build_config(parse({"rl.training.config.lrr": "0.1"}))
