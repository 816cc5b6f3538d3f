"""IAM checks over a synthesized CloudFormation template (plain dicts: no CDK, usable on any template).

Each function returns a list of problems (empty = compliant), so tests can assert `== []` and show every
offending statement at once. The stack's tests run them on every environment's template.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

SAGEMAKER_SERVICE = "sagemaker.amazonaws.com"

# Where statements live: identity policies (attached to principals of this app) and resource policies.
_IDENTITY_POLICY_TYPES = ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")
_RESOURCE_POLICY_DOCS = {
    "AWS::S3::BucketPolicy": "PolicyDocument",
    "AWS::SNS::TopicPolicy": "PolicyDocument",
    "AWS::SQS::QueuePolicy": "PolicyDocument",
    "AWS::KMS::Key": "KeyPolicy",
    "AWS::Events::EventBusPolicy": "Statement",
}


@dataclass(frozen=True)
class Statement:
    """One IAM statement and where it sits in the template."""

    logical_id: str
    where: str  # e.g. "Policies[0]" or "PolicyDocument"
    identity: bool  # True for identity policies, False for resource policies
    body: Mapping[str, Any]

    @property
    def allows(self) -> bool:
        return self.body.get("Effect") == "Allow"

    @property
    def actions(self) -> list[str]:
        return _as_list(self.body.get("Action"))

    @property
    def resources(self) -> list[Any]:
        return _as_list(self.body.get("Resource"))

    def __str__(self) -> str:
        sid = self.body.get("Sid")
        return f"{self.logical_id}.{self.where}{f' (Sid {sid})' if sid else ''}: {self.actions}"


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _statements_of(document: Any) -> list[Mapping[str, Any]]:
    if isinstance(document, Mapping):
        return _as_list(document.get("Statement"))
    return []


def statements(template: Mapping[str, Any]) -> Iterator[Statement]:
    """Every IAM statement in the template: role inline policies, policies, managed policies, resource policies."""
    for logical_id, resource in template.get("Resources", {}).items():
        kind = resource.get("Type")
        props = resource.get("Properties", {})
        if kind == "AWS::IAM::Role":
            for index, policy in enumerate(props.get("Policies", [])):
                for body in _statements_of(policy.get("PolicyDocument")):
                    yield Statement(logical_id, f"Policies[{index}]", True, body)
        elif kind in _IDENTITY_POLICY_TYPES:
            for body in _statements_of(props.get("PolicyDocument")):
                yield Statement(logical_id, "PolicyDocument", True, body)
        elif kind in _RESOURCE_POLICY_DOCS:
            key = _RESOURCE_POLICY_DOCS[kind]
            document = props.get(key)
            bodies = [document] if kind == "AWS::Events::EventBusPolicy" and document else _statements_of(document)
            for body in bodies:
                yield Statement(logical_id, key, False, body)


def broad_action_problems(template: Mapping[str, Any]) -> list[str]:
    """No Allow anywhere grants `*` or `sagemaker:*`; no identity policy grants a whole service (`svc:*`)."""
    problems = []
    for statement in statements(template):
        if not statement.allows:
            continue
        if "NotAction" in statement.body:
            problems.append(f"{statement}: Allow with NotAction grants everything else; list the actions instead")
        for action in statement.actions:
            if not isinstance(action, str):
                continue
            lowered = action.lower()
            if lowered in ("*", "sagemaker:*"):
                problems.append(f"{statement}: grants {action!r}; list the exact actions")
            elif statement.identity and lowered.endswith(":*"):
                problems.append(f"{statement}: grants every action of a service ({action!r}); list the actions")
    return problems


def wildcard_resource_problems(template: Mapping[str, Any], allowed_actions: frozenset[str]) -> list[str]:
    """Every identity statement on `Resource: *` carries only actions AWS cannot scope (the short list)."""
    allowed = {a.lower() for a in allowed_actions}
    problems = []
    for statement in statements(template):
        if not (statement.identity and statement.allows and "*" in statement.resources):
            continue
        extra = sorted(a for a in statement.actions if not isinstance(a, str) or a.lower() not in allowed)
        if extra:
            problems.append(f"{statement}: {extra} on Resource '*' can be scoped to a resource; scope them")
    return problems


def wildcard_resource_owners(template: Mapping[str, Any]) -> set[str]:
    """Logical ids of the policies/roles holding an Allow on `Resource: *` (each needs an acknowledgement)."""
    return {
        s.logical_id for s in statements(template) if s.identity and s.allows and "*" in s.resources
    }


def _refers_to(value: Any, logical_id: str) -> bool:
    return value in ({"Fn::GetAtt": [logical_id, "Arn"]}, {"Fn::GetAtt": f"{logical_id}.Arn"})


def pass_role_problems(template: Mapping[str, Any], sagemaker_role_logical_id: str) -> list[str]:
    """`iam:PassRole` names only the SageMaker role, conditioned on `iam:PassedToService` = SageMaker."""
    problems = []
    for statement in statements(template):
        if not statement.allows:
            continue
        actions = [a.lower() for a in statement.actions if isinstance(a, str)]
        if not any(a in ("iam:passrole", "iam:*", "iam:pass*") for a in actions):
            continue
        if any(a != "iam:passrole" for a in actions if a.startswith("iam:")):
            problems.append(f"{statement}: PassRole must be granted by its exact name, alone")
        if not statement.resources or not all(_refers_to(r, sagemaker_role_logical_id) for r in statement.resources):
            problems.append(
                f"{statement}: PassRole resources {statement.resources} must be only the SageMaker role "
                f"({{'Fn::GetAtt': ['{sagemaker_role_logical_id}', 'Arn']}})"
            )
        condition = statement.body.get("Condition", {}).get("StringEquals", {})
        if _as_list(condition.get("iam:PassedToService")) != [SAGEMAKER_SERVICE]:
            problems.append(
                f"{statement}: PassRole needs Condition StringEquals iam:PassedToService = {SAGEMAKER_SERVICE!r}"
            )
    return problems
