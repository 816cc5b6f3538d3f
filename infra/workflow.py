"""The tuning workflow: a Step Functions state machine and three Lambdas that start, watch and record a run.

    Start ──> Wait ──> Describe ──> Choice ─ InProgress/Stopping ─> Wait
      │                  │            ├─ Completed ──────> Record (output = the record)
      │                  │            └─ Failed/Stopped ─> RecordFailedRun ─> Fail TuningJobFailed
      ├─ InvalidConfig ─> RecordRejected ─> Fail InvalidConfig
      └─ any other error (Start, Describe) ─> RecordAfterError (stops a running job) ─> Fail <error name>

Around it:
- an EventBridge rule on this state machine's ABORTED and TIMED_OUT executions runs the stop Lambda,
  which stops the execution's tuning job and records the stop (no orphans);
- a CloudWatch alarm on failed, timed-out and aborted executions notifies the environment's topic.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra import lambda_assets
from rltune.environments import DeploymentTarget, EnvironmentConfig, Guardrails
from rltune.steps import workflow_max_tuning_runtime

WORKFLOW_MARGIN_SECONDS = 3600  # Start, the last poll and Record, with room for retries

# Lambda errors worth retrying: the service's own, and SageMaker's throttling/internal errors (re-raised by name).
LAMBDA_TRANSIENT_ERRORS = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    "Lambda.ClientExecutionTimeoutException",
]
SAGEMAKER_TRANSIENT_ERRORS = ["SageMakerThrottling", "SageMakerUnavailable"]
# The aws-sdk integration names errors "<Service>.<ErrorName>", always with an "Exception" suffix (Step Functions
# docs, "AWS SDK service integrations"). Throttling and internal errors are not in SageMaker's error model, so
# they may also surface as the SDK's generic service exception (AWS's own SageMaker samples retry
# "SageMaker.AmazonSageMakerException"). Modeled errors (ResourceNotFoundException...) are not retried.
SDK_TRANSIENT_ERRORS = [
    "SageMaker.ThrottlingException",
    "SageMaker.InternalFailureException",
    "SageMaker.ServiceUnavailableException",
    "SageMaker.SageMakerException",
    "SageMaker.AmazonSageMakerException",
]


def max_tuning_runtime_seconds(guardrails: Guardrails) -> int:
    """The longest tuning job this environment can start (`rltune.steps.workflow_max_tuning_runtime`, which
    `rltune start` checks locally too)."""
    return workflow_max_tuning_runtime(guardrails)


def workflow_timeout_seconds(config: EnvironmentConfig) -> int:
    return max_tuning_runtime_seconds(config.guardrails) + WORKFLOW_MARGIN_SECONDS + 2 * config.poll_interval_seconds


class TuningWorkflow(Construct):
    """The workflow of one environment. Attributes: `state_machine`, `functions` ({start, record, stop}),
    `alarm`, `abort_rule`, `dead_letter_queue`, `log_group`."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        target: DeploymentTarget,
        table: dynamodb.ITable,
        topic: sns.ITopic,
        sagemaker_role: iam.IRole,
        encryption_key: kms.IKey | None = None,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.config = config
        self.removal_policy = removal_policy
        self.retention = getattr(logs.RetentionDays, _retention_name(config.log_retention_days))
        prefix = config.resolved_job_prefix.lower()
        tuning_jobs = stack.format_arn(service="sagemaker", resource="hyper-parameter-tuning-job",
                                       resource_name=f"{prefix}*")
        training_jobs = stack.format_arn(service="sagemaker", resource="training-job", resource_name=f"{prefix}*")
        default_bus = stack.format_arn(service="events", resource="event-bus", resource_name="default")
        self.tuning_job_arns = tuning_jobs
        self.training_job_arns = training_jobs
        self.max_tuning_runtime = max_tuning_runtime_seconds(config.guardrails)

        environment = {
            **target.to_environment_variables(),
            "RLTUNE_TABLE_NAME": table.table_name,
            "RLTUNE_EVENT_BUS": "default",
            "RLTUNE_MAX_TUNING_RUNTIME_SECONDS": str(self.max_tuning_runtime),
            "POWERTOOLS_SERVICE_NAME": "rltune-workflow",
            "POWERTOOLS_LOG_LEVEL": "INFO",
        }
        runtime = lambda_assets.lambda_runtime()

        # ---- Lambdas ------------------------------------------------------------------------------------
        self.function_log_groups: list[logs.LogGroup] = []
        self.dead_letter_queue = sqs.Queue(
            self, "StopDeadLetters", enforce_ssl=True, encryption=sqs.QueueEncryption.SQS_MANAGED,
            retention_period=Duration.days(14), removal_policy=removal_policy,
        )
        self.functions: dict[str, lambda_.Function] = {
            "start": self._function("Start", "start", "lambdas.start_handler", runtime, environment,
                                    memory=512, timeout=Duration.seconds(60)),
            "record": self._function("Record", "record", "lambdas.record_handler", runtime, environment,
                                     memory=512, timeout=Duration.minutes(5)),
            "stop": self._function("Stop", "stop", "lambdas.stop_handler", runtime, environment,
                                   memory=512, timeout=Duration.minutes(5), dead_letter_queue=self.dead_letter_queue),
        }
        start_fn, record_fn, stop_fn = (self.functions[k] for k in ("start", "record", "stop"))

        start_fn.add_to_role_policy(iam.PolicyStatement(
            sid="CreateTuningJobs",
            actions=["sagemaker:CreateHyperParameterTuningJob", "sagemaker:DescribeHyperParameterTuningJob",
                     "sagemaker:AddTags"],
            resources=[tuning_jobs],
        ))
        start_fn.add_to_role_policy(iam.PolicyStatement(
            sid="PassSageMakerRole",
            actions=["iam:PassRole"],
            resources=[sagemaker_role.role_arn],
            conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
        ))
        if encryption_key is not None:  # training volumes/output under the environment's CMK
            encryption_key.grant(start_fn, "kms:CreateGrant", "kms:DescribeKey")
        for fn in (record_fn, stop_fn):
            fn.add_to_role_policy(iam.PolicyStatement(
                sid="ReadAndStopTuningJobs",
                actions=["sagemaker:DescribeHyperParameterTuningJob",
                         "sagemaker:ListTrainingJobsForHyperParameterTuningJob",
                         "sagemaker:StopHyperParameterTuningJob"],
                resources=[tuning_jobs],
            ))
            fn.add_to_role_policy(iam.PolicyStatement(
                sid="DescribeTrainingJobs", actions=["sagemaker:DescribeTrainingJob"], resources=[training_jobs],
            ))
            fn.add_to_role_policy(iam.PolicyStatement(
                sid="WriteRecord", actions=["dynamodb:PutItem"], resources=[table.table_arn],
            ))
            fn.add_to_role_policy(iam.PolicyStatement(
                sid="PutRecordEvent", actions=["events:PutEvents"], resources=[default_bus],
            ))
            if encryption_key is not None:  # a results table under the environment's CMK
                encryption_key.grant(fn, "kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey")

        # ---- State machine ------------------------------------------------------------------------------
        self.log_group = logs.LogGroup(
            self, "StateMachineLogs",
            log_group_name=f"/aws/vendedlogs/states/rltune-{config.name}-workflow-{stack.stack_name}",
            retention=self.retention, removal_policy=removal_policy,
        )
        definition = self._definition(start_fn, record_fn, tuning_jobs)
        self.state_machine = sfn.StateMachine(
            self, "StateMachine",
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            state_machine_type=sfn.StateMachineType.STANDARD,
            timeout=Duration.seconds(workflow_timeout_seconds(config)),
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
            comment=f"rltune {config.name}: start a SageMaker tuning job, wait for it, record the best job",
        )

        # Stop's history fallback reads this state machine's executions only.
        execution_arns = stack.format_arn(
            service="states", resource="execution",
            resource_name=f"{self.state_machine.state_machine_name}:*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        self.execution_arns = execution_arns
        stop_fn.add_to_role_policy(iam.PolicyStatement(
            sid="ReadExecutions", actions=["states:DescribeExecution", "states:GetExecutionHistory"],
            resources=[execution_arns],
        ))

        # ---- No orphans: aborted or timed-out executions stop their tuning job -----------------------------
        self.abort_rule = events.Rule(
            self, "StopOrphansRule",
            description="Stops the tuning job of an rltune execution that was aborted or timed out",
            event_pattern=events.EventPattern(
                source=["aws.states"],
                detail_type=["Step Functions Execution Status Change"],
                detail={"stateMachineArn": [self.state_machine.state_machine_arn], "status": ["ABORTED", "TIMED_OUT"]},
            ),
            targets=[targets.LambdaFunction(stop_fn, dead_letter_queue=self.dead_letter_queue, retry_attempts=8,
                                            max_event_age=Duration.hours(6))],
        )

        # ---- Alarm ---------------------------------------------------------------------------------------
        metrics = {
            "failed": self.state_machine.metric_failed(period=Duration.minutes(5), statistic="Sum"),
            "timedout": self.state_machine.metric_timed_out(period=Duration.minutes(5), statistic="Sum"),
            "aborted": self.state_machine.metric_aborted(period=Duration.minutes(5), statistic="Sum"),
        }
        self.alarm = cloudwatch.Alarm(
            self, "ExecutionsNotSucceededAlarm",
            alarm_description=f"rltune {config.name}: a tuning workflow execution failed, timed out or was aborted",
            metric=cloudwatch.MathExpression(expression="failed + timedout + aborted", using_metrics=metrics,
                                             period=Duration.minutes(5), label="Executions not succeeded"),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.alarm.add_alarm_action(cloudwatch_actions.SnsAction(topic))
        self.dead_letter_alarm = cloudwatch.Alarm(
            self, "StopDeadLettersAlarm",
            alarm_description=f"rltune {config.name}: the stop Lambda could not stop a tuning job (see the DLQ)",
            metric=self.dead_letter_queue.metric_approximate_number_of_messages_visible(period=Duration.minutes(5)),
            threshold=1, evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.dead_letter_alarm.add_alarm_action(cloudwatch_actions.SnsAction(topic))

    # ------------------------------------------------------------------------------------------------------

    def _function(
        self, construct_id: str, name: str, handler_module: str, runtime: lambda_.Runtime,
        environment: Mapping[str, str], *, memory: int, timeout: Duration,
        dead_letter_queue: sqs.IQueue | None = None,
    ) -> lambda_.Function:
        asset = lambda_assets.build_asset(name, handler_module, runtime)
        log_group = logs.LogGroup(self, f"{construct_id}Logs", retention=self.retention,
                                  removal_policy=self.removal_policy)
        self.function_log_groups.append(log_group)
        # Its own role, with logs limited to its own group (not the AWS-managed basic execution policy).
        role = iam.Role(self, f"{construct_id}Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                        description=f"rltune {self.config.name} workflow: {name} Lambda")
        role.add_to_policy(iam.PolicyStatement(
            sid="OwnLogGroup", actions=["logs:CreateLogStream", "logs:PutLogEvents"],
            resources=[log_group.log_group_arn],
        ))
        return lambda_.Function(
            self, construct_id,
            description=f"rltune {self.config.name} workflow: {name}",
            runtime=runtime,
            architecture=lambda_assets.ARCHITECTURE,
            code=lambda_assets.code(asset),
            handler=asset.handler,
            memory_size=memory,
            timeout=timeout,
            environment=dict(environment),
            tracing=lambda_.Tracing.ACTIVE,
            log_group=log_group,
            role=role,
            dead_letter_queue=dead_letter_queue,
            retry_attempts=2 if dead_letter_queue is not None else None,
        )

    def _definition(
        self, start_fn: lambda_.IFunction, record_fn: lambda_.IFunction, tuning_jobs: str
    ) -> sfn.IChainable:
        execution = {
            "execution_arn": sfn.JsonPath.string_at("$$.Execution.Id"),
            "execution_name": sfn.JsonPath.string_at("$$.Execution.Name"),
        }

        record_failed = sfn.Fail(self, "RecordFailed", error="RecordFailed", cause_path="$.record_error.Cause",
                                 comment="The run could not be recorded (see the Record task's error)")

        def record_task(state_id: str, payload: Mapping[str, object], result_path: str) -> tasks.LambdaInvoke:
            task = tasks.LambdaInvoke(
                self, state_id, lambda_function=record_fn, payload=sfn.TaskInput.from_object(dict(payload)),
                payload_response_only=True, retry_on_service_exceptions=False, result_path=result_path,
            )
            _retry_lambda(task)
            task.add_catch(record_failed, errors=["States.ALL"], result_path="$.record_error")
            return task

        after_error_payload = {**execution, "input": sfn.JsonPath.object_at("$$.Execution.Input"),
                               "error": sfn.JsonPath.object_at("$.error")}
        rejected = record_task("RecordRejected", after_error_payload, "$.record").next(
            sfn.Fail(self, "InvalidConfigFail", error="InvalidConfig", cause_path="$.record.failure",
                     comment="The payload is invalid; the cause lists every problem. Nothing was started."))
        after_error = record_task("RecordAfterError", after_error_payload, "$.record").next(
            sfn.Fail(self, "WorkflowErrorFail", error_path="$.error.Error", cause_path="$.record.failure",
                     comment="An error ended the run; its tuning job was stopped and the run recorded."))

        start = tasks.LambdaInvoke(
            self, "StartTuningJob", lambda_function=start_fn,
            payload=sfn.TaskInput.from_object({**execution, "payload": sfn.JsonPath.entire_payload}),
            payload_response_only=True, retry_on_service_exceptions=False, result_path="$",
            comment="Validate the payload, then CreateHyperParameterTuningJob (idempotent per execution)",
        )
        _retry_lambda(start)
        start.add_catch(rejected, errors=["InvalidConfig"], result_path="$.error")
        start.add_catch(after_error, errors=["States.ALL"], result_path="$.error")

        wait = sfn.Wait(self, "WaitForTuningJob",
                        time=sfn.WaitTime.duration(Duration.seconds(self.config.poll_interval_seconds)))
        describe = tasks.CallAwsService(
            self, "DescribeTuningJob",
            service="sagemaker", action="describeHyperParameterTuningJob",
            parameters={"HyperParameterTuningJobName": sfn.JsonPath.string_at("$.tuning_job_name")},
            iam_resources=[tuning_jobs], iam_action="sagemaker:DescribeHyperParameterTuningJob",
            # Only what the loop needs, so the state stays small. BestTrainingJob is absent until a job
            # succeeds and a missing JSONPath fails the state, so the best job is read by Record/`rltune status`.
            result_selector={
                "status": sfn.JsonPath.string_at("$.HyperParameterTuningJobStatus"),
                "counters": sfn.JsonPath.object_at("$.TrainingJobStatusCounters"),
                "objectives": sfn.JsonPath.object_at("$.ObjectiveStatusCounters"),
            },
            result_path="$.poll",
        )
        describe.add_retry(errors=SDK_TRANSIENT_ERRORS, interval=Duration.seconds(2), max_attempts=8,
                           backoff_rate=2, max_delay=Duration.minutes(5), jitter_strategy=sfn.JitterType.FULL)
        describe.add_catch(after_error, errors=["States.ALL"], result_path="$.error")

        tuned_payload = {**execution, "experiment": sfn.JsonPath.string_at("$.experiment"),
                         "tuning_job_name": sfn.JsonPath.string_at("$.tuning_job_name")}
        record = record_task("RecordResult", tuned_payload, "$")
        record_failed_run = record_task("RecordFailedRun", tuned_payload, "$.record").next(
            sfn.Fail(self, "TuningJobFailed", error="TuningJobFailed", cause_path="$.record.failure",
                     comment="SageMaker's FailureReason (or that the job was stopped)"))

        choice = (
            sfn.Choice(self, "TuningJobStatus")
            .when(sfn.Condition.or_(sfn.Condition.string_equals("$.poll.status", "InProgress"),
                                    sfn.Condition.string_equals("$.poll.status", "Stopping")), wait)
            .when(sfn.Condition.string_equals("$.poll.status", "Completed"), record)
            .otherwise(record_failed_run)
        )
        return start.next(wait).next(describe).next(choice)


def _retry_lambda(task: tasks.LambdaInvoke) -> None:
    task.add_retry(errors=LAMBDA_TRANSIENT_ERRORS, interval=Duration.seconds(2), max_attempts=6, backoff_rate=2,
                   max_delay=Duration.minutes(1), jitter_strategy=sfn.JitterType.FULL)
    task.add_retry(errors=SAGEMAKER_TRANSIENT_ERRORS, interval=Duration.seconds(2), max_attempts=8, backoff_rate=2,
                   max_delay=Duration.minutes(5), jitter_strategy=sfn.JitterType.FULL)


def _retention_name(days: int) -> str:
    names = {1: "ONE_DAY", 3: "THREE_DAYS", 5: "FIVE_DAYS", 7: "ONE_WEEK", 14: "TWO_WEEKS", 30: "ONE_MONTH",
             60: "TWO_MONTHS", 90: "THREE_MONTHS", 120: "FOUR_MONTHS", 150: "FIVE_MONTHS", 180: "SIX_MONTHS",
             365: "ONE_YEAR", 400: "THIRTEEN_MONTHS", 545: "EIGHTEEN_MONTHS", 731: "TWO_YEARS",
             1096: "THREE_YEARS", 1827: "FIVE_YEARS", 2192: "SIX_YEARS", 2557: "SEVEN_YEARS",
             2922: "EIGHT_YEARS", 3288: "NINE_YEARS", 3653: "TEN_YEARS"}
    return names[days]
