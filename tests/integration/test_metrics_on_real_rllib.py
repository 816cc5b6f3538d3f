"""The metric contract's result keys exist in a real RLlib 2.60 new-stack result."""

import pytest

from rltune import metrics


@pytest.fixture(scope="module")
def ppo_result():
    import ray
    from ray.rllib.algorithms.ppo import PPOConfig

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        config = (
            PPOConfig()
            .environment("CartPole-v1")
            .env_runners(num_env_runners=0, num_envs_per_env_runner=4)
            .training(train_batch_size_per_learner=2000, minibatch_size=250, num_epochs=1)
        )
        algo = config.build_algo()
        try:
            yield algo.train()
        finally:
            algo.stop()
    finally:
        ray.shutdown()


def test_every_contract_key_is_in_a_real_result(ppo_result):
    values = metrics.extract_metrics(ppo_result)
    missing = [m.name for m in metrics.METRICS if m.name not in values]
    assert missing == [], f"contract keys absent from RLlib's result: {missing}"
    assert values["episode_reward_mean"] == values["episode_return_mean"] > 0
    assert values["num_env_steps_sampled_lifetime"] >= 2000
