"""Shared test setup. A test's group (unit or integration) comes from its folder."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The trainer is a script tree, not an installed package: make it importable for unit tests.
sys.path.insert(0, str(ROOT / "training_image"))

# Never let a test reach a real AWS account.
for key, value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "RAY_USAGE_STATS_ENABLED": "0",
}.items():
    os.environ[key] = value
os.environ.pop("AWS_PROFILE", None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        group = Path(str(item.fspath)).relative_to(ROOT / "tests").parts[0]
        if group not in ("unit", "integration"):
            raise pytest.UsageError(f"{item.nodeid}: tests live in tests/unit or tests/integration")
        item.add_marker(getattr(pytest.mark, group))
