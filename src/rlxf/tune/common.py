"""What `rlxf sft`, `rlxf reward` and `rlxf dpo` share: loading a local model directory,
encoding conversations with its chat format, LoRA / gradient checkpointing, and an
output directory that appears complete or not at all (work happens in OUT.partial/, whose
checkpoint an identical rerun resumes from), with a model card."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from ..config import TuneTrainConfig
from ..data.training_data import Conversation, Loaded
from ..models.chat import ChatFormat, ChatTemplateError
from ..models.lora import add_lora, is_adapter_dir
from ..rundir import atomic_write_text, sha256_file, sha256_json
from ..train.engine import Engine
from ..train.loop import Checkpointer


class TuneError(ValueError):
    """Bad input to a fine-tuning command: the message names the file or option."""


def check_model_dir(path: Path) -> None:
    if is_adapter_dir(path):
        raise TuneError(f"{path}: is a LoRA adapter, not a model; merge it first "
                        f"(`rlxf merge {path} --out DIR`, or train it with --merge)")
    if not (path / "config.json").exists():
        raise TuneError(f"{path}: not a Hugging Face model directory (no config.json)")


# Files one of which a tokenizer directory has (fast, sentencepiece, or GPT-2 BPE tokenizers).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json",
                   "spiece.model")


def load_model_tokenizer(path: Path):
    """The model directory's tokenizer, or a TuneError that says what is missing (transformers
    would ask to install sentencepiece when the files are simply not there)."""
    from ..models.build import load_tokenizer
    if not any((path / name).exists() for name in TOKENIZER_FILES):
        raise TuneError(f"{path}: has no tokenizer (none of {', '.join(TOKENIZER_FILES)}); "
                        "save the base model's tokenizer into it "
                        "(AutoTokenizer.from_pretrained(BASE).save_pretrained(DIR))")
    try:
        return load_tokenizer(path)
    except (OSError, ValueError, ImportError) as e:
        raise TuneError(f"{path}: its tokenizer does not load: {e}") from None


def check_lora_targets(model, cfg: TuneTrainConfig, model_dir: Path) -> None:
    """Every --lora target names a layer of the model (before OUT.partial/ exists)."""
    from ..models.lora import linear_layer_names, unmatched_targets
    if cfg.lora is None:
        return
    missing = unmatched_targets(model, list(cfg.lora.targets))
    if missing:
        raise TuneError(f"--lora target{'s' if len(missing) > 1 else ''} "
                        f"{', '.join(map(repr, missing))} match{'es' if len(missing) == 1 else ''}"
                        f" no layer of {model_dir}; its linear layers: "
                        f"{', '.join(linear_layer_names(model))} (or all-linear)")


def context_limit(model, max_length: int) -> int:
    cfg = model.config
    limit = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None)
    return min(max_length, limit) if limit else max_length


@dataclass
class Encoded:
    """Token ids of the data; what had to be cut or left out is counted, never silent."""
    items: list = field(default_factory=list)
    truncated: int = 0  # responses cut at max_length
    skipped: int = 0    # prompts that left no room for a response

    @property
    def counts(self) -> dict:
        return {"truncated": self.truncated, "skipped_too_long": self.skipped}


def _fit(prompt: list[int], responses: list[list[int]], limit: int, enc: Encoded
         ) -> list[list[int]] | None:
    room = limit - len(prompt)
    if room < 1:
        enc.skipped += 1
        return None
    enc.truncated += any(len(r) > room for r in responses)
    return [r[:room] for r in responses]


def encode_demonstrations(chat: ChatFormat, items: list[Conversation], limit: int) -> Encoded:
    """(ids, what is trained on) per demonstration, as train_lm takes them: the index of the
    first response token, or -- a multi-turn `messages` row with a chat template -- a 0/1 mask
    over ids marking every assistant turn."""
    enc = Encoded()
    for n, c in enumerate(items):
        with _example(n):
            if c.all_turns and chat.kind == "template":
                ids, mask = chat.assistant_mask(c.messages + [{"role": "assistant",
                                                               "content": c.response}])
                enc.truncated += len(ids) > limit
                if 1 not in mask[:limit]:
                    enc.skipped += 1
                    continue
                enc.items.append((ids[:limit], mask[:limit]))
                continue
            prompt, (response,) = chat.sequences(c.messages, [c.response], c.raw)
        fitted = _fit(prompt, [response], limit, enc)
        if fitted:
            enc.items.append((prompt + fitted[0], len(prompt)))
    return enc


def encode_pairs(chat: ChatFormat, items: list[Conversation], limit: int) -> Encoded:
    """(prompt ids, chosen ids, rejected ids) per preference, as the reward and DPO loops
    take them; the token sequences are TRL's (models/chat.py, `sequences`)."""
    enc = Encoded()
    for n, c in enumerate(items):
        with _example(n):
            prompt, (chosen, rejected) = chat.sequences(c.messages, [c.response, c.rejected],
                                                        c.raw)
        fitted = _fit(prompt, [chosen, rejected], limit, enc)
        if fitted:
            enc.items.append((prompt, fitted[0], fitted[1]))
    return enc


@contextlib.contextmanager
def _example(n: int):
    """A chat template that rejects an example: which one (the caller names the file)."""
    try:
        yield
    except ChatTemplateError as e:
        raise TuneError(f"example {n + 1}: {e}") from None


