"""LoRA adapters through peft: wrap a model, use its base as the reference, merge for serving."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from ..config import LoraConfig

ADAPTER_CONFIG = "adapter_config.json"


def is_adapter_dir(path: str | Path) -> bool:
    return (Path(path) / ADAPTER_CONFIG).exists()


def add_lora(model, cfg: LoraConfig, task: str = "CAUSAL_LM"):
    """`model` with fresh adapters (B = 0, so it starts equal to the base). Only the adapters
    train -- and, for a reward model (task SEQ_CLS), its new score head, which peft keeps in
    modules_to_save."""
    import warnings

    from peft import LoraConfig as PeftLoraConfig, get_peft_model

    # peft 0.21 asks transformers 5 a deprecated question; the warning is not the user's.
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*",
                            category=FutureWarning)

    targets = "all-linear" if cfg.targets == ["all-linear"] else list(cfg.targets)
    peft_cfg = PeftLoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                              target_modules=targets, task_type=task,
                              fan_in_fan_out=_has_transposed_linears(model))
    return get_peft_model(model, peft_cfg)


def unmatched_targets(model, targets: list[str]) -> list[str]:
    """The LoRA targets that name no module of `model`, by peft's rule for a list of names (a
    module whose name is the target or ends in "." + target). peft refuses only when no target
    matches, so a typo beside a good name would silently leave that layer untrained."""
    if targets == ["all-linear"]:
        return []
    names = [name for name, _ in model.named_modules()]
    return [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]


def linear_layer_names(model) -> list[str]:
    """The distinct last names of the model's linear layers (what LoRA can target)."""
    import torch
    kinds = (torch.nn.Linear,) + tuple(
        type(m) for m in model.modules() if type(m).__name__ == "Conv1D")
    return sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules()
                   if isinstance(m, kinds) and n})


def _has_transposed_linears(model) -> bool:
    """GPT-2's blocks are transformers' Conv1D, a linear layer whose weight is stored (in, out):
    peft needs fan_in_fan_out=True for them (told False, it warns and switches it itself)."""
    from transformers.pytorch_utils import Conv1D

    return any(isinstance(m, Conv1D) for m in model.modules())


def reference_of(model):
    """A context in which `model` computes its reference: the base with adapters disabled
    when it has adapters (no second copy in memory), else the model itself."""
    if hasattr(model, "disable_adapter") and hasattr(model, "peft_config"):
        return model.disable_adapter()
    return contextlib.nullcontext()


def is_reward_adapter(path: str | Path) -> bool:
    """An adapter trained by `rlxf reward` (peft task SEQ_CLS: LoRA + a saved score head)."""
    cfg = json.loads((Path(path) / ADAPTER_CONFIG).read_text())
    return cfg.get("task_type") == "SEQ_CLS"


def load_adapter_lm(path: str | Path, base: str | Path | None = None):
    """A causal LM with the adapter in `path` on its base (from adapter_config.json, or
    `base` when the base moved) -- or, for a reward adapter, the sequence-classification model
    with its trained score head (peft's modules_to_save)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    base = base or json.loads((Path(path) / ADAPTER_CONFIG).read_text())["base_model_name_or_path"]
    if not (Path(base) / "config.json").exists():
        raise FileNotFoundError(f"{path}: its base model {base} is not a model directory "
                                "(give the base's new place with --base)")
    if is_reward_adapter(path):
        from .build import load_tokenizer
        backbone = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)
        # The pad id the head was trained with (rlxf reward sets it from the tokenizer).
        backbone.config.pad_token_id = load_tokenizer(path).pad_token_id
    else:
        backbone = AutoModelForCausalLM.from_pretrained(base)
    model = PeftModel.from_pretrained(backbone, str(path))
    model.eval()
    return model


def merge_adapter(path: str | Path, out: str | Path, base: str | Path | None = None) -> Path:
    """Fold the adapter into its base (W + alpha/r * BA) and save a plain HF model directory
    (with the adapter's tokenizer), loadable without peft; a reward adapter's score head is
    kept (it scores as the adapter did)."""
    from .build import load_tokenizer

    merged = load_adapter_lm(path, base).merge_and_unload()
    merged.save_pretrained(out)
    load_tokenizer(path).save_pretrained(out)
    return Path(out)


def is_reward_model_dir(path: str | Path) -> bool:
    """A reward model (a sequence-classification head), not a chat model: an `rlxf reward`
    output, a reward adapter, or any `*ForSequenceClassification` directory."""
    path = Path(path)
    if is_adapter_dir(path):
        return is_reward_adapter(path)
    config = path / "config.json"
    if not config.exists():
        return False
    archs = json.loads(config.read_text()).get("architectures") or []
    return any(a.endswith("ForSequenceClassification") for a in archs)
