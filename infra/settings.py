"""Turn one `cdk.json` `context.environments.<name>` block into a typed `EnvironmentConfig`.

`app.py` reads the context and the `CDK_DEFAULT_*` variables and hands their values to
`resolve_environment`; nothing below app.py reads context or the process environment.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from rltune.environments import EnvironmentConfig

DEFAULT_ENVIRONMENT = "dev"
KMS_KEY_ARN = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+$")
SUBNET_ID = re.compile(r"^subnet-[0-9a-f]+$")
SECURITY_GROUP_ID = re.compile(r"^sg-[0-9a-f]+$")


class SettingsError(ValueError):
    """A cdk.json environment that cannot be synthesized. The message names every bad setting and the fix."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(problems)
        count = len(problems)
        header = f"{count} problem{'s' if count > 1 else ''} in cdk.json context:"
        super().__init__("\n".join([header, *(f"- {p}" for p in problems)]))


def _location(prefix: str, loc: tuple[int | str, ...]) -> str:
    return ".".join([prefix, *(str(part) for part in loc)])


def resolve_environment(
    name: str | None,
    environments: Any,
    *,
    default_account: str | None = None,
    default_region: str | None = None,
) -> EnvironmentConfig:
    """The typed settings for environment `name` (default `dev`).

    `environments` is the raw `context.environments` value. A block's `account`/`region` win over the
    defaults (the CLI's `CDK_DEFAULT_ACCOUNT`/`CDK_DEFAULT_REGION`); `null` or a missing key means "use the default".
    Raises `SettingsError` naming the environment, the field and how to fix it.
    """
    name = name or DEFAULT_ENVIRONMENT
    if not isinstance(environments, Mapping) or not environments:
        raise SettingsError([
            "context.environments is missing or empty: add an object with one block per environment, "
            'e.g. "environments": {"dev": {"removal_policy": "destroy"}} (see README, "Deploy")'
        ])
    if name not in environments:
        known = ", ".join(sorted(environments))
        raise SettingsError([
            f"unknown environment {name!r} (from -c env={name}): known environments are {known}; "
            f"pass one of them, or add a context.environments.{name} block to cdk.json"
        ])
    block = environments[name]
    prefix = f"context.environments.{name}"
    if not isinstance(block, Mapping):
        raise SettingsError([f"{prefix} must be an object of settings, got {type(block).__name__}"])
    if "name" in block:
        raise SettingsError([f"{prefix}.name: remove it; an environment's name is its key in context.environments"])
    data: dict[str, Any] = {"name": name, **block}
    if data.get("account") is None and default_account:
        data["account"] = default_account
    if data.get("region") is None and default_region:
        data["region"] = default_region
    try:
        config = EnvironmentConfig.model_validate(data)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            where = _location(prefix, item["loc"]) if item["loc"] else prefix
            problem = f"{where}: {item['msg']}"
            if item["type"] == "extra_forbidden":
                allowed = ", ".join(_allowed_keys(item["loc"]))
                problem += f" (unknown setting; allowed here: {allowed})"
            elif item["type"] == "missing":
                problem += " (add it to the block)"
            problems.append(problem)
        raise SettingsError(problems) from None
    problems = _deployment_problems(config, prefix)
    if problems:
        raise SettingsError(problems)
    return config


def _deployment_problems(config: EnvironmentConfig, prefix: str) -> list[str]:
    """What the stack needs beyond the shared model: identifiers it hands to IAM, S3, DynamoDB and SageMaker."""
    problems = []
    if config.kms_key_arn is not None and not KMS_KEY_ARN.match(config.kms_key_arn):
        problems.append(f"{prefix}.kms_key_arn: {config.kms_key_arn!r} is not a KMS key ARN "
                        "(arn:aws:kms:<region>:<account>:key/<key id>; aliases are not accepted)")
    if config.vpc is not None:
        problems.extend(f"{prefix}.vpc.subnet_ids: {subnet!r} is not a subnet id (subnet-0123abcd...)"
                        for subnet in config.vpc.subnet_ids if not SUBNET_ID.match(subnet))
        problems.extend(f"{prefix}.vpc.security_group_ids: {group!r} is not a security group id (sg-0123abcd...)"
                        for group in config.vpc.security_group_ids if not SECURITY_GROUP_ID.match(group))
    return problems


def _allowed_keys(loc: tuple[int | str, ...]) -> list[str]:
    """The field names valid at the parent of an unknown key (for 'did you mean' style messages)."""
    model: Any = EnvironmentConfig
    for part in loc[:-1]:
        field = model.model_fields.get(str(part)) if hasattr(model, "model_fields") else None
        if field is None:
            return []
        annotation = field.annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        model = next((c for c in candidates if hasattr(c, "model_fields")), None)
        if model is None:
            return []
    return [key for key in model.model_fields if key != "name" or model is not EnvironmentConfig]
