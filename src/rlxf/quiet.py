"""The terminal is for rlxf's own progress and results.

Third-party progress bars (transformers' "Loading weights" / "Writing model shards", datasets',
the hub's) are off: the libraries read these variables when they are imported, so they are set
before any command imports them, and transformers is told again if something imported it
first. Python warnings raised while a command runs go to `third_party.log` in the run directory
when the command has one (`log_to`), else nowhere: they come from inside the libraries (rlxf's
own calls raise none: the test suite turns those into errors), the user cannot act on them, and
they would break up rlxf's progress bars."""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from pathlib import Path

ENVIRONMENT = {
    "TRANSFORMERS_VERBOSITY": "error",  # advisories on every model load
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # transformers' own bars follow the hub's setting
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
}
LOG_NAME = "third_party.log"

# Warnings wait here until a command says where its log is; without one they are dropped.
_pending = logging.handlers.MemoryHandler(capacity=10_000, flushLevel=logging.CRITICAL + 1)


def quiet_environment() -> None:
    """Progress bars off for libraries imported from now on (a user's own setting wins)."""
    for name, value in ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    if "transformers" in sys.modules:  # imported before us: its bar switch is already read
        from transformers.utils import logging as transformers_logging
        transformers_logging.disable_progress_bar()


def capture_warnings() -> None:
    """Python warnings become log records of logger `py.warnings`, held for `log_to`."""
    quiet_environment()
    logging.captureWarnings(True)
    log = logging.getLogger("py.warnings")
    log.propagate = False  # never to the root logger's last-resort stderr handler
    if _pending not in log.handlers:
        log.addHandler(_pending)


def log_to(run_dir: Path) -> None:
    """Held and later warnings go to RUN_DIR/third_party.log (appended; created on the first)."""
    handler = logging.FileHandler(Path(run_dir) / LOG_NAME, encoding="utf-8", delay=True)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    _pending.setTarget(handler)
    _pending.flush()
    log = logging.getLogger("py.warnings")
    log.removeHandler(_pending)  # from now on straight to the file: nothing lost to a kill
    log.addHandler(handler)
