import pytest
from hypothesis import given
from hypothesis import strategies as st

from rltune import hyperparameters as hp

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=10,
)


@given(json_values)
def test_non_string_values_round_trip(value):
    assert hp.decode_value(hp.encode_value(value)) == value


def test_plain_strings_stay_strings():
    assert hp.decode_value(hp.encode_value("CartPole-v1")) == "CartPole-v1"
    assert hp.decode_value("my_pkg.envs:Grid") == "my_pkg.envs:Grid"


@pytest.mark.parametrize(
    "key", ["rl.algorithm", "rl.env", "rl.training.config.lr", "rl.rl_module.fcnet_hiddens", "rl.stop.time_total_s"]
)
def test_understood_keys(key):
    assert hp.key_problem(key) is None


@pytest.mark.parametrize(
    ("key", "hint"),
    [("lr", "does not understand"), ("rl.training.config.", "does not understand"), ("rl.stop.reward", "rl.stop.")],
)
def test_not_understood_keys_say_what_to_use(key, hint):
    assert hint in hp.key_problem(key)


def test_sagemaker_injected_keys():
    assert hp.is_sagemaker_injected("_tuning_objective_metric")
    assert hp.is_sagemaker_injected("sagemaker_estimator_module")
    assert not hp.is_sagemaker_injected("rl.env")
