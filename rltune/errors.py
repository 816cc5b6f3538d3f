"""Errors users see. Every problem names where it is and how to fix it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Issue:
    """One problem in a payload: a dotted path to the field, and a message that says how to fix it."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class PayloadError(ValueError):
    """A payload that must not reach SageMaker. Carries every problem found, not just the first."""

    def __init__(self, issues: Iterable[Issue]) -> None:
        self.issues: tuple[Issue, ...] = tuple(issues)
        if not self.issues:
            raise ValueError("PayloadError needs at least one issue")
        super().__init__(str(self))

    def __str__(self) -> str:
        count = len(self.issues)
        header = f"{count} problem{'s' if count > 1 else ''} in the tuning payload:"
        return "\n".join([header, *(f"- {issue}" for issue in self.issues)])

    def to_dict(self) -> dict[str, object]:
        return {"errors": [{"path": i.path, "message": i.message} for i in self.issues]}
