"""Fuzzing: malformed payloads raise only PayloadError, every issue with a path; what validates also renders."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rltune.errors import PayloadError
from rltune.payload import TuningPayload, validate_payload
from rltune.request import build_tuning_request

from .payload_strategies import INPUT_SHAPE, model_violations, permissive_target, valid_payloads

FIELDS = [*sorted(TuningPayload.model_fields), "$schema", "max_job", "hyperparameters", ""]
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20),
    st.sampled_from(["Grid", "Hyperband", "Auto", "Logarithmic", "ReverseLogarithmic", "Categorical", "Integer",
                     "rl.algorithm", "rl.stop.time_total_s", "episode_reward_mean", "ml.c5.xlarge", "-1", "1e309"]),
    st.integers(-3, 3), st.sampled_from([0.0, -0.0, 1e-300, 1e300, float("inf"), float("nan")]),
)
JSONISH = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.one_of(st.sampled_from(FIELDS), st.text(max_size=10)), inner,
                                            max_size=4)),
    max_leaves=12,
)


@st.composite
def mutated_payloads(draw: st.DrawFn) -> Any:
    """A valid payload with a few random edits: replaced values, deleted keys, new keys, at any depth."""
    payload = draw(valid_payloads())
    for _ in range(draw(st.integers(1, 4))):
        node: Any = payload
        # walk down a random path of dicts/lists
        for _ in range(draw(st.integers(0, 3))):
            if isinstance(node, dict) and node:
                child = node[draw(st.sampled_from(sorted(node, key=str)))]
            elif isinstance(node, list) and node:
                child = node[draw(st.integers(0, len(node) - 1))]
            else:
                break
            if not isinstance(child, dict | list):
                break
            node = child
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if isinstance(node, dict):
            if action == "add" or not node:
                node[draw(st.one_of(st.sampled_from(FIELDS), st.text(max_size=10)))] = draw(JSONISH)
            else:
                key = draw(st.sampled_from(sorted(node, key=str)))
                if action == "delete":
                    del node[key]
                else:
                    node[key] = draw(JSONISH)
        elif isinstance(node, list):
            if node and action != "add":
                node[draw(st.integers(0, len(node) - 1))] = draw(JSONISH)
            else:
                node.append(draw(JSONISH))
    return payload


def check(raw: Any) -> None:
    try:
        payload = validate_payload(raw)
    except PayloadError as error:
        issues = error.issues
        document = error.to_dict()
    else:
        issues = ()
        document = None
    if document is not None:
        json.dumps(document)
        for issue in issues:
            assert issue.message
            if isinstance(raw, dict):
                assert issue.path, f"issue without a path: {issue}"
        return
    # Whatever validates must render, for a target whose caps do not bind, a request SageMaker's model accepts.
    request = build_tuning_request(payload, permissive_target(), "fuzz")
    json.dumps(request)
    assert model_violations(INPUT_SHAPE, request) == []


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(raw=mutated_payloads())
def test_mutated_payloads_fail_only_with_payload_error(raw: Any) -> None:
    check(copy.deepcopy(raw))


@settings(max_examples=200, deadline=None)
@given(raw=st.one_of(JSONISH, st.dictionaries(st.sampled_from(FIELDS), JSONISH, max_size=6)))
def test_random_documents_fail_only_with_payload_error(raw: Any) -> None:
    check(raw)


@settings(max_examples=150, deadline=None)
@given(text=st.one_of(st.text(max_size=80), st.binary(max_size=80)))
def test_random_text_fails_only_with_payload_error(text: str | bytes) -> None:
    try:
        validate_payload(text)
    except PayloadError as error:
        issues = error.issues
    else:
        issues = ("valid",)
    assert issues
