"""Per-iteration metrics: one contract line per finite metric on stdout, and a row in metrics.csv."""

from __future__ import annotations

import csv
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from rltune import metrics

CSV_COLUMNS = ("timestamp", *metrics.METRIC_NAMES)


def metric_lines(values: Mapping[str, float]) -> list[str]:
    """The exact lines SageMaker's regexes capture (contract order, finite values only)."""
    return [metrics.format_metric_line(name, values[name]) for name in metrics.METRIC_NAMES if name in values]


def print_metrics(values: Mapping[str, float], stream: IO[str] | None = None) -> None:
    stream = stream or sys.stdout
    text = "\n".join(metric_lines(values))
    if text:
        stream.write(text + "\n")
    stream.flush()


class MetricsCsv:
    """Appends one row per iteration; a resumed run appends to the same file (header written once)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def append(self, values: Mapping[str, float]) -> None:
        new = not self.path.exists() or self.path.stat().st_size == 0
        with self.path.open("a", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            if new:
                writer.writerow(CSV_COLUMNS)
            row = [datetime.now(UTC).isoformat(timespec="seconds")]
            row += [repr(float(values[name])) if name in values else "" for name in metrics.METRIC_NAMES]
            writer.writerow(row)
