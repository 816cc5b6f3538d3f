"""Every security-scanner exception in the app, in one place, each with its specific reason.

Two scanners gate the build (tests/integration/test_stack_security.py):
- cdk-nag's AwsSolutions pack (v3), registered on the app by app.py: a finding fails synthesis unless
  acknowledged here with `Validations.of(construct).acknowledge(...)`;
- checkov on the synthesized template: a failed check fails the test unless skipped here in the
  resource's `Metadata.checkov.skip` with a comment.

Add an exception only after trying the fix, next to the construct it covers, with a reason that would
convince a reviewer. The workflow adds its own in `_workflow` (its constructs are not all there yet).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aws_cdk import Acknowledgment, CfnResource, Stack, Token, Validations
from constructs import IConstruct

from infra.sagemaker_role import ECR_AUTH_ACTIONS, TRAINING_LOG_GROUP, VPC_NETWORK_ACTIONS

if TYPE_CHECKING:
    from infra.stack import RlTuneStack

# Actions that AWS lets no policy scope to a resource. These are the ONLY actions a `Resource: *`
# statement may carry in this app (the tests enforce it). Add to it only with a citation.
WILDCARD_RESOURCE_ACTIONS = frozenset({
    *ECR_AUTH_ACTIONS,  # ECR: no resource types for this action
    "cloudwatch:PutMetricData",  # CloudWatch: no resource types; scoped by the cloudwatch:namespace condition
    # SageMaker training inside a VPC (only when the environment sets `vpc`): ENI management has no
    # resource-level scoping for the service's use, and the Describe* calls never do.
    *VPC_NETWORK_ACTIONS,
    # Step Functions workflow: X-Ray and CloudWatch Logs delivery have no resource-level permissions.
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
})


@dataclass(frozen=True)
class Waiver:
    """One acknowledged finding: the scanner's rule id and why this resource is fine as it is."""

    rule: str
    reason: str


def acknowledge(construct: IConstruct, *waivers: Waiver) -> None:
    """cdk-nag acknowledgements on one construct (they cover its children)."""
    for waiver in waivers:
        Validations.of(construct).acknowledge(Acknowledgment(id=waiver.rule, reason=waiver.reason))


def skip_checkov(resource: CfnResource, *waivers: Waiver) -> None:
    """checkov skips in the resource's template metadata (`Metadata.checkov.skip: [{id, comment}]`)."""
    existing = resource.get_metadata("checkov") or {}
    skips = list(existing.get("skip", []))
    skips.extend({"id": e.rule, "comment": e.reason} for e in waivers)
    resource.add_metadata("checkov", {"skip": skips})


def _cfn(construct: IConstruct) -> CfnResource:
    """The CloudFormation resource an L2 construct wraps."""
    resource = construct.node.default_child
    assert isinstance(resource, CfnResource)
    return resource


def _arn_token(stack: Stack, resource: IConstruct, attribute: str = "Arn") -> str:
    """How cdk-nag writes an intrinsic in a finding id, e.g. `<StorageBucket5CB7C8EA.Arn>`."""
    return f"<{stack.get_logical_id(_cfn(resource))}.{attribute}>"


def _nag_arn(stack: Stack, service: str, resource: str) -> str:
    """An ARN as cdk-nag prints it in a finding id: unresolved pseudo parameters as `<AWS::Region>` etc."""
    parts = []
    for value, pseudo in ((stack.partition, "AWS::Partition"), (stack.region, "AWS::Region"),
                          (stack.account, "AWS::AccountId")):
        parts.append(f"<{pseudo}>" if Token.is_unresolved(value) else value)
    partition, region, account = parts
    return f"arn:{partition}:{service}:{region}:{account}:{resource}"


def apply(stack: RlTuneStack) -> None:
    """Attach every exception to the stack's constructs. Called last in `RlTuneStack.__init__`."""
    _storage(stack)
    _results(stack)
    _sagemaker_role(stack)
    _cdk_internal(stack)
    _workflow(stack)


