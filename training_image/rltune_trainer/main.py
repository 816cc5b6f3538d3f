"""Entry point: environment for Ray, logging, exit codes and SageMaker's failure file.

Exit codes: 0 finished (a stop criterion met, model exported); 2 bad input (failure file written, Ray never
started); 143 stopped by SIGTERM after a checkpoint and a model export (130 for SIGINT); 1 anything else
(failure file written too).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
import traceback
import warnings
from collections.abc import Mapping

from . import EXIT_BAD_INPUT, EXIT_SIGTERM, EXIT_UNEXPECTED
from .paths import Paths
from .spec import BadInput

log = logging.getLogger("rltune.trainer")

# SageMaker shows the start of the failure file as FailureReason (at most 1024 characters).
FAILURE_LIMIT = 1024

RAY_ENVIRONMENT = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",  # one container, one cluster: no token to create or share
    "RAY_DEDUP_LOGS": "1",
    "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0",
}


class _DropNoise(logging.Filter):
    """RLlib's banner about the new API stack, printed at every config build."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "new API stack" not in record.getMessage()


def configure_logging() -> None:
    level = os.environ.get("RLTUNE_LOG_LEVEL", "INFO").upper()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_DropNoise())
    root = logging.getLogger("rltune")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    for name in ("ray", "ray.rllib", "ray.rllib.algorithms.algorithm_config"):
        logging.getLogger(name).addFilter(_DropNoise())
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="gymnasium")


def write_failure(paths: Paths, message: str) -> None:
    try:
        paths.failure.parent.mkdir(parents=True, exist_ok=True)
        text = message if len(message) <= FAILURE_LIMIT else message[: FAILURE_LIMIT - 20] + "\n... (see the logs)"
        paths.failure.write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        log.error("could not write the failure file %s: %s", paths.failure, exc)


def main(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    # SageMaker invokes `train`; extra arguments are not part of its contract.
    for key, value in RAY_ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    environ = os.environ if environ is None else environ
    configure_logging()
    paths = Paths.from_env(dict(environ))
    started = time.monotonic()
    try:
        from .runner import run  # noqa: PLC0415  (logging and environment first)

        code = run(paths, environ)
        log.info("exit %d after %.1f s", code, time.monotonic() - started)
        return code
    except BadInput as exc:
        message = str(exc)
        log.error("%s", message)
        write_failure(paths, message)
        return EXIT_BAD_INPUT
    except SystemExit as exc:  # Ray's own SIGTERM handler (active only inside ray.init) calls sys.exit(signum)
        if exc.code == signal.SIGTERM:
            log.warning("stopped by SIGTERM while Ray was starting")
            return EXIT_SIGTERM
        raise
    except Exception as exc:
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        log.exception("training failed")
        write_failure(paths, f"Trainer error: {detail}\n{traceback.format_exc()[-600:]}")
        return EXIT_UNEXPECTED


if __name__ == "__main__":
    sys.exit(main())
