"""The KV cache's argument and output name, across the transformers versions rlxf installs with.

transformers 5.24 renamed the forward argument and the output field `past_key_values` to
`cache`; the old argument warns (FutureWarning) and goes in 5.40, after which a forward with
`**kwargs` would swallow it and silently run without the cache. rlxf passes the name the
model's forward declares, so the same call is current on the locked version and the newest."""

from __future__ import annotations

import dataclasses
import inspect
from functools import lru_cache


@lru_cache(maxsize=None)
def _argument_name(model_class: type) -> str:
    # `inspect.signature` follows the deprecation decorator's functools.wraps to the real forward
    parameters = inspect.signature(model_class.forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


def cache_kwargs(model, cache) -> dict:
    """`{name: cache}` for `model(...)`: `cache` where the forward takes it, else
    `past_key_values` (transformers < 5.24)."""
    return {_argument_name(type(model)): cache}


def returned_cache(output):
    """The cache a forward called with `use_cache=True` returned (`output.cache` from
    transformers 5.24, where reading `output.past_key_values` logs a deprecation)."""
    if any(field.name == "cache" for field in dataclasses.fields(output)):
        return output.cache
    return output.past_key_values