def _storage(stack: RlTuneStack) -> None:
    skip_checkov(_cfn(stack.access_log_bucket), Waiver(
        "CKV_AWS_18",
        "This is the server-access-log target of the data bucket; logging it would need a third bucket "
        "(or loop into itself). cdk-nag's S1 exempts log-target buckets for the same reason.",
    ))


def _results(stack: RlTuneStack) -> None:
    if stack.encryption_key is not None:
        return  # encrypted with the environment's customer-managed key: nothing to skip
    skip_checkov(_cfn(stack.table), Waiver(
        "CKV_AWS_119",
        "Encrypted at rest with the AWS-managed aws/dynamodb KMS key (every use logged in CloudTrail). The "
        "table holds run summaries (metric values, job names, S3 URIs), nothing regulated; a CMK would cost "
        "$1/month per environment for no added control. Set kms_key_arn in cdk.json to use your CMK instead.",
    ))


def _sagemaker_role(stack: RlTuneStack) -> None:
    bucket_arn = _arn_token(stack, stack.bucket)
    policy = stack.sagemaker.policy
    training_logs = _nag_arn(stack, "logs", f"log-group:{TRAINING_LOG_GROUP}")
    waivers = [
        Waiver(
            f"AwsSolutions-IAM5[Resource::{bucket_arn}/{prefix}*]",
            f"SageMaker writes one key tree per training job below {prefix} (job names are only known at run "
            "time); the role reaches this bucket only below its checkpoint and output prefixes.",
        )
        for prefix in (stack.storage.checkpoint_prefix, stack.storage.output_prefix)
    ]
    waivers.extend([
        Waiver(
            "AwsSolutions-IAM5[Resource::*]",
            "Only actions AWS cannot scope to a resource: ecr:GetAuthorizationToken (image pull), "
            "cloudwatch:PutMetricData (limited by condition to the /aws/sagemaker/* namespaces) and, with a "
            "VPC, SageMaker's ENI management. Enforced by infra.audit.wildcard_resource_problems in the tests.",
        ),
        Waiver(
            f"AwsSolutions-IAM5[Resource::{training_logs}:*]",
            "DescribeLogStreams/CreateLogGroup on SageMaker's fixed training log group; the suffix wildcard is "
            "how IAM names the group's streams. No other log group is reachable.",
        ),
        Waiver(
            f"AwsSolutions-IAM5[Resource::{training_logs}:log-stream:*]",
            "SageMaker creates one log stream per training job (<job name>/algo-1-<timestamp>), so stream "
            "names are unknown in advance; writes stay inside /aws/sagemaker/TrainingJobs.",
        ),
    ])
    acknowledge(policy, *waivers)


def _cdk_internal(stack: RlTuneStack) -> None:
    """Handlers CDK adds itself (dev's auto-delete-objects custom resource)."""
    for construct in stack.node.find_all():
        if not isinstance(construct, CfnResource) or construct.cfn_resource_type != "AWS::Lambda::Function":
            continue
        if "AutoDeleteObjectsCustomResourceProvider" not in construct.node.path:
            continue
        skip_checkov(
            construct,
            Waiver("CKV_AWS_115", "CDK's bucket-emptying handler: CloudFormation invokes it once per bucket "
                                      "on stack deletion (dev only); reserved concurrency adds nothing."),
            Waiver("CKV_AWS_116", "Invoked synchronously by CloudFormation, which reports failures on the "
                                      "stack event; a DLQ would never receive anything."),
            Waiver("CKV_AWS_117", "It calls only the S3 API to empty this stack's buckets; a VPC would need "
                                      "NAT or endpoints and add cost with no isolation gain."),
        )


