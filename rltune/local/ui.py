"""What the user sees during and after a local sweep (rich)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from rltune.local.spec import TuningSpec
from rltune.local.trial import TrialRecord


@dataclass
class RunningView:
    index: int
    name: str
    iteration: float | None
    env_steps: float | None
    objective: float | None
    elapsed_s: float
    stopping: str | None


def _num(value: float | None, fmt: str = "{:.1f}") -> str:
    return "-" if value is None else fmt.format(value)


class SilentUI:
    """The hooks a sweep calls on its UI, showing nothing: for library use, and for tests that override one."""

    def start(self, total: int | None, header: str) -> None:
        pass

    def update(self, done: int, counts: dict[str, int], running: Sequence[RunningView]) -> None:
        pass

    def trial_finished(self, record: TrialRecord) -> None:
        pass

    def message(self, text: str) -> None:
        pass

    def stop(self) -> None:
        pass


class SweepUI(SilentUI):
    """One bar for the sweep (running, done, failed, pruned) and one live line per running trial."""

    def __init__(self, console: Console | None = None, live: bool = True) -> None:
        self.console = console or Console()
        self.live_enabled = live and self.console.is_terminal
        self.progress = Progress(
            TextColumn("[bold]sweep[/bold]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"),
            TimeElapsedColumn(),
            console=self.console,
        )
        self.task = self.progress.add_task("sweep", total=None, counts="")
        self._live: Live | None = None
        self._last_plain = 0.0

    def start(self, total: int | None, header: str) -> None:
        self.console.print(header)
        self.progress.update(self.task, total=total)
        if self.live_enabled:
            self._live = Live(self._render([]), console=self.console, refresh_per_second=4, transient=False)
            self._live.start()

    def _render(self, running: Sequence[RunningView]) -> Group:
        lines = [self.progress.get_renderable()]
        for view in sorted(running, key=lambda v: v.index):
            text = Text(f"  #{view.index} {view.name}  ", style="cyan")
            text.append(f"iter {_num(view.iteration, '{:.0f}')}  steps {_num(view.env_steps, '{:,.0f}')}  "
                        f"objective {_num(view.objective, '{:.2f}')}  {view.elapsed_s:.0f}s")
            if view.stopping:
                text.append(f"  stopping ({view.stopping})", style="yellow")
            lines.append(text)
        return Group(*lines)

    def update(self, done: int, counts: dict[str, int], running: Sequence[RunningView]) -> None:
        summary = "  ".join(f"{k} {v}" for k, v in counts.items())
        self.progress.update(self.task, completed=done, counts=summary)
        if self._live is not None:
            self._live.update(self._render(running))

    def trial_finished(self, record: TrialRecord) -> None:
        objective = "-" if record.objective is None else f"{record.objective:.2f}"
        state = "pruned" if record.pruned else record.status.lower()
        message = f"#{record.index} {record.name}: {state}, objective {objective}"
        if record.failure_reason:
            lines = record.failure_reason.splitlines()
            message += "".join(f"\n    {line}" for line in dict.fromkeys([lines[0], lines[-1]]))
        if self._live is not None:
            self._live.console.print(message)
        else:
            self.console.print(message)

    def message(self, text: str) -> None:
        (self._live.console if self._live is not None else self.console).print(text)

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


def results_table(spec: TuningSpec, records: Sequence[TrialRecord], best: TrialRecord | None) -> Table:
    """Trials sorted by objective (best first, jobs without an objective last), the best highlighted."""
    table = Table(title=f"{spec.tuning_job_name}: {spec.objective_type.lower()} {spec.objective_metric}",
                  box=box.SIMPLE_HEAD)
    table.add_column("#", justify="right")
    table.add_column("job", no_wrap=True)
    table.add_column("status")
    table.add_column("objective", justify="right")
    names = [r.name for r in spec.ranges]
    for name in names:
        table.add_column(name.rsplit(".", 1)[-1])
    table.add_column("iters", justify="right")
    table.add_column("env steps", justify="right")
    table.add_column("time", justify="right")

    def key(r: TrialRecord) -> tuple[int, float, int]:
        if r.objective is None:
            return (1, 0.0, r.index)
        return (0, -r.objective if spec.maximize else r.objective, r.index)

    for record in sorted(records, key=key):
        status = "pruned" if record.pruned else record.status
        style = "bold green" if best is not None and record.name == best.name else None
        table.add_row(
            str(record.index),
            record.name.removeprefix(spec.tuning_job_name + "-"),
            status,
            _num(record.objective, "{:.2f}"),
            *(short_value(record.tuned.get(n, "")) for n in names),
            _num(record.final_metrics.get("training_iteration"), "{:.0f}"),
            _num(record.final_metrics.get("num_env_steps_sampled_lifetime"), "{:,.0f}"),
            f"{record.training_seconds:.0f}s",
            style=style,
        )
    return table


def short_value(value: str) -> str:
    """A tuned value for display: numbers to 3 significant digits, other strings as they are."""
    try:
        return f"{float(value):.3g}"
    except ValueError:
        return value
