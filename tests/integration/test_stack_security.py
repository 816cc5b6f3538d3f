"""Security gates on every synthesized environment: cdk-nag, cfn-lint, checkov and IAM assertions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from aws_cdk.assertions import Match

from infra import audit, nag
from tests.integration.conftest import ENVIRONMENTS, ROOT

CHECKOV = ROOT / ".venv-tools" / "bin" / "checkov"
CFN_LINT = Path(sys.executable).parent / "cfn-lint"
# CDK writes DependsOn entries that a GetAtt already implies; cfn-lint flags them as redundant (W3005).
CFN_LINT_IGNORED = ("W3005",)


def _acknowledged(construct) -> dict[str, str]:
    """cdk-nag acknowledgements on one construct: {rule id: reason}."""
    import aws_cdk as cdk

    found: dict[str, str] = {}
    for entry in construct.node.metadata:
        if entry.type == cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY:
            for key, reason in entry.data.items():
                found[key.removeprefix("Annotation::")] = reason
    return found


def _all_acknowledgements(stack) -> dict[tuple[str, str], str]:
    return {
        (construct.node.path, rule): reason
        for construct in stack.node.find_all()
        for rule, reason in _acknowledged(construct).items()
    }


def _construct_by_logical_id(stack, logical_id: str):
    import aws_cdk as cdk

    for construct in stack.node.find_all():
        if isinstance(construct, cdk.CfnResource) and stack.resolve(construct.logical_id) == logical_id:
            return construct
    raise AssertionError(f"no construct with logical id {logical_id}")


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_cdk_nag_has_no_unacknowledged_findings(synthesized, env):
    from cdk_nag import AwsSolutionsChecks

    # Synthesis itself already failed on any finding (app.build registers the pack); this names them.
    report = AwsSolutionsChecks().validate_scope(synthesized[env].stack)
    findings = [(v.rule_name, [r.construct_path for r in v.violating_resources]) for v in report.violations]
    assert findings == []


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_acknowledgement_matches_a_real_finding_and_has_a_specific_reason(synthesized, env, monkeypatch,
                                                                                 tmp_path):
    """No stale acknowledgement: with the acknowledgements switched off, each one's finding must appear."""
    from cdk_nag import AwsSolutionsChecks

    import app as cdk_app
    from tests.integration.conftest import cdk_json_context

    acknowledged = _all_acknowledgements(synthesized[env].stack)
    assert acknowledged, "the SageMaker role's scoped wildcards should need acknowledgements"
    for (path, rule), reason in acknowledged.items():
        assert len(reason) >= 60, f"{path} {rule}: the reason must say specifically why ({reason!r})"

    monkeypatch.setattr(nag, "apply", lambda stack: None)
    bare = cdk_app.new_app(context={**cdk_json_context(), "env": env}, outdir=str(tmp_path))
    stack = cdk_app.build(bare, {})
    raw = {
        (resource.construct_path, violation.rule_name)
        for violation in AwsSolutionsChecks().validate_scope(stack).violations
        for resource in violation.violating_resources
    }
    for path, rule in acknowledged:
        assert any(r == rule and p.startswith(path) for p, r in raw), f"stale acknowledgement {rule} on {path}"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_cfn_lint_reports_nothing(synthesized, env):
    result = subprocess.run(
        [str(CFN_LINT), "--ignore-checks", *CFN_LINT_IGNORED, "--", str(synthesized[env].template_path)],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, f"cfn-lint found problems:\n{result.stdout}{result.stderr}"


def test_checkov_passes_every_template_with_reasoned_skips_only(synthesized):
    if not CHECKOV.exists():
        pytest.fail(f"{CHECKOV} is missing: run `make install` (checkov lives in its own venv)")
    paths = [str(synthesized[env].template_path) for env in ENVIRONMENTS]
    result = subprocess.run(
        [str(CHECKOV), "--framework", "cloudformation", "--skip-download", "--quiet", "--output", "json",
         *[arg for path in paths for arg in ("-f", path)]],
        capture_output=True, text=True, check=False, timeout=300,
    )
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']}): {c['check_name']}"
        for report in reports for c in report["results"]["failed_checks"]
    ]
    assert failed == [], "checkov failures (fix, or skip in infra/nag.py with a reason):\n" + "\n".join(failed)
    passed = sum(report["summary"]["passed"] for report in reports)
    assert passed > 50, f"checkov checked suspiciously little ({passed} passed checks)"
    for env in ENVIRONMENTS:
        for logical_id, resource in synthesized[env].template["Resources"].items():
            for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
                assert len(skip.get("comment", "")) >= 60, f"{env} {logical_id} skips {skip['id']} without a reason"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_buckets_deny_plain_http_and_block_public_access(synthesized, env):
    template = synthesized[env].assertions
    buckets = template.find_resources("AWS::S3::Bucket")
    assert len(buckets) == 2  # data + access logs
    for logical_id, bucket in buckets.items():
        block = bucket["Properties"]["PublicAccessBlockConfiguration"]
        assert block == {"BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True,
                         "RestrictPublicBuckets": True}, logical_id
        assert bucket["Properties"]["VersioningConfiguration"] == {"Status": "Enabled"}
        assert bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        template.has_resource_properties("AWS::S3::BucketPolicy", {
            "Bucket": {"Ref": logical_id},
            "PolicyDocument": {"Statement": Match.array_with([Match.object_like({
                "Effect": "Deny",
                "Action": "s3:*",
                "Principal": {"AWS": "*"},
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            })])},
        })


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_no_statement_grants_star_or_sagemaker_star(synthesized, env):
    assert audit.broad_action_problems(synthesized[env].template) == []


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_wildcard_resource_is_on_the_short_list_and_acknowledged(synthesized, env):
    result = synthesized[env]
    assert audit.wildcard_resource_problems(result.template, nag.WILDCARD_RESOURCE_ACTIONS) == []
    owners = audit.wildcard_resource_owners(result.template)
    assert owners, "the SageMaker role needs ecr:GetAuthorizationToken on '*'; the audit found no '*' at all"
    for logical_id in owners:
        construct = _construct_by_logical_id(result.stack, logical_id)
        rules = {rule for scope in construct.node.scopes for rule in _acknowledged(scope)}
        assert "AwsSolutions-IAM5[Resource::*]" in rules, f"{logical_id}: Resource '*' is not acknowledged"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_pass_role_names_only_the_sagemaker_role(synthesized, env):
    result = synthesized[env]
    role = result.stack.resolve(result.stack.sagemaker_role.node.default_child.logical_id)
    assert audit.pass_role_problems(result.template, role) == []
    passers = [s for s in audit.statements(result.template) if "iam:PassRole" in s.actions]
    if getattr(result.stack, "workflow", None) is not None:  # the workflow starts tuning jobs with the role
        assert passers, "the workflow must pass the SageMaker role to start tuning jobs"
    assert all(s.identity for s in passers)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_sagemaker_role_is_trusted_by_sagemaker_only_and_uses_no_managed_policy(synthesized, env):
    template = synthesized[env].assertions
    roles = template.find_resources("AWS::IAM::Role", {"Properties": {"Description": Match.string_like_regexp(
        "SageMaker training jobs")}})
    assert len(roles) == 1
    (role,) = roles.values()
    assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"] == [
        {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}}
    ]
    assert "ManagedPolicyArns" not in role["Properties"]
    for managed in template.find_resources("AWS::IAM::Role").values():
        for arn in managed["Properties"].get("ManagedPolicyArns", []):
            assert "FullAccess" not in json.dumps(arn), "no AWS-managed FullAccess policy anywhere"
