"""The IAM audits the stack tests rely on must catch what they claim to catch."""

from __future__ import annotations

from infra import audit

ROLE = "SageMakerRole574B07EB"


def _template(*statements, kind="AWS::IAM::Policy", key="PolicyDocument"):
    return {"Resources": {"P": {"Type": kind, "Properties": {key: {"Statement": list(statements)}}}}}


def _allow(action, resource="arn:aws:s3:::b/*", **extra):
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


PASS_ROLE_OK = _allow("iam:PassRole", {"Fn::GetAtt": [ROLE, "Arn"]},
                      Condition={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}})


def test_broad_actions_are_caught_in_every_kind_of_policy():
    assert audit.broad_action_problems(_template(_allow("*")))
    assert audit.broad_action_problems(_template(_allow(["s3:GetObject", "SageMaker:*"])))
    assert audit.broad_action_problems(_template(_allow("s3:*")))  # a whole service, identity policy
    inline = {"Resources": {"R": {"Type": "AWS::IAM::Role", "Properties": {
        "Policies": [{"PolicyName": "p", "PolicyDocument": {"Statement": [_allow("*")]}}]}}}}
    assert audit.broad_action_problems(inline)
    assert audit.broad_action_problems(_template({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}))
    bucket_policy = _template(_allow("*"), kind="AWS::S3::BucketPolicy")
    assert audit.broad_action_problems(bucket_policy)


def test_broad_actions_allow_tls_denials_and_specific_grants():
    deny_plain_http = {"Effect": "Deny", "Action": "s3:*", "Principal": {"AWS": "*"}, "Resource": "*",
                       "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
    assert audit.broad_action_problems(_template(deny_plain_http, kind="AWS::S3::BucketPolicy")) == []
    assert audit.broad_action_problems(_template(_allow(["s3:GetObject", "sagemaker:DescribeTrainingJob"]))) == []


def test_wildcard_resources_must_be_on_the_short_list():
    allowed = frozenset({"ecr:GetAuthorizationToken"})
    assert audit.wildcard_resource_problems(_template(_allow("ecr:GetAuthorizationToken", "*")), allowed) == []
    problems = audit.wildcard_resource_problems(_template(_allow(["ecr:GetAuthorizationToken", "s3:GetObject"],
                                                                 "*")), allowed)
    assert len(problems) == 1
    assert "s3:GetObject" in problems[0]
    assert audit.wildcard_resource_owners(_template(_allow("ecr:GetAuthorizationToken", ["*"]))) == {"P"}


def test_pass_role_must_name_the_sagemaker_role_with_the_service_condition():
    assert audit.pass_role_problems(_template(PASS_ROLE_OK), ROLE) == []
    assert audit.pass_role_problems(_template({**PASS_ROLE_OK, "Resource": "*"}), ROLE)
    assert audit.pass_role_problems(_template({**PASS_ROLE_OK, "Resource": {"Fn::GetAtt": ["OtherRole", "Arn"]}}),
                                    ROLE)
    assert audit.pass_role_problems(_template({**PASS_ROLE_OK, "Condition": {}}), ROLE)
    wrong_service = {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}
    assert audit.pass_role_problems(_template({**PASS_ROLE_OK, "Condition": wrong_service}), ROLE)
    assert audit.pass_role_problems(_template({**PASS_ROLE_OK, "Action": "iam:*"}), ROLE)
    bundled = {**PASS_ROLE_OK, "Action": ["iam:PassRole", "sagemaker:CreateHyperParameterTuningJob"],
               "Resource": [{"Fn::GetAtt": [ROLE, "Arn"]}, "arn:aws:sagemaker:*:*:hyper-parameter-tuning-job/x*"]}
    assert audit.pass_role_problems(_template(bundled), ROLE)
