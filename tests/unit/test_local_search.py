"""The local backend's reading of the SageMaker request, its search space, and SageMaker's metric semantics."""

from __future__ import annotations

import copy
import math

import optuna
import pytest

from rltune import metrics
from rltune.hyperparameters import encode_value
from rltune.local import search
from rltune.local.spec import RequestError, apply_overrides, parse_request
from rltune.local.trial import MetricScraper, final_metrics, sagemaker_hyperparameters


def make_request(**config_overrides):
    """A CreateHyperParameterTuningJob request shaped like rltune.request.build_tuning_request's output."""
    config = {
        "Strategy": "Bayesian",
        "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "episode_reward_mean"},
        "ResourceLimits": {"MaxParallelTrainingJobs": 2, "MaxNumberOfTrainingJobs": 4, "MaxRuntimeInSeconds": 3600},
        "ParameterRanges": {
            "IntegerParameterRanges": [{"Name": "rl.training.config.num_epochs", "MinValue": "2", "MaxValue": "64",
                                        "ScalingType": "Logarithmic"}],
            "ContinuousParameterRanges": [
                {"Name": "rl.training.config.lr", "MinValue": "0.0001", "MaxValue": "0.01",
                 "ScalingType": "Logarithmic"},
                {"Name": "rl.training.config.gamma", "MinValue": "0.9", "MaxValue": "0.9999",
                 "ScalingType": "ReverseLogarithmic"},
                {"Name": "rl.training.config.vf_loss_coeff", "MinValue": "0.1", "MaxValue": "1.0",
                 "ScalingType": "Auto"},
            ],
            "CategoricalParameterRanges": [{"Name": "rl.rl_module.fcnet_activation", "Values": ["relu", "tanh"]}],
        },
        "TrainingJobEarlyStoppingType": "Off",
    }
    config.update(config_overrides)
    return {
        "HyperParameterTuningJobName": "rlt-local-test-0123abcd",
        "HyperParameterTuningJobConfig": config,
        "TrainingJobDefinition": {
            "AlgorithmSpecification": {"TrainingImage": "x", "TrainingInputMode": "File",
                                       "MetricDefinitions": metrics.metric_definitions()},
            "StaticHyperParameters": {"rl.algorithm": "PPO", "rl.stop.num_env_steps_sampled_lifetime": "200000"},
            "StoppingCondition": {"MaxRuntimeInSeconds": 600},
            "ResourceConfig": {"InstanceType": "ml.c5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
        },
    }


# ---- the request ----------------------------------------------------------------------------------------------


def test_parse_request_keeps_types_scaling_limits_and_criteria():
    request = make_request(TuningJobCompletionCriteria={
        "TargetObjectiveMetricValue": 450.0, "BestObjectiveNotImproving": {"MaxNumberOfTrainingJobsNotImproving": 3}},
        RandomSeed=7)
    spec = parse_request(request)
    kinds = {r.name: (r.kind, r.effective_scaling) for r in spec.ranges}
    assert kinds == {
        "rl.training.config.num_epochs": ("Integer", "Logarithmic"),
        "rl.training.config.lr": ("Continuous", "Logarithmic"),
        "rl.training.config.gamma": ("Continuous", "ReverseLogarithmic"),
        "rl.training.config.vf_loss_coeff": ("Continuous", "Linear"),  # Auto means Linear locally
        "rl.rl_module.fcnet_activation": ("Categorical", "Linear"),
    }
    assert (spec.max_jobs, spec.max_parallel_jobs, spec.max_runtime_s) == (4, 2, 3600)
    assert (spec.target_objective, spec.max_jobs_not_improving, spec.random_seed) == (450.0, 3, 7)
    assert spec.training_max_runtime_s == 600
    assert spec.reaches_target(450.0)
    assert not spec.reaches_target(449.9)
    # SageMaker's "improving": beats the best by at least 1%.
    assert spec.improves(101.5, 100.0)
    assert not spec.improves(100.9, 100.0)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r["HyperParameterTuningJobConfig"].update(Strategy="Evolution"), "Strategy"),
        (lambda r: r["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"].update(
            MetricName="made_up"), "MetricDefinitions"),
        (lambda r: r["HyperParameterTuningJobConfig"]["ParameterRanges"]["ContinuousParameterRanges"][0].update(
            MinValue="0"), "Logarithmic scaling needs MinValue > 0"),
        (lambda r: r["HyperParameterTuningJobConfig"]["ParameterRanges"]["ContinuousParameterRanges"][1].update(
            MaxValue="1.0"), "ReverseLogarithmic needs"),
        (lambda r: r["HyperParameterTuningJobConfig"].update(Strategy="Grid"), "Grid strategy takes categorical"),
        (lambda r: r["HyperParameterTuningJobConfig"].update(Strategy="Hyperband"), "MaxResource: set it"),
        (lambda r: r["TrainingJobDefinition"]["StaticHyperParameters"].update({"rl.seed": 3}), "string values only"),
        (lambda r: r["TrainingJobDefinition"]["StaticHyperParameters"].update({"rl.training.config.lr": "0.1"}),
         "is also tuned"),
    ],
)
def test_parse_request_rejects_what_sagemaker_rejects_naming_the_field(mutate, message):
    request = make_request()
    mutate(request)
    with pytest.raises(RequestError, match=message):
        parse_request(request)


