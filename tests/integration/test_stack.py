"""The stack's resources, per environment, and how dev and prod differ."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from aws_cdk.assertions import Match

from infra import audit, nag
from infra.storage import CHECKPOINT_PREFIX, OUTPUT_PREFIX
from rltune.environments import DeploymentTarget
from tests.integration.conftest import ENVIRONMENTS, ROOT, cdk_json_context, synthesize
from tests.integration.test_stack_security import CFN_LINT, CFN_LINT_IGNORED

OUTPUTS = ("BucketName", "TableName", "ImageUri", "SageMakerRoleArn", "NotificationTopicArn")


def _one(template, kind: str, props: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    found = template.find_resources(kind, {"Properties": props} if props else None)
    assert len(found) == 1, f"expected one {kind}, found {list(found)}"
    return next(iter(found.items()))


def _data_bucket(template) -> tuple[str, dict[str, Any]]:
    return _one(template, "AWS::S3::Bucket", {"LoggingConfiguration": Match.any_value()})


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_bucket_lifecycle_logging_and_removal_follow_the_environment(synthesized, env):
    result = synthesized[env]
    config = result.stack.config
    template = result.assertions
    bucket_id, bucket = _data_bucket(template)
    log_id, log_bucket = _one(template, "AWS::S3::Bucket", {"LifecycleConfiguration": {"Rules": [
        Match.object_like({"Id": "expire-access-logs"})]}})
    rules = {rule["Id"]: rule for rule in bucket["Properties"]["LifecycleConfiguration"]["Rules"]}
    assert rules["expire-checkpoints"] == {"Id": "expire-checkpoints", "Prefix": CHECKPOINT_PREFIX,
                                           "ExpirationInDays": config.checkpoint_expiry_days, "Status": "Enabled"}
    assert rules["expire-noncurrent-versions"]["NoncurrentVersionExpiration"]["NoncurrentDays"] >= 1
    assert rules["abort-incomplete-multipart-uploads"]["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] >= 1
    assert bucket["Properties"]["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": log_id}
    assert "LoggingConfiguration" not in log_bucket["Properties"]
    # Log delivery is granted by bucket policy (serverAccessLogsUseBucketPolicy), never by a public ACL.
    assert "AccessControl" not in log_bucket["Properties"]
    template.has_resource_properties("AWS::S3::BucketPolicy", {
        "Bucket": {"Ref": log_id},
        "PolicyDocument": {"Statement": Match.array_with([Match.object_like({
            "Action": "s3:PutObject", "Principal": {"Service": "logging.s3.amazonaws.com"}})])},
    })

    expected = "Delete" if config.removal_policy == "destroy" else "Retain"
    for logical_id in (bucket_id, log_id):
        resource = result.template["Resources"][logical_id]
        assert (resource["DeletionPolicy"], resource["UpdateReplacePolicy"]) == (expected, expected)
    emptied = template.find_resources("Custom::S3AutoDeleteObjects")
    assert len(emptied) == (2 if config.removal_policy == "destroy" else 0)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_results_table_is_keyed_on_demand_recoverable_and_encrypted(synthesized, env):
    result = synthesized[env]
    table_id, table = _one(result.assertions, "AWS::DynamoDB::Table")
    props = table["Properties"]
    assert props["KeySchema"] == [{"AttributeName": "experiment", "KeyType": "HASH"},
                                  {"AttributeName": "tuning_job", "KeyType": "RANGE"}]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"]["SSEEnabled"] is True
    retain = result.stack.config.removal_policy == "retain"
    assert props["DeletionProtectionEnabled"] is retain
    assert result.template["Resources"][table_id]["DeletionPolicy"] == ("Retain" if retain else "Delete")


def _statements_by_sid(result) -> dict[str, dict[str, Any]]:
    _, policy = _one(result.assertions, "AWS::IAM::Policy", {"Roles": [{"Ref": Match.string_like_regexp(
        "^SageMakerRole")}]})
    return {s["Sid"]: s for s in policy["Properties"]["PolicyDocument"]["Statement"]}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_sagemaker_role_reaches_only_its_prefixes_image_logs_and_metrics(synthesized, env):
    result = synthesized[env]
    bucket_id, _ = _data_bucket(result.assertions)
    bucket_arn = {"Fn::GetAtt": [bucket_id, "Arn"]}
    statements = _statements_by_sid(result)
    everything = json.dumps(list(statements.values()))
    assert "s3:*" not in everything
    assert '"s3:Get*"' not in everything
    assert '"s3:List*"' not in everything

    def objects(prefix: str) -> dict[str, Any]:
        return {"Fn::Join": ["", [bucket_arn, f"/{prefix}*"]]}

    assert statements["ReadWriteOwnPrefixes"]["Resource"] == [objects(CHECKPOINT_PREFIX), objects(OUTPUT_PREFIX)]
    assert statements["DeleteCheckpoints"]["Resource"] == objects(CHECKPOINT_PREFIX)
    assert statements["ListOwnPrefixes"]["Resource"] == bucket_arn
    assert set(statements["ListOwnPrefixes"]["Condition"]["StringLike"]["s3:prefix"]) == {
        CHECKPOINT_PREFIX, f"{CHECKPOINT_PREFIX}*", OUTPUT_PREFIX, f"{OUTPUT_PREFIX}*"}
    assert statements["EcrAuthorizationToken"]["Resource"] == "*"
    assert "container-assets" in json.dumps(statements["PullTrainingImage"]["Resource"])
    for sid in ("TrainingLogGroup", "TrainingLogStreams"):
        arns = json.dumps(statements[sid]["Resource"])
        assert re.findall(r"log-group:([^\"]*)", arns), sid
        assert all(name.startswith("/aws/sagemaker/TrainingJobs") for name in re.findall(r"log-group:([^\"]*)", arns))
    assert statements["SageMakerMetrics"]["Condition"] == {"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_outputs_are_exported_per_environment(synthesized, env):
    outputs = synthesized[env].template["Outputs"]
    for name in OUTPUTS:
        assert outputs[name]["Export"] == {"Name": f"RlTune-{env}-{name}"}, name


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_stack_is_tagged_and_named_for_its_environment(synthesized, env):
    result = synthesized[env]
    assert result.stack.stack_name == f"RlTune-{env}"
    assert result.stack.termination_protection is (result.stack.config.removal_policy == "retain")
    _, bucket = _data_bucket(result.assertions)
    tags = {tag["Key"]: tag["Value"] for tag in bucket["Properties"]["Tags"]}
    assert tags["project"] == "rltune"
    assert tags["environment"] == env


def test_training_image_is_an_amd64_docker_asset_staged_without_docker(synthesized):
    result = synthesized["dev"]
    manifest = json.loads((result.assembly_dir / "RlTune-dev.assets.json").read_text())
    (image,) = manifest["dockerImages"].values()
    assert image["source"]["dockerFile"] == "training_image/Dockerfile"
    assert image["source"]["platform"] == "linux/amd64"
    context = result.assembly_dir / image["source"]["directory"]
    assert (context / "training_image" / "Dockerfile").is_file()
    for heavy in (".venv", ".venv-tools", "node_modules", ".git", "cdk.out"):
        assert not (context / heavy).exists(), f"{heavy} must never be in the image build context"
    assert result.stack.image_uri  # a token until deploy; the output carries it
    assert "ImageUri" in result.template["Outputs"]


def _normalize(value: Any, env: str) -> Any:
    if isinstance(value, dict):
        return {k: _normalize(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalize(v, env) for v in value]
    if isinstance(value, str):
        return re.sub(rf"\b{env}\b", "<env>", value)
    return value


def _differences(a: Any, b: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                yield (*path, key)
            else:
                yield from _differences(a[key], b[key], (*path, key))
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            yield from _differences(x, y, (*path, str(index)))
    elif a != b:
        yield path


_MISSING = object()


def _get_or_missing(document: Any, path: tuple[str, ...]) -> Any:
    try:
        return _get(document, path)
    except (KeyError, IndexError):
        return _MISSING


def test_dev_and_prod_differ_exactly_where_their_settings_say(synthesized):
    """Every difference between the templates is explained by a setting whose dev and prod values differ,
    with the values each setting implies; every such setting shows up. A new setting-driven difference must
    be explained here (with its expected values), anything else is a bug."""
    from infra.workflow import max_tuning_runtime_seconds, workflow_timeout_seconds

    dev, prod = synthesized["dev"], synthesized["prod"]
    cd, cp = dev.stack.config, prod.stack.config
    bucket_id, _ = _data_bucket(dev.assertions)
    table_id, _ = _one(dev.assertions, "AWS::DynamoDB::Table")
    dev_only = {k for k, v in dev.template["Resources"].items()
                if "AutoDeleteObjects" in k or v["Type"] == "Custom::S3AutoDeleteObjects"}
    assert len(dev_only) == 4  # two emptying custom resources, their provider's handler and role
    dev_template, prod_template = _normalize(dev.template, "dev"), _normalize(prod.template, "prod")

    def guardrails(p, a, b):
        if p[-3:-1] != ("Environment", "Variables"):
            return False
        if p[-1] == "RLTUNE_GUARDRAILS":
            return (json.loads(a), json.loads(b)) == (cd.guardrails.model_dump(mode="json"),
                                                      cp.guardrails.model_dump(mode="json"))
        if p[-1] == "RLTUNE_MAX_TUNING_RUNTIME_SECONDS":
            return (a, b) == (str(max_tuning_runtime_seconds(cd.guardrails)),
                              str(max_tuning_runtime_seconds(cp.guardrails)))
        return False

    def workflow_timeout(p, a, b):
        if "DefinitionString" not in p or not isinstance(a, str):
            return False
        ta, tb = workflow_timeout_seconds(cd), workflow_timeout_seconds(cp)
        return ta != tb and a.replace(f'"TimeoutSeconds":{ta}', f'"TimeoutSeconds":{tb}') == b

    def removal_policy(p, a, b):
        return (
            (len(p) == 3 and p[2] in ("DeletionPolicy", "UpdateReplacePolicy")
             and (a, b) == ("Delete", "Retain"))
            or (p == ("Resources", table_id, "Properties", "DeletionProtectionEnabled") and (a, b) == (False, True))
            or (len(p) == 2 and p[1] in dev_only and b is _MISSING)
            # the emptying handler's bucket-policy grant and its marker tag exist in dev only
            or (len(p) == 5 and p[-1] == "Statement"
                and dev.template["Resources"][p[1]]["Type"] == "AWS::S3::BucketPolicy"
                and all(s in a for s in b)
                and all(any(d in json.dumps(s) for d in dev_only) for s in a if s not in b))
            or (len(p) == 4 and p[-1] == "Tags" and all(t in a for t in b)
                and [t for t in a if t not in b] == [{"Key": "aws-cdk:auto-delete-objects", "Value": "true"}])
        )

    explanations = {
        "name": lambda p, a, b: (  # CDK derives a few logical ids and Sids from the stack name
            any(f"RlTune{e}" in part for part in p for e in ("dev", "prod"))
            or ("RlTunedev" in json.dumps(a) and "RlTuneprod" in json.dumps(b))
        ),
        "checkpoint_expiry_days": lambda p, a, b: (
            p == ("Resources", bucket_id, "Properties", "LifecycleConfiguration", "Rules", "0", "ExpirationInDays")
            and (a, b) == (cd.checkpoint_expiry_days, cp.checkpoint_expiry_days)
        ),
        "log_retention_days": lambda p, a, b: (
            p[-1] == "RetentionInDays" and (a, b) == (cd.log_retention_days, cp.log_retention_days)
        ),
        "removal_policy": removal_policy,
        "guardrails": lambda p, a, b: guardrails(p, a, b) or workflow_timeout(p, a, b),
    }
    for setting in explanations:
        if setting != "name":
            assert getattr(cd, setting) != getattr(cp, setting), f"{setting} is the same in dev and prod"
    explained: dict[str, int] = dict.fromkeys(explanations, 0)
    unexplained = []
    for path in _differences(dev_template, prod_template):
        a, b = _get_or_missing(dev_template, path), _get_or_missing(prod_template, path)
        reasons = [name for name, explains in explanations.items() if explains(path, a, b)]
        for name in reasons:
            explained[name] += 1
        if not reasons:
            unexplained.append((path, str(a)[:120], str(b)[:120]))
    assert unexplained == [], "dev and prod differ where no setting says they should"
    assert all(explained.values()), f"a setting differs in cdk.json but not in the templates: {explained}"


def _get(document: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        document = document[int(part)] if isinstance(document, list) else document[part]
    return document


@pytest.fixture(scope="module")
def every_option(tmp_path_factory):
    """An environment using every optional setting: own CMK, VPC, e-mail, explicit account and region."""
    block = {
        **cdk_json_context()["environments"]["prod"],
        "account": None,
        "region": "eu-west-1",
        "kms_key_arn": "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "vpc": {"subnet_ids": ["subnet-0abc"], "security_group_ids": ["sg-0abc"]},
        "notification_email": "ml-team@example.com",
        "checkpoint_expiry_days": 3,
    }
    return synthesize("qa", tmp_path_factory.mktemp("cdk-qa"), environments={"qa": block},
                      environ={"CDK_DEFAULT_ACCOUNT": "111122223333", "CDK_DEFAULT_REGION": "us-east-1"})


def test_every_optional_setting_synthesizes_securely(every_option):
    result = every_option
    stack = result.stack
    assert (stack.account, stack.region) == ("111122223333", "eu-west-1")  # block wins, default fills the gap
    key = stack.config.kms_key_arn
    _, bucket = _data_bucket(result.assertions)
    assert bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"] == [{
        "BucketKeyEnabled": True,
        "ServerSideEncryptionByDefault": {"KMSMasterKeyID": key, "SSEAlgorithm": "aws:kms"},
    }]
    _, table = _one(result.assertions, "AWS::DynamoDB::Table")
    assert table["Properties"]["SSESpecification"] == {"KMSMasterKeyId": key, "SSEEnabled": True, "SSEType": "KMS"}
    result.assertions.has_resource_properties("AWS::SNS::Subscription", {
        "Protocol": "email", "Endpoint": "ml-team@example.com"})
    statements = _statements_by_sid(result)
    assert statements["UseEnvironmentKey"]["Resource"] == key
    assert statements["GrantEnvironmentKeyToVolumes"]["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}
    assert "ec2:CreateNetworkInterface" in statements["TrainingInVpc"]["Action"]
    assert audit.broad_action_problems(result.template) == []
    assert audit.wildcard_resource_problems(result.template, nag.WILDCARD_RESOURCE_ACTIONS) == []
    lint = subprocess.run([str(CFN_LINT), "--ignore-checks", *CFN_LINT_IGNORED, "--", str(result.template_path)],
                          capture_output=True, text=True, check=False)
    assert lint.returncode == 0, lint.stdout
    target = stack.deployment_target()
    assert target.kms_key_id == key
    assert target.vpc == stack.config.vpc
    assert DeploymentTarget.from_environment_variables(target.to_environment_variables()) == target


def test_deployment_target_carries_the_stack_resources(synthesized):
    stack = synthesized["dev"].stack
    target = stack.deployment_target()
    assert target.environment == "dev"
    assert target.job_prefix == "rlt-dev-"
    assert target.guardrails == stack.config.guardrails
    assert target.key_prefix == "rltune"
    assert CHECKPOINT_PREFIX.startswith(target.key_prefix + "/")
    assert stack.resolve(target.bucket) == {"Ref": stack.resolve(stack.bucket.node.default_child.logical_id)}
    assert stack.resolve(target.role_arn) == stack.resolve(stack.sagemaker_role.role_arn)


def test_app_stops_with_a_message_naming_an_unknown_environment():
    context = {**cdk_json_context(), "env": "staging"}
    result = subprocess.run(
        [sys.executable, "app.py"], cwd=ROOT, capture_output=True, text=True, check=False, timeout=120,
        env={**os.environ, "CDK_CONTEXT_JSON": json.dumps(context), "CDK_OUTDIR": "/nonexistent-never-written"},
    )
    assert result.returncode == 1
    assert "unknown environment 'staging'" in result.stderr
    assert "dev, prod" in result.stderr