def disable_dropout(model: torch.nn.Module) -> None:
    """Dropout off in every layer of a loaded checkpoint (GPT-2's hub configs ship 0.1), as TRL's
    RewardTrainer and DPOTrainer do: DPO compares the training policy with reference log-probs
    computed in eval mode, and both reward and DPO losses are checked against dropout-free
    references. Attention that reads a float `attention_dropout` (Llama, Qwen2, Mistral) too."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        if isinstance(getattr(module, "attention_dropout", None), float):
            module.attention_dropout = 0.0


def prepare(model, cfg: TuneTrainConfig, task: str = "CAUSAL_LM"):
    """LoRA adapters and gradient checkpointing, as configured."""
    if cfg.gradient_checkpointing:
        model.config.use_cache = False
        # Non-reentrant checkpointing needs no input grads for LoRA; transformers 5 renamed it.
        kwargs = {"use_reentrant": False}
        if hasattr(model, "activation_checkpointing_enable"):
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    if cfg.lora is not None:
        torch.manual_seed(cfg.seed)  # lora_A's random init: same seed, same run (and resume)
        model = add_lora(model, cfg.lora, task)
    return model


def trainable_parameters(model) -> dict:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"parameters/total": total, "parameters/trainable": trainable}


class Output:
    """OUT.partial/ while working (checkpoints in OUT.partial/.ckpt/, valid only for the same
    command, model, data and options), renamed to OUT when done. Under several processes it is
    one job's output: only the main process creates, stamps and renames it; the others wait."""

    def __init__(self, out: Path, fingerprint: dict, engine: Engine):
        self.out, self.engine = out, engine
        if out.exists():
            raise TuneError(f"{out}: already exists (choose another --out or remove it)")
        self.work = out.with_name(out.name + ".partial")
        self.ckpt_dir = self.work / ".ckpt"
        self.fingerprint = sha256_json(fingerprint)
        if engine.is_main_process:
            stamp = self.ckpt_dir / "fingerprint"
            if stamp.exists() and stamp.read_text() != self.fingerprint:
                shutil.rmtree(self.work)  # a different run's leftovers: never resume from them
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(stamp, self.fingerprint)
        engine.accelerator.wait_for_everyone()

    def checkpointer(self, every: int) -> Checkpointer:
        return Checkpointer(self.ckpt_dir, every)

    def finish(self, write: Callable[[Path], None]) -> Path:
        """`write(OUT.partial)` on the main process, then OUT appears once, by one rename."""
        if self.engine.is_main_process:
            write(self.work)
            shutil.rmtree(self.ckpt_dir)
            os.replace(self.work, self.out)
        self.engine.accelerator.wait_for_everyone()
        return self.out


def save_model(model, tokenizer, directory: Path, merge: bool,
               state_dict: dict | None = None) -> str:
    """The adapter (or, with merge, the model with the adapter folded in) or the full model;
    returns which was saved. `state_dict`: the whole weights of a model sharded by FSDP
    (Engine.full_state_dict), saved as a normal Hugging Face directory."""
    kind = "model"
    if hasattr(model, "peft_config"):
        if merge:
            model = model.merge_and_unload()
            kind = "merged"
        else:
            kind = "adapter"
    if getattr(model.config, "use_cache", None) is False:
        model.config.use_cache = True  # checkpointing's setting is for training, not for users
    model.save_pretrained(directory, **({"state_dict": state_dict} if state_dict else {}))
    tokenizer.save_pretrained(directory)
    return kind


def data_record(path: Path, loaded: Loaded, enc: Encoded) -> dict:
    return {"file": str(path), "sha256": sha256_file(path), "format": loaded.source_format,
            **loaded.counts, **enc.counts, "examples": len(enc.items)}


def write_record(directory: Path, name: str, command: str, base: Path, cfg: TuneTrainConfig,
                 data: dict, metrics: dict, saved: str, chat_kind: str, started: float,
                 output: Output, data_facts: dict | None = None) -> dict:
    """The run's ledger record and rlxf_training.json (tune/run_record.py), and the card."""
    from ..model_card import ASPECTS_METHOD, METHOD, front_matter, markdown_table
    from .run_record import run_record, write_run_record

    record = write_run_record(directory, run_record(
        command, base, cfg, data, metrics, saved, chat_kind, started, output,
        data_facts=data_facts))
    tags = ["rlxf", {"sft": "sft", "reward": "reward-model", "dpo": "dpo", "kto": "kto"}[command]]
    if cfg.lora is not None:
        tags.append("lora")
    meta = {"base_model": str(base.resolve()),
            "library_name": "peft" if saved == "adapter" else "transformers", "tags": tags,
            "pipeline_tag": "text-classification" if command == "reward" else "text-generation"}
    what = METHOD[command]
    if getattr(cfg, "aspects", False):
        what = (f"{ASPECTS_METHOD} on {', '.join(data.get('aspects', []))} (heads.json names "
                "them)")
    lines = [f"# {name}", "",
             f"`rlxf {command}`: {what}, from `{base}` on `{data['file']}` "
             f"(sha256 {data['sha256'][:12]}..., {data['format']} format). Saved: {saved}"
             f"{' (LoRA r=%d, alpha=%g)' % (cfg.lora.r, cfg.lora.alpha) if cfg.lora else ''}; "
             f"chat format: {chat_kind} (docs/REAL_MODELS.md).", "",
             "## Data", "", *markdown_table(["count", "value"], [[k, v] for k, v in data.items()
                                                          if k not in ("file", "sha256")]),
             "## Training", "", *markdown_table(["option", "value"],
                                        [[k, json.dumps(v)] for k, v in record["config"].items()]),
             "## Metrics (training, not held out)", "",
             *markdown_table(["metric", "value"], [[k, v] for k, v in record["metrics"].items()]),
             "Nothing here was evaluated on held-out data or against a known gold preference; "
             "the lab world (`rlxf run`) is where rlxf measures what training did.", ""]
    atomic_write_text(directory / "README.md", front_matter(meta) + "\n" + "\n".join(lines))
    return record