def test_overrides_cap_jobs_and_budget_without_loosening_the_payload():
    request = make_request()
    capped = apply_overrides(request, max_jobs=2, max_parallel_jobs=1, budget_steps=5000)
    assert capped["HyperParameterTuningJobConfig"]["ResourceLimits"]["MaxNumberOfTrainingJobs"] == 2
    assert capped["HyperParameterTuningJobConfig"]["ResourceLimits"]["MaxParallelTrainingJobs"] == 1
    static = capped["TrainingJobDefinition"]["StaticHyperParameters"]
    assert static["rl.stop.num_env_steps_sampled_lifetime"] == "5000"
    assert request["TrainingJobDefinition"]["StaticHyperParameters"]["rl.stop.num_env_steps_sampled_lifetime"] == \
        "200000", "the original request is untouched"
    looser = apply_overrides(request, budget_steps=10**9)
    assert looser["TrainingJobDefinition"]["StaticHyperParameters"]["rl.stop.num_env_steps_sampled_lifetime"] == \
        "200000"


# ---- the search space -----------------------------------------------------------------------------------------


def test_suggestions_keep_types_bounds_and_round_trip_for_resume():
    spec = parse_request(make_request(RandomSeed=1))
    study = search.make_study(spec, seed=1)
    assert isinstance(study.sampler, optuna.samplers.TPESampler)
    for _ in range(30):
        trial = study.ask()
        values = search.suggest(trial, spec)
        assert isinstance(values["rl.training.config.num_epochs"], int)
        assert 2 <= values["rl.training.config.num_epochs"] <= 64
        assert 1e-4 <= values["rl.training.config.lr"] <= 1e-2
        assert 0.9 <= values["rl.training.config.gamma"] <= 0.9999
        assert values["rl.rl_module.fcnet_activation"] in ("relu", "tanh")
        strings = search.tuned_strings(values)
        assert all(isinstance(v, str) for v in strings.values())
        assert strings["rl.training.config.num_epochs"] == encode_value(values["rl.training.config.num_epochs"])
        params = search.optuna_params(spec, values)
        assert params.keys() == trial.params.keys()
        assert all(math.isclose(params[k], trial.params[k]) if isinstance(params[k], float) else
                   params[k] == trial.params[k] for k in params)
        study.tell(trial, 0.0)


