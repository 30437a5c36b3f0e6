"""OUT/value_head.safetensors of `rlxf ppo`: the critic train/ppo.py trains beside the policy
(`PolicyWithValue.value_head`, a Linear(hidden_size, 1)), saved so that PPO can continue from it
(`--value-head PATH`) and its predictions can be inspected; and reading it back, checked against
the model it is meant for before anything is written."""

from __future__ import annotations

from pathlib import Path

import torch

from ..rundir import sha256_file
from .common import TuneError

FILE = "value_head.safetensors"
FORMAT = "rlxf-value-head"
# where the head reads the model (train/ppo.py PolicyWithValue.forward), for the file's metadata,
# the run record and the card
READS = ("V = weight · h + bias, h the model's last hidden state (hidden_states[-1] of its "
         "forward, after the final norm; float32) at each token: the value of the state in which "
         "the next token is chosen, so a response's first value is read at the prompt's last "
         "token and its last value at the response's second-to-last token")


def describe(hidden_size: int, initialised_from: dict | None) -> dict:
    """What the saved file is, for the run record and the card."""
    return {"file": FILE, "module": f"Linear({hidden_size}, 1)",
            "tensors": {"weight": [1, hidden_size], "bias": [1]}, "dtype": "float32",
            "reads": READS, "initialised_from": initialised_from or "zeros"}


def save_value_head(head: torch.nn.Linear, directory: Path,
                    initialised_from: dict | None = None) -> dict:
    """DIR/value_head.safetensors (weight (1, H), bias (1,), float32); returns `describe`."""
    from safetensors.torch import save_file
    tensors = {k: v.detach().float().cpu().contiguous() for k, v in head.state_dict().items()}
    save_file(tensors, str(directory / FILE),
              metadata={"format": FORMAT, "hidden_size": str(head.in_features), "reads": READS})
    return describe(head.in_features, initialised_from)


def value_head_file(path: Path) -> Path:
    """PATH itself, or PATH/value_head.safetensors when PATH is a directory (a `rlxf ppo` OUT)."""
    return path / FILE if path.is_dir() else path


def read_value_head(path: Path, hidden_size: int) -> tuple[dict[str, torch.Tensor], dict]:
    """The head's tensors from PATH (a file, or a `rlxf ppo` OUT holding one) and where they
    came from ({file, sha256}); a TuneError naming the file if it is missing, unreadable, or not
    a Linear(hidden_size, 1) with finite weights."""
    from safetensors.torch import load_file
    file = value_head_file(path)
    if not file.is_file():
        raise TuneError(f"{file}: no value head there (--value-head takes a `rlxf ppo` OUT "
                        f"directory or its {FILE})")
    try:
        tensors = load_file(str(file))
    except Exception as e:  # safetensors raises its own error types for a bad header
        raise TuneError(f"{file}: not a safetensors file ({e})") from None
    if sorted(tensors) != ["bias", "weight"]:
        raise TuneError(f"{file}: expected the tensors 'weight' and 'bias' of a value head, "
                        f"found {', '.join(map(repr, sorted(tensors))) or 'none'}")
    expected = {"weight": (1, hidden_size), "bias": (1,)}
    for name, shape in expected.items():
        if tuple(tensors[name].shape) != shape:
            raise TuneError(f"{file}: '{name}' has shape {list(tensors[name].shape)}, but the "
                            f"model's hidden_size is {hidden_size} (expected {list(shape)}): "
                            "a value head trained on another model")
        if not torch.isfinite(tensors[name]).all():
            raise TuneError(f"{file}: '{name}' has non-finite values")
    return {k: v.float() for k, v in tensors.items()}, {"file": str(file.resolve()),
                                                          "sha256": sha256_file(file)}


def load_into(head: torch.nn.Linear, tensors: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        head.weight.copy_(tensors["weight"])
        head.bias.copy_(tensors["bias"])
