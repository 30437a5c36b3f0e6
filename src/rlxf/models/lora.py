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


def load_adapter_lm(path: str | Path, base: str | Path | None = None):
    """A causal LM with the adapter in `path` on its base (from adapter_config.json, or
    `base` when the base moved)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = base or json.loads((Path(path) / ADAPTER_CONFIG).read_text())["base_model_name_or_path"]
    if not (Path(base) / "config.json").exists():
        raise FileNotFoundError(f"{path}: its base model {base} is not a model directory "
                                "(give the base's new place with --base)")
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), str(path))
    model.eval()
    return model


def merge_adapter(path: str | Path, out: str | Path, base: str | Path | None = None) -> Path:
    """Fold the adapter into its base (W + alpha/r * BA) and save a plain HF model directory
    (with the adapter's tokenizer), loadable without peft."""
    from .build import load_tokenizer

    merged = load_adapter_lm(path, base).merge_and_unload()
    merged.save_pretrained(out)
    load_tokenizer(path).save_pretrained(out)
    return Path(out)
