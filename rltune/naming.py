"""Job naming: the one place that decides tuning and training job names.

A tuning job name is at most 32 characters, matches `[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}`, and
prefixes every child training job. We derive it deterministically from the environment's prefix,
the experiment and the execution id, so a retried start finds the same name and never creates a
second job. Names are lowercase because SageMaker ARNs carry lowercase names, and the IAM
policies match `hyper-parameter-tuning-job/<prefix>*`.
"""

from __future__ import annotations

import hashlib
import re

TUNING_JOB_NAME_MAX = 32
TRAINING_JOB_NAME_MAX = 63
TUNING_JOB_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}$")
JOB_PREFIX_PATTERN = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*-$")
JOB_PREFIX_MAX = 12
HASH_CHARS = 8


def slugify(text: str) -> str:
    """Lowercase alphanumerics separated by single hyphens; empty when nothing usable is left."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def validate_job_prefix(prefix: str) -> str:
    """An environment's job prefix: lowercase, ends with '-', short enough to leave room for names."""
    if len(prefix) > JOB_PREFIX_MAX or not JOB_PREFIX_PATTERN.match(prefix):
        raise ValueError(
            f"job prefix {prefix!r} must be lowercase letters, digits and single hyphens, "
            f"start with a letter, end with '-', and be at most {JOB_PREFIX_MAX} characters (e.g. 'rlt-dev-')"
        )
    return prefix


def _digest(text: str, chars: int = HASH_CHARS) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:chars]


def tuning_job_name(prefix: str, experiment: str, execution_id: str) -> str:
    """`<prefix><experiment-slug>-<hash8>`, at most 32 characters, stable for the same inputs.

    The hash covers the experiment and the execution id, so two executions never collide and a
    retry of the same execution always gets the same name.
    """
    validate_job_prefix(prefix)
    if not execution_id:
        raise ValueError("execution_id must not be empty: it is what makes the job name idempotent")
    digest = _digest(f"{experiment}\0{execution_id}")
    room = TUNING_JOB_NAME_MAX - len(prefix) - len(digest) - 1
    slug = slugify(experiment)[:room].strip("-")
    name = f"{prefix}{slug}-{digest}" if slug else f"{prefix}{digest}"
    if len(name) > TUNING_JOB_NAME_MAX or not TUNING_JOB_NAME_PATTERN.match(name):
        raise AssertionError(f"derived an invalid tuning job name {name!r}")
    return name


def training_job_name(tuning_job: str, index: int) -> str:
    """A child training job name shaped like SageMaker's: `<tuning-job>-<NNN>-<hash8>`."""
    if not 1 <= index <= 999:
        raise ValueError(f"training job index must be 1..999, got {index}")
    return f"{tuning_job}-{index:03d}-{_digest(f'{tuning_job}:{index}')}"
