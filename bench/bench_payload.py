"""Payload benchmark: what validation and request building cost, on the Lambda's path and on the command line.

Every number is measured side by side in this run (the machine is shared and noisy), so read the ratios:
- validate_payload vs bare pydantic model_validate: the price of the semantic checks;
- a payload with many errors vs a valid one: the price of collecting every error;
- build_tuning_request vs validate_payload;
- cold import of rltune.request (what the start Lambda pays) vs importing pydantic alone;
- `rltune validate` as a process vs a bare `python -c pass`.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rltune.environments import DeploymentTarget, EnvironmentConfig  # noqa: E402
from rltune.errors import PayloadError  # noqa: E402
from rltune.payload import TuningPayload, validate_payload  # noqa: E402
from rltune.request import DEFAULT_PAYLOAD, build_tuning_request  # noqa: E402

EXAMPLE = DEFAULT_PAYLOAD.read_bytes()
MIX = (ROOT / "examples" / "ppo_categorical_integer.json").read_bytes()
BAD = {
    "max_job": 3, "objective_metric": "nope", "instance_count": 2, "strategy": "Grid", "use_spot": "maybe",
    "hyperparameter_ranges": {"rl.training.config.lr": {"min_value": 1, "max_value": 0.5}, "x.y": [1, 1]},
    "static_hyperparameters": {"rl.training.config.lr": None, "bogus": 1}, "tags": {f"t{i}": "v" for i in range(60)},
}


def per_call_us(func: Callable[[], object], repeat: int = 5, number: int = 200) -> float:
    """Median microseconds per call over `repeat` batches of `number` calls."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            func()
        samples.append((time.perf_counter() - start) / number * 1e6)
    return statistics.median(samples)


def expect_error() -> None:
    try:
        validate_payload(BAD)
    except PayloadError:
        return
    raise AssertionError("BAD payload validated")


def process_ms(args: list[str], repeat: int = 5) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(args, check=False, capture_output=True, cwd=ROOT)
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples)


def main() -> None:
    config = EnvironmentConfig(name="dev")
    target = DeploymentTarget.placeholder(config)
    import json

    example = json.loads(EXAMPLE)
    payload = validate_payload(EXAMPLE, config.guardrails, "dev")

    bare = per_call_us(lambda: TuningPayload.model_validate(example))
    full = per_call_us(lambda: validate_payload(EXAMPLE, config.guardrails, "dev"))
    mix = per_call_us(lambda: validate_payload(MIX, config.guardrails, "dev"))
    bad = per_call_us(expect_error)
    build = per_call_us(lambda: build_tuning_request(payload, target, "exec-1"))
    issues = 0
    try:
        validate_payload(BAD)
    except PayloadError as exc:
        issues = len(exc.issues)

    py = sys.executable
    import_pydantic = process_ms([py, "-c", "import pydantic"])
    import_request = process_ms([py, "-c", "import rltune.request"])
    bare_python = process_ms([py, "-c", "pass"])
    # The console script's code, run from this checkout (whatever the venv's editable install points at).
    cli = process_ms([py, "-c", "import sys; from rltune.cli import main; "
                      "sys.argv = ['rltune', 'validate', 'examples/cartpole_ppo.json']; main()"])

    print("payload benchmark (median of 5 batches)")
    print(f"  pydantic model_validate only        {bare:8.1f} us")
    print(f"  validate_payload (seed example)     {full:8.1f} us   x{full / bare:.1f} of bare pydantic")
    print(f"  validate_payload (5-range mix)      {mix:8.1f} us")
    print(f"  invalid payload, {issues} issues        {bad:8.1f} us   x{bad / full:.1f} of a valid one")
    print(f"  build_tuning_request                {build:8.1f} us   x{build / full:.2f} of validation")
    print(f"  validate + build                    {full + build:8.1f} us")
    print(f"  cold import rltune.request          {import_request:8.1f} ms   x{import_request / import_pydantic:.2f} "
          f"of import pydantic ({import_pydantic:.0f} ms), python alone {bare_python:.0f} ms")
    print(f"  `rltune validate` process           {cli:8.1f} ms   x{cli / bare_python:.1f} of a bare python")


if __name__ == "__main__":
    main()