def test_reverse_logarithmic_searches_one_minus_x_on_a_log_scale():
    spec = parse_request(make_request())
    gamma = next(r for r in spec.ranges if r.name == "rl.training.config.gamma")
    name, dist = search.distribution(gamma)
    assert name == "rl.training.config.gamma" + search.REVERSE_LOG_SUFFIX
    assert dist.log
    assert math.isclose(dist.low, 1 - 0.9999)
    assert math.isclose(dist.high, 1 - 0.9)
    # 1 - gamma spans 1e-4..1e-1 on a log scale: two of its three decades are gamma >= 0.99.
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    gammas = [search.suggest(study.ask(), spec)["rl.training.config.gamma"] for _ in range(400)]
    share_near_one = sum(g >= 0.99 for g in gammas) / len(gammas)
    assert 0.6 < share_near_one < 0.73  # a linear scale would put ~9% there


def test_strategies_map_to_samplers_and_pruners():
    random_spec = parse_request(make_request(Strategy="Random"))
    assert isinstance(search.make_sampler(random_spec, 0), optuna.samplers.RandomSampler)
    grid_request = make_request(Strategy="Grid", ParameterRanges={"CategoricalParameterRanges": [
        {"Name": "rl.training.config.lr", "Values": ["0.001", "0.0003"]},
        {"Name": "rl.rl_module.fcnet_activation", "Values": ["relu", "tanh", "linear"]}]})
    del grid_request["HyperParameterTuningJobConfig"]["ResourceLimits"]["MaxNumberOfTrainingJobs"]
    grid = parse_request(grid_request)
    assert grid.grid_size() == 6
    assert isinstance(search.make_sampler(grid, 0), optuna.samplers.GridSampler)  # a subclass
    hyperband = parse_request(make_request(Strategy="Hyperband", StrategyConfig={
        "HyperbandStrategyConfig": {"MinResource": 2, "MaxResource": 20}}))
    pruner = search.make_pruner(hyperband)
    assert isinstance(pruner, optuna.pruners.HyperbandPruner)
    assert (pruner._min_resource, pruner._max_resource) == (2, 20)
    auto = parse_request(make_request(TrainingJobEarlyStoppingType="Auto"))
    assert isinstance(search.make_pruner(auto), search.MedianRunningAveragePruner)
    assert isinstance(search.make_pruner(parse_request(make_request())), optuna.pruners.NopPruner)


def _finished_trial(study, curve):
    trial = study.ask()
    for step, value in enumerate(curve, start=1):
        trial.report(value, step)
    study.tell(trial, curve[-1])


def test_median_rule_compares_with_the_median_of_running_averages():
    """SageMaker: stop when the objective at epoch e is worse than the median of earlier jobs' running averages."""
    study = optuna.create_study(direction="maximize", pruner=search.MedianRunningAveragePruner(maximize=True))
    # Running averages at epoch 3: (10+20+30)/3 = 20, (0+0+90)/3 = 30, (5+5+5)/3 = 5 -> median 20.
    _finished_trial(study, [10, 20, 30])
    _finished_trial(study, [0, 0, 90])
    _finished_trial(study, [5, 5, 5])
    trial = study.ask()
    trial.report(1, 1)
    trial.report(1, 2)
    trial.report(21, 3)
    assert not trial.should_prune(), "21 beats the median running average 20 (a last-value median would be 30)"
    trial.report(19, 4)  # at epoch 4 no earlier job has data: never stop without evidence
    assert not trial.should_prune()
    other = study.ask()
    other.report(1, 1)
    other.report(1, 2)
    other.report(19, 3)
    assert other.should_prune()


def test_median_rule_minimize_and_needs_two_previous_jobs():
    study = optuna.create_study(direction="minimize", pruner=search.MedianRunningAveragePruner(maximize=False))
    _finished_trial(study, [1.0, 1.0])
    trial = study.ask()
    trial.report(100.0, 2)
    assert not trial.should_prune(), "one previous job is not enough evidence"
    _finished_trial(study, [2.0, 2.0])
    trial2 = study.ask()
    trial2.report(1.4, 2)
    assert not trial2.should_prune()
    trial2.report(1.6, 3)
    trial3 = study.ask()
    trial3.report(1.6, 2)
    assert trial3.should_prune(), "minimizing: 1.6 is worse than the median running average 1.5"


