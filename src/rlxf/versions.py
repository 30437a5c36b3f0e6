"""The library versions a ledger record carries (the lab pipeline's stages and the real-model
commands alike), so a report can say what code produced each result."""

from __future__ import annotations

import platform
from importlib import metadata


def versions(extra: tuple[str, ...] = ()) -> dict:
    """python, torch, transformers and rlxf; `extra` adds installed distributions by name
    (e.g. accelerate, peft for the real-model commands), "not installed" where absent."""
    import torch
    import transformers

    from . import __version__
    out = {"python": platform.python_version(), "torch": torch.__version__,
           "transformers": transformers.__version__, "rlxf": __version__}
    for name in extra:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out
