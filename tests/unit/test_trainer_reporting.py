"""Metric lines follow rltune's metric contract; metrics.csv appends across restarts."""

from __future__ import annotations

import csv
import io
import math

import numpy as np
from rltune_trainer.reporting import CSV_COLUMNS, MetricsCsv, metric_lines, print_metrics
from rltune_trainer.runner import stop_reason

from rltune import metrics


def fake_result(ret):
    return {
        "training_iteration": np.int64(4),
        "num_env_steps_sampled_lifetime": np.int64(16000),
        "time_total_s": 12.5,
        "env_runners": {"episode_return_mean": ret, "episode_len_mean": np.float64(21.0)},
        "learners": {"default_policy": {"default_optimizer_learning_rate": np.float32(0.00123)}},
        "config": {"lr": 0.00123, "huge": list(range(1000))},
    }


def test_lines_are_parsed_back_by_the_contract_regexes():
    values = metrics.extract_metrics(fake_result(np.float64(37.25)))
    stream = io.StringIO()
    print_metrics(values, stream)
    parsed = metrics.parse_metric_lines(stream.getvalue().splitlines(), metrics.metric_definitions())
    assert {k: v[-1] for k, v in parsed.items()} == values
    assert parsed["episode_reward_mean"] == parsed["episode_return_mean"] == [37.25]
    assert "huge" not in stream.getvalue()


def test_no_line_before_the_first_episode_ends():
    values = metrics.extract_metrics(fake_result(float("nan")))
    assert "episode_reward_mean" not in values
    assert all("episode_re" not in line for line in metric_lines(values))
    assert all(math.isfinite(float(line.split("=")[1].rstrip(";"))) for line in metric_lines(values))


def test_csv_header_once_and_rows_appended(tmp_path):
    path = tmp_path / "data" / "metrics.csv"
    MetricsCsv(path).append({"training_iteration": 1.0, "episode_reward_mean": 10.0})
    MetricsCsv(path).append({"training_iteration": 2.0})  # a resumed process
    rows = list(csv.DictReader(path.open()))
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert [r["training_iteration"] for r in rows] == ["1.0", "2.0"]
    assert rows[1]["episode_reward_mean"] == ""


def test_stop_reasons():
    stop = {"training_iteration": 10, "episode_return_mean": 450.0}
    assert stop_reason({"training_iteration": 9.0}, stop) is None
    assert stop_reason({"training_iteration": 10.0}, stop) == "training_iteration 10 >= 10"
    assert stop_reason({"training_iteration": 3.0, "episode_return_mean": 451.0}, stop).startswith("episode_return")
    assert stop_reason({"training_iteration": 3.0, "episode_return_mean": float("nan")}, stop) is None