# ---- metrics, the SageMaker way -------------------------------------------------------------------------------

RECORDED_STDOUT = """\
2026-12-04 16:00:01,123 INFO worker.py:1832 -- Started a local Ray instance.
(pid=4242) episode_reward_mean: 999.0   <- an old RLlib pretty-print; not our format
[rltune] episode_reward_mean=9.5;
[rltune] episode_return_mean=9.5;
[rltune] num_env_steps_sampled_lifetime=4000.0;
[rltune] training_iteration=1.0;
[rltune] episode_reward_mean_smoothed=777.0;
some progress bar [rltune] episode_reward_mean=22.25; trailing text
[rltune] num_env_steps_sampled_lifetime=8000.0;
[rltune] training_iteration=2.0;
[rltune] learning_rate=3e-05;
[rltune] episode_reward_mean=1.5e+02;
[rltune] num_env_steps_sampled_lifetime=12000.0;
[rltune] training_iteration=3.0;
[rltune] episode_reward_mean=-4.0;
[rltune] episode_reward_mean=nan;
[rltune] training_iteration=4.0;
"""


def test_metric_parsing_has_sagemakers_semantics_on_a_recorded_stdout(tmp_path):
    log = tmp_path / "train.log"
    log.write_text(RECORDED_STDOUT)
    scraped = final_metrics(log, metrics.metric_definitions())
    # Every match of the regex counts, anywhere in a line; decoys with a longer name or another format do not.
    assert scraped["episode_reward_mean"] == [9.5, 22.25, 150.0, -4.0]
    # The final value is the LAST one emitted, not the best and not the mean.
    assert scraped["episode_reward_mean"][-1] == -4.0
    assert scraped["training_iteration"][-1] == 4.0
    assert scraped["learning_rate"] == [3e-05]
    assert "episode_return_max" not in scraped

    live = MetricScraper(metrics.metric_definitions(), "episode_reward_mean")
    for line in RECORDED_STDOUT.splitlines(keepends=True):
        live.feed(line)
    latest, history = live.snapshot()
    assert history == scraped["episode_reward_mean"], "live scraping and the final parse agree"
    assert latest["num_env_steps_sampled_lifetime"] == 12000.0


def test_hyperparameters_json_is_strings_plus_the_objective_sagemaker_adds():
    static = {"rl.algorithm": "PPO", "rl.rl_module.fcnet_hiddens": "[32]"}
    merged = sagemaker_hyperparameters(static, {"rl.training.config.lr": "0.0003"}, "episode_reward_mean")
    assert merged == {"rl.algorithm": "PPO", "rl.rl_module.fcnet_hiddens": "[32]", "rl.training.config.lr": "0.0003",
                      "_tuning_objective_metric": "episode_reward_mean"}
    with pytest.raises(TypeError, match="strings"):
        sagemaker_hyperparameters({"rl.seed": 3}, {}, "episode_reward_mean")  # type: ignore[dict-item]


def test_request_from_the_real_builder_parses():
    from rltune.environments import DeploymentTarget, EnvironmentConfig
    from rltune.local.run import DEFAULT_PAYLOAD_PATH
    from rltune.payload import validate_payload
    from rltune.request import build_tuning_request

    config = EnvironmentConfig(name="local")
    payload = validate_payload(DEFAULT_PAYLOAD_PATH.read_bytes(), config.guardrails, "local")
    request = build_tuning_request(payload, DeploymentTarget.placeholder(config), "exec-1")
    spec = parse_request(copy.deepcopy(request))
    assert spec.max_jobs == 4
    assert spec.max_parallel_jobs == 2
    assert {r.name for r in spec.ranges} >= {"rl.training.config.lr"}
    assert len(spec.ranges) == 2
