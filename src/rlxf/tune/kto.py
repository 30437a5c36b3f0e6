"""`rlxf kto MODEL_DIR DATA --out OUT`: KTO (train/kto.py) on a local model from
- TRL's unpaired rows, {prompt, completion, label} (prompt and completion strings, or message
  lists as TRL's conversational rows; label true = desirable), or
- preference data (any format `rlxf dpo` reads), each pair split into its chosen completion
  (desirable) and its rejected one (undesirable).
The reference is the starting model (with LoRA: the base with adapters disabled); its
log-probs of the examples are computed once before training."""

from __future__ import annotations

import time
from pathlib import Path

from ..config import TuneKTOConfig
from ..data.io import open_rows
from ..data.training_data import detect_format, load_preferences
from ..models.build import load_tokenizer
from ..models.chat import chat_format
from ..models.lora import reference_of
from ..rewards.encoding import prompt_ids, response_ids
from ..rundir import sha256_file
from ..train.kto import reference_example_logprobs, train_kto
from ..train.engine import Engine
from .common import (Output, TuneError, check_model_dir, context_limit, disable_dropout,
                     prepare, save_model, trainable_parameters, write_record)
from .hparams import train_hparams
from .recipes import Progress, _causal_lm
from .rl_ppo import AdaptersOff


def _text(value, where: str, field: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and isinstance(value[-1], dict) and \
            isinstance(value[-1].get("content"), str):
        return value[-1]["content"]
    raise TuneError(f"{where}: field '{field}' must be a string or a message list")


def load_unpaired(path: Path) -> list[tuple[object, str, bool]]:
    """(prompt as written, completion text, desirable) per row of TRL's unpaired format."""
    out = []
    with open_rows(path) as rows:
        for n, row in rows:
            where = f"{path} {rows.unit} {n}"
            for field in ("prompt", "completion", "label"):
                if row.get(field) is None:
                    raise TuneError(f"{where}: field '{field}' is missing (expected TRL's "
                                    "unpaired rows: prompt, completion, label)")
            if not isinstance(row["label"], bool):
                raise TuneError(f"{where}: field 'label' must be true or false, got "
                                f"{row['label']!r}")
            prompt = row["prompt"]
            if not isinstance(prompt, (str, list)):
                raise TuneError(f"{where}: field 'prompt' must be a string or a message list")
            out.append((prompt, _text(row["completion"], where, "completion"), row["label"]))
    if not out:
        raise TuneError(f"{path}: no rows")
    return out


def _is_unpaired(path: Path, fmt: str) -> bool:
    if fmt not in ("auto", "trl") or (fmt == "auto" and detect_format(path) != "trl"):
        return False
    with open_rows(path) as rows:
        first = next(iter(rows), (0, {}))[1]
    return "label" in first and "completion" in first


def run_kto(model_dir: Path, data: Path, out: Path, cfg: TuneKTOConfig, fmt: str = "auto",
            progress: Progress = None) -> dict:
    started = time.time()
    if out.exists():
        raise TuneError(f"{out}: already exists (choose another --out or remove it)")
    check_model_dir(model_dir)
    if not data.is_file():
        raise TuneError(f"{data}: no such file")
    tok = load_tokenizer(model_dir)
    chat = chat_format(tok)
    if _is_unpaired(data, fmt):
        rows = load_unpaired(data)
        encoded = [(prompt_ids(chat, p), response_ids(chat, p, c), d) for p, c, d in rows]
        counts, source = {"rows": len(rows)}, "trl-unpaired"
        facts = {"format": source, "labels": {"desirable": sum(d for *_, d in rows),
                                              "undesirable": sum(not d for *_, d in rows)}}
    else:
        loaded = load_preferences(data, fmt)
        encoded = [(chat.prompt_ids(c.messages), chat.response_ids(c.messages, text), good)
                   for c in loaded.items for text, good in ((c.response, True),
                                                            (c.rejected, False))]
        counts, source = {**loaded.counts}, f"{loaded.source_format} (pairs split)"
        facts = loaded.facts
    policy = _causal_lm(model_dir.resolve())
    limit = context_limit(policy, cfg.max_length)
    examples = [(p, r[: limit - len(p)], d) for p, r, d in encoded if len(p) < limit]
    if len(examples) < 2:
        raise TuneError(f"{data}: fewer than 2 examples fit in max_length ({cfg.max_length})")
    engine = Engine(train_hparams(cfg), recipe="kto")
    output = Output(out, {"command": "kto", "model": str(model_dir.resolve()),
                          "data": sha256_file(data), "format": fmt,
                          "config": cfg.model_dump(mode="json")}, engine)
    disable_dropout(policy)
    policy = prepare(policy, cfg)
    reference = _causal_lm(model_dir.resolve()) if cfg.lora is None else AdaptersOff(policy)
    if cfg.lora is None:
        disable_dropout(reference)
    policy.to(engine.device)
    if cfg.lora is None:
        reference.to(engine.device)
    pad = tok.pad_token_id
    with engine.accelerator.autocast(), reference_of(policy):
        ref_logps = reference_example_logprobs(policy, examples, pad,
                                               batch_size=cfg.batch_size)
    result = train_kto(policy, reference, examples, ref_logps, train_hparams(cfg), pad, cfg.seed,
                       output.checkpointer(cfg.checkpoint_every),
                       progress and engine.is_main_process and progress("kto", cfg.steps),
                       accelerator=engine.accelerator)
    result.pop("history")
    params = trainable_parameters(policy)  # before a merge folds the adapters away
    data_counts = {"file": str(data), "sha256": sha256_file(data), "format": source, **counts,
                   "examples": len(examples),
                   "examples/desirable": sum(d for _, _, d in examples)}
    record: dict = {}

    def write(work: Path) -> None:  # on the main process only (Output.finish)
        saved = save_model(policy, tok, work, cfg.merge)
        record.update(write_record(work, out.name, "kto", model_dir, cfg, data_counts,
                                   {**result, **params}, saved, chat.kind, started,
                                   output, facts))
    done = output.finish(write)  # fills `record` (on the main process)
    return {**record, "out": str(done)}

