"""The `rltune` command. Each group of commands lives in its own module and registers on `app`."""

from __future__ import annotations

import typer

from rltune import __version__

app = typer.Typer(
    name="rltune",
    help="Tune Ray RLlib hyperparameters on AWS SageMaker, or locally with the same payload.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


@app.command()
def version() -> None:
    """Print rltune's version."""
    typer.echo(__version__)


# Command modules register themselves on `app` when imported (one line per module below).
# One line per module, in any order (engineers add theirs independently), so sorting is off here.
# isort: off
from rltune.cli import local_commands  # noqa: E402,F401
from rltune.cli import payload_commands  # noqa: E402,F401
from rltune.cli import cloud_commands  # noqa: E402,F401


def main() -> None:
    app()
