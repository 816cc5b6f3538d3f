"""The catalog of config keys the trainer accepts, for the payload validator (which cannot import Ray).

`python -m rltune_trainer.key_catalog` (or `make key-catalog`) prints it as JSON; the result is committed as
`rltune/rllib_config_keys.json`. It is generated with the trainer's own routing (`_Collector.flat_key` and
`model_key` over `builder_params`, `model_params` and `RENAMED`), so the validator accepts exactly the key
names the trainer would; only the values are left for the trainer to check. An integration test regenerates
it and compares, so an RLlib upgrade without `make key-catalog` fails CI.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rltune import hyperparameters as hp

from .config_builder import (
    MODEL_KEYS_MOVED,
    NAMESPACE_OF_SECTION,
    OWN_KEYS,
    RENAMED,
    SECTION_BUILDER,
    Param,
    Setting,
    _Collector,
    algorithm_classes,
    builder_params,
    model_params,
)

SCHEMA_VERSION = 1


class _KeyProbe(_Collector):
    """The trainer's key routing with the value checks switched off: does a key name get through?"""

    def _set(self, key: str, value: Any, source: str, builder: str, annotation: Any) -> None:
        self.settings[key] = Setting(key, value, source, builder)


def _accepted(params: dict[str, Param], model: dict[str, Any], algorithm: str, section: str, name: str) -> bool:
    probe = _KeyProbe(params, model, algorithm)
    if section == "rl_module":
        probe.model_key(name, {}, name)
    else:
        # A dict value: the only shape under which `rl.training.config.model` is routed (to rl.rl_module.*).
        probe.flat_key(name, {}, name, SECTION_BUILDER[section])
    return not probe.issues


def algorithm_keys(algorithm: str) -> dict[str, list[str]]:
    """Namespace -> sorted key names (first dotted segment after the namespace) the trainer accepts."""
    _, config_cls = algorithm_classes(algorithm)
    params = builder_params(config_cls)
    model = model_params()
    candidates = sorted({*params, *RENAMED, *MODEL_KEYS_MOVED, "model", *model})
    keys: dict[str, list[str]] = {}
    for section, namespace in NAMESPACE_OF_SECTION.items():
        pool = sorted(model) if section == "rl_module" else candidates
        keys[namespace] = [name for name in pool if _accepted(params, model, algorithm, section, name)]
    return keys


def catalog() -> dict[str, Any]:
    import ray  # noqa: PLC0415

    return {
        "schema_version": SCHEMA_VERSION,
        "generated_by": "make key-catalog (python -m rltune_trainer.key_catalog)",
        "ray_version": ray.__version__,
        "renamed": dict(sorted(RENAMED.items())),  # accepted: the trainer translates them, with a warning
        "own_keys": dict(sorted(OWN_KEYS.items())),  # rejected in every namespace: they have their own key
        "algorithms": {algorithm: algorithm_keys(algorithm) for algorithm in hp.ALGORITHMS},
    }


def render(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=1, sort_keys=False) + "\n"


def main() -> int:
    sys.stdout.write(render(catalog()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
