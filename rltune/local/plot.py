"""trials.png: the objective of every trial with the best-so-far line, and the top trials' learning curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt

from rltune.local.spec import TuningSpec
from rltune.local.trial import TrialRecord, final_metrics
from rltune.local.ui import short_value

STEPS_METRIC = "num_env_steps_sampled_lifetime"
TOP_CURVES = 3
STATUS_STYLE = {  # marker, colour, label
    "Completed": ("o", "tab:blue", "completed"),
    "Stopped": ("s", "tab:orange", "stopped"),
    "pruned": ("x", "tab:red", "pruned (early stopping)"),
}


def learning_curve(log_path: Path, definitions: Sequence[Mapping[str, str]], objective: str
                   ) -> tuple[list[float], list[float], str]:
    """(x, objective values, x label) from a trial's log: env steps when every report has them, else reports."""
    scraped = final_metrics(log_path, definitions)
    values = scraped.get(objective, [])
    steps = scraped.get(STEPS_METRIC, [])
    if steps and len(steps) == len(values):
        return steps, values, "environment steps"
    return [float(i + 1) for i in range(len(values))], values, "objective report (iteration)"


def plot_trials(
    path: Path,
    spec: TuningSpec,
    records: Sequence[TrialRecord],
    logs: Mapping[str, Path],
    title: str,
) -> Path:
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), constrained_layout=True)
    ordered = sorted(records, key=lambda r: r.index)
    seen_labels: set[str] = set()
    best: float | None = None
    best_x: list[int] = []
    best_y: list[float] = []
    for record in ordered:
        if record.objective is None:
            if record.status == "Failed":
                left.axvline(record.index, color="tab:gray", alpha=0.3, linestyle=":")
            continue
        key = "pruned" if record.pruned else record.status
        marker, colour, label = STATUS_STYLE.get(key, ("o", "tab:blue", key))
        left.scatter([record.index], [record.objective], marker=marker, color=colour, s=50, zorder=3,
                     label=None if label in seen_labels else label)
        seen_labels.add(label)
        if record.objective_status == "Succeeded" and (best is None or spec.better(record.objective, best)):
            best = record.objective
        if best is not None:
            best_x.append(record.index)
            best_y.append(best)
    if best_x:
        left.step(best_x, best_y, where="post", color="tab:green", linewidth=2, label="best so far")
    if any(r.status == "Failed" for r in records):
        left.plot([], [], color="tab:gray", linestyle=":", label="failed (no objective)")
    left.set_xlabel("training job")
    left.set_ylabel(spec.objective_metric)
    left.set_title(f"{spec.objective_type.lower()} {spec.objective_metric} per trial")
    left.grid(alpha=0.3)
    if ordered:
        left.set_xticks([r.index for r in ordered])
    if seen_labels or best_x:
        left.legend(loc="best", fontsize="small")

    ranked = [r for r in ordered if r.objective is not None]
    ranked.sort(key=lambda r: r.objective, reverse=spec.maximize)  # type: ignore[arg-type, return-value]
    xlabel = "objective report (iteration)"
    for record in ranked[:TOP_CURVES]:
        log = logs.get(record.name)
        if log is None:
            continue
        xs, ys, xlabel = learning_curve(log, spec.metric_definitions, spec.objective_metric)
        tuned = ", ".join(f"{k.rsplit('.', 1)[-1]}={short_value(v)}" for k, v in record.tuned.items())
        right.plot(xs, ys, marker=".", label=f"#{record.index}: {tuned}")
    if spec.target_objective is not None:
        right.axhline(spec.target_objective, color="tab:gray", linestyle="--", label="target")
    right.set_xlabel(xlabel)
    right.set_ylabel(spec.objective_metric)
    right.set_title(f"learning curves of the top {min(TOP_CURVES, len(ranked))} trials")
    right.grid(alpha=0.3)
    if ranked:
        right.legend(loc="best", fontsize="small")
    fig.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

