#!/usr/bin/env python3
"""The CDK app: `npx cdk <command> -c env=NAME` synthesizes the stack `RlTune-<NAME>` (default `dev`).

This is the only place that reads CDK context or environment variables: the environment's block under
`context.environments` in cdk.json becomes a typed `EnvironmentConfig`, and the stack gets that object.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

# jsii warns on every start under Node 20 (still the CI's Node); the warning is noise in synth output.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from infra.settings import SettingsError, resolve_environment
from infra.stack import PROJECT, RlTuneStack, stack_name


def new_app(**kwargs: object) -> cdk.App:
    """The app with this project's synthesis settings (tests create theirs here too).

    CDK's built-in CloudFormation validation is off: it costs ~8 s per synthesis here, and cfn-lint (a superset
    of its rules) gates every synthesized template in `make lint` and the test suite. cdk-nag stays on.
    """
    return cdk.App(builtin_cloud_formation_validation=False, **kwargs)  # type: ignore[arg-type]


def build(app: cdk.App, environ: Mapping[str, str]) -> RlTuneStack:
    """Add the stack for the app's `env` context to `app` and gate it with cdk-nag (AwsSolutions)."""
    config = resolve_environment(
        app.node.try_get_context("env"),
        app.node.try_get_context("environments"),
        default_account=environ.get("CDK_DEFAULT_ACCOUNT"),
        default_region=environ.get("CDK_DEFAULT_REGION"),
    )
    stack = RlTuneStack(
        app,
        stack_name(config.name),
        config=config,
        env=cdk.Environment(account=config.account, region=config.region),
        description=f"rltune ({config.name}): RLlib hyperparameter tuning on SageMaker",
        termination_protection=config.removal_policy == "retain",
    )
    cdk.Tags.of(stack).add("project", PROJECT)
    cdk.Tags.of(stack).add("environment", config.name)
    # Any unacknowledged finding fails synthesis; acknowledgements live in infra/nag.py.
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))
    return stack


def main() -> None:
    app = new_app()
    try:
        build(app, os.environ)
    except SettingsError as error:
        print(f"rltune: cannot synthesize: {error}", file=sys.stderr)
        sys.exit(1)
    app.synth()


if __name__ == "__main__":
    main()
