"""Shared CDK synthesis for every infra test: each environment is synthesized ONCE per test session.

Synthesis runs through jsii (seconds each), so tests never build their own app for dev/prod. Use:

    def test_something(synthesized):
        dev = synthesized["dev"]
        dev.stack          # the RlTuneStack (constructs as attributes: dev.stack.bucket, .sagemaker_role, ...)
        dev.template       # the synthesized template, as a dict
        dev.assertions     # aws_cdk.assertions.Template over it
        dev.template_path  # the written template (cfn-lint / checkov read it)
        dev.assembly_dir   # the cloud assembly directory (assets, manifests)

Synthesis goes through `app.build`, exactly what `cdk synth -c env=NAME` runs, with cdk.json's context,
and the cdk-nag gate on: an unacknowledged finding fails the fixture, hence every infra test.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

ROOT = Path(__file__).resolve().parents[2]
ENVIRONMENTS = ("dev", "prod")


@dataclass
class Synthesized:
    name: str
    app: Any  # aws_cdk.App
    stack: Any  # infra.stack.RlTuneStack
    template: dict[str, Any]
    template_path: Path
    assembly_dir: Path
    _assertions: Any = field(default=None, repr=False)

    @property
    def assertions(self) -> Any:
        """`aws_cdk.assertions.Template` over the written template (built once)."""
        if self._assertions is None:
            from aws_cdk.assertions import Template

            self._assertions = Template.from_json(self.template)
        return self._assertions


def cdk_json_context() -> dict[str, Any]:
    return json.loads((ROOT / "cdk.json").read_text())["context"]


def synthesize(
    name: str,
    outdir: Path,
    *,
    environments: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Synthesized:
    """Synthesize environment `name` like `cdk synth -c env=NAME` would, into `outdir`.

    `environments` replaces cdk.json's `context.environments` (for variants); `environ` stands in for the
    process environment app.py reads (`CDK_DEFAULT_ACCOUNT` / `CDK_DEFAULT_REGION`).
    """
    import app as cdk_app

    context = cdk_json_context()
    if environments is not None:
        context["environments"] = dict(environments)
    context["env"] = name
    application = cdk_app.new_app(context=context, outdir=str(outdir))
    stack = cdk_app.build(application, environ or {})
    assembly = application.synth()
    artifact = assembly.get_stack_artifact(stack.artifact_id)
    template_path = Path(artifact.template_full_path)
    return Synthesized(
        name=name,
        app=application,
        stack=stack,
        template=json.loads(template_path.read_text()),
        template_path=template_path,
        assembly_dir=Path(assembly.directory),
    )


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Synthesized]:
    """{env: Synthesized} for every environment in cdk.json's defaults (dev, prod), synthesized once."""
    return {name: synthesize(name, tmp_path_factory.mktemp(f"cdk-{name}")) for name in ENVIRONMENTS}
