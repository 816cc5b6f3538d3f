import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rltune import metrics


def test_definitions_fit_sagemaker_limits():
    definitions = metrics.metric_definitions()
    assert 0 < len(definitions) <= metrics.MAX_METRIC_DEFINITIONS
    assert len({d["Name"] for d in definitions}) == len(definitions)
    for d in definitions:
        assert len(d["Regex"]) <= metrics.MAX_REGEX_LENGTH
        assert re.compile(d["Regex"]).groups >= 1


def test_seed_objective_is_an_alias_of_the_new_stack_return():
    alias = metrics.METRICS_BY_NAME["episode_reward_mean"]
    assert alias.result_key == "env_runners/episode_return_mean"
    assert metrics.DEFAULT_OBJECTIVE == "episode_reward_mean"


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_printed_line_is_captured_exactly(value):
    line = metrics.format_metric_line("episode_reward_mean", value)
    found = metrics.parse_metric_lines([f"2026-12-04T10:00:00 algo-1 {line}"], metrics.metric_definitions())
    assert found == {"episode_reward_mean": [value]}


def test_regex_is_anchored_against_longer_names():
    line = metrics.format_metric_line("episode_reward_mean_foo", 1.0)
    found = metrics.parse_metric_lines([line], metrics.metric_definitions(["episode_reward_mean"]))
    assert found == {}


def test_last_value_wins_like_sagemaker():
    lines = [metrics.format_metric_line("episode_return_mean", v) for v in (1.0, 20.5, 7.25)]
    found = metrics.parse_metric_lines(lines, metrics.metric_definitions())
    assert found["episode_return_mean"][-1] == 7.25


def test_non_finite_values_are_never_printed():
    with pytest.raises(ValueError, match="not finite"):
        metrics.format_metric_line("episode_return_mean", math.nan)


def test_extract_skips_missing_and_nan_and_casts_numpy():
    import numpy as np

    result = {
        "env_runners": {"episode_return_mean": np.float64(12.5), "episode_len_mean": float("nan")},
        "training_iteration": np.int64(3),
    }
    values = metrics.extract_metrics(result)
    assert values == {"episode_reward_mean": 12.5, "episode_return_mean": 12.5, "training_iteration": 3.0}
    assert all(type(v) is float for v in values.values())