def _workflow(stack: RlTuneStack) -> None:
    """The workflow's exceptions (workflow issue)."""
    workflow = getattr(stack, "workflow", None)
    if workflow is None:
        return
    prefix = stack.config.resolved_job_prefix
    acknowledge(workflow, *[
        Waiver(
            "AwsSolutions-IAM5[Resource::*]",
            "Only X-Ray (xray:PutTraceSegments/PutTelemetryRecords, for Lambda active tracing and the state "
            "machine's tracing) and CloudWatch Logs delivery for the state machine (logs:*LogDelivery, "
            "Describe*): AWS offers no resource-level permission for them. Enforced by "
            "infra.audit.wildcard_resource_problems in the tests.",
        ),
        Waiver(
            f"AwsSolutions-IAM5[Resource::{_nag_string(stack, workflow.tuning_job_arns)}]",
            f"Tuning job names are derived per execution at run time; every one starts with this environment's "
            f"prefix '{prefix}', so the workflow can create, describe and stop only its own tuning jobs.",
        ),
        Waiver(
            f"AwsSolutions-IAM5[Resource::{_nag_string(stack, workflow.training_job_arns)}]",
            f"SageMaker names each child training job '<tuning job>-NNN-<hash>', so they share the prefix "
            f"'{prefix}'; Record and Stop only DescribeTrainingJob on them (cost and best-job details).",
        ),
        Waiver(
            f"AwsSolutions-IAM5[Resource::{_nag_string(stack, workflow.execution_arns)}]",
            "Execution names are chosen per run; the stop Lambda reads the input and history of this state "
            "machine's executions only (DescribeExecution, GetExecutionHistory).",
        ),
        *[
            Waiver(
                f"AwsSolutions-IAM5[Resource::{_arn_token(stack, fn)}:*]",
                "CDK's LambdaInvoke grant covers the function's versions and aliases (<arn>:*); the state "
                "machine can invoke only this one function of its own workflow.",
            )
            for fn in (workflow.functions["start"], workflow.functions["record"])
        ],
    ])
    for fn in workflow.functions.values():
        waivers = [
            Waiver("CKV_AWS_115", "Invoked at most a few times per tuning run (Step Functions / one EventBridge "
                                  "rule); reserved concurrency would only take capacity from the account "
                                  "(new accounts cannot reserve any)."),
            Waiver("CKV_AWS_117", "Calls only AWS APIs (SageMaker, DynamoDB, EventBridge, Step Functions); a VPC "
                                  "would need NAT or five interface endpoints and add cost with no isolation gain."),
            Waiver("CKV_AWS_173", "The environment variables hold resource names and ARNs (no secrets); they are "
                                  "encrypted at rest with the AWS-managed Lambda key."),
        ]
        if fn is not workflow.functions["stop"]:
            waivers.append(Waiver(
                "CKV_AWS_116", "Invoked synchronously by Step Functions, which retries it and routes every "
                               "failure to its Catch (Record-with-failure, then Fail); a DLQ would receive "
                               "nothing. The asynchronously invoked stop Lambda has a DLQ."))
        skip_checkov(_cfn(fn), *waivers)

    for log_group in (workflow.log_group, *workflow.function_log_groups):
        skip_checkov(_cfn(log_group), Waiver(
            "CKV_AWS_158",
            "CloudWatch Logs encrypts every log group at rest by default; these hold Lambda/state-machine "
            "diagnostics (job names, statuses), no secrets. A CMK needs a key policy granting the logs service, "
            "which an imported environment key cannot be given from here.",
        ))
    skip_checkov(_cfn(workflow.dead_letter_queue), Waiver(
        "CKV_AWS_27",
        "Encrypted with SQS-managed SSE (SqsManagedSseEnabled). EventBridge cannot deliver to a queue under the "
        "AWS-managed aws/sqs KMS key, and the messages are only failed stop events (execution ARNs).",
    ))


def _nag_string(stack: Stack, value: str) -> str:
    """A (possibly token-bearing) string as cdk-nag writes it in finding ids: `<AWS::Region>`, `<Logical.Attr>`."""

    def render(node: object) -> str:
        if isinstance(node, str):
            return node
        if isinstance(node, dict) and "Ref" in node:
            return f"<{node['Ref']}>"
        if isinstance(node, dict) and "Fn::GetAtt" in node:
            return f"<{'.'.join(node['Fn::GetAtt'])}>"
        if isinstance(node, dict) and "Fn::Join" in node:
            separator, parts = node["Fn::Join"]
            return separator.join(render(part) for part in parts)
        raise ValueError(f"cannot render {node!r} as a cdk-nag resource string")

    return render(stack.resolve(value))
