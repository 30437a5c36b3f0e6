"""Reward functions written for TRL, used unchanged: `path/to/file.py:name` or
`package.module:name`, called as TRL's GRPOTrainer calls them,

    f(prompts=..., completions=..., completion_ids=..., **row_fields) -> list[float | None]

(row_fields: every other field of the prompt file's rows, one list each, None where a row lacks
it). None means "this function does not apply to this completion" (TRL's convention); any other
non-number, a list of the wrong length, or an exception stops the run naming the function and
the prompt-file row."""

from __future__ import annotations

import importlib
import importlib.util
import math
import numbers
import sys
from pathlib import Path
from typing import Callable

from .batch import RewardBatch, RewardError


def load_function(spec: str) -> tuple[str, Callable]:
    """(display name, callable) for `file.py:name` or `module:name`."""
    target, sep, name = spec.rpartition(":")
    if not sep or not target or not name:
        raise RewardError(f"--reward {spec!r}: expected path/to/file.py:function or "
                          "package.module:function")
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_file():
            raise RewardError(f"--reward {spec!r}: {path}: no such file")
        module_name = f"rlxf_reward_{abs(hash(str(path.resolve())))}"
        module_spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_name] = module  # dataclasses and pickling look modules up here
        try:
            module_spec.loader.exec_module(module)
        except Exception as e:
            raise RewardError(f"--reward {spec!r}: importing {path} failed: "
                              f"{type(e).__name__}: {e}") from None
    else:
        try:
            module = importlib.import_module(target)
        except Exception as e:
            raise RewardError(f"--reward {spec!r}: cannot import {target}: "
                              f"{type(e).__name__}: {e}") from None
    fn = getattr(module, name, None)
    if not callable(fn):
        raise RewardError(f"--reward {spec!r}: {target} has no function {name!r}")
    return f"{Path(target).stem if target.endswith('.py') else target}:{name}", fn


def _kwargs(batch: RewardBatch, rows: list[int]) -> dict:
    keys = sorted({k for i in rows for k in batch.fields[i]})
    return {"prompts": [batch.prompts[i] for i in rows],
            "completions": [batch.completions[i] for i in rows],
            "completion_ids": [batch.completion_ids[i] for i in rows],
            **{k: [batch.fields[i].get(k) for i in rows] for k in keys},
            # what TRL's GRPOTrainer also passes; rlxf has no trainer state to give
            "trainer_state": None, "log_extra": _ignore, "log_metric": _ignore}


def _ignore(*args, **kwargs) -> None:
    """TRL's log_extra / log_metric hooks: accepted, not recorded."""


def _checked(name: str, values, batch: RewardBatch, rows: list[int]) -> list[float | None]:
    try:
        values = list(values)
    except TypeError:
        raise RewardError(f"reward function {name} returned {type(values).__name__}, not a "
                          f"list (on {batch.where[rows[0]]})") from None
    if len(values) != len(rows):
        raise RewardError(f"reward function {name} returned {len(values)} values for "
                          f"{len(rows)} completions (rows from {batch.where[rows[0]]})")
    out: list[float | None] = []
    for i, v in zip(rows, values):
        if v is None:
            out.append(None)
        elif isinstance(v, numbers.Real) and not isinstance(v, bool):
            out.append(None if math.isnan(float(v)) else float(v))
        else:
            raise RewardError(f"reward function {name} returned {v!r} ({type(v).__name__}), "
                              f"not a number or None, for the completion of "
                              f"{batch.where[i]}")
    return out


class FunctionReward:
    """A Python reward function as a reward source."""
    kind = "function"

    def __init__(self, spec: str):
        self.name, self.fn = load_function(spec)

    def __call__(self, batch: RewardBatch) -> list[float | None]:
        rows = list(range(len(batch)))
        try:
            values = self.fn(**_kwargs(batch, rows))
        except Exception as batch_error:
            # Which row? Ask again one completion at a time: the first that fails is named.
            for i in rows:
                try:
                    self.fn(**_kwargs(batch, [i]))
                except Exception as e:
                    raise RewardError(f"reward function {self.name} raised "
                                      f"{type(e).__name__}: {e} (on the completion of "
                                      f"{batch.where[i]})") from None
            raise RewardError(f"reward function {self.name} raised "
                              f"{type(batch_error).__name__}: {batch_error} (on a batch of "
                              f"{len(rows)} completions from {batch.where[0]})") from None
        return _checked(self.name, values, batch, rows)
