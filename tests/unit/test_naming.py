import pytest
from hypothesis import given
from hypothesis import strategies as st

from rltune import naming


@given(experiment=st.text(max_size=80), execution=st.text(min_size=1, max_size=120))
def test_tuning_job_name_is_always_valid_and_stable(experiment, execution):
    name = naming.tuning_job_name("rlt-dev-", experiment, execution)
    assert len(name) <= naming.TUNING_JOB_NAME_MAX
    assert naming.TUNING_JOB_NAME_PATTERN.match(name)
    assert name == name.lower()
    assert name.startswith("rlt-dev-")
    assert name == naming.tuning_job_name("rlt-dev-", experiment, execution)


def test_different_executions_get_different_names():
    a = naming.tuning_job_name("rlt-dev-", "cartpole-ppo", "exec-1")
    b = naming.tuning_job_name("rlt-dev-", "cartpole-ppo", "exec-2")
    assert a != b
    assert a.startswith("rlt-dev-cartpole-ppo-")


def test_training_job_names_extend_the_tuning_name():
    tuning = naming.tuning_job_name("rlt-prod-", "x" * 50, "arn:aws:states:...:execution:sm:abc")
    child = naming.training_job_name(tuning, 7)
    assert child.startswith(f"{tuning}-007-")
    assert len(child) <= naming.TRAINING_JOB_NAME_MAX


@pytest.mark.parametrize("prefix", ["", "Dev-", "rlt-dev", "rlt--dev-", "a-very-long-prefix-"])
def test_bad_prefixes_are_rejected(prefix):
    with pytest.raises(ValueError, match="job prefix"):
        naming.validate_job_prefix(prefix)
