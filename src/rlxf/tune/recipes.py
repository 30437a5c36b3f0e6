"""`rlxf sft`, `rlxf reward`, `rlxf dpo` on a local model directory and a dataset file. Each
recipe: 1. load model, tokenizer and data; 2. encode with the model's chat format; 3. train with
the same loop the lab pipeline uses (train/lm.py, train/reward.py, train/dpo.py); 4. save the
model (or adapter) with a model card."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import torch
from accelerate.utils import broadcast_object_list

from ..config import TuneDPOConfig, TuneRewardConfig, TuneSFTConfig
from ..data.training_data import load_demonstrations, load_preferences, load_ratings
from ..models.reward_heads import HEADS_FILE
from ..rundir import atomic_write_json
from ..models.chat import chat_format
from ..models.lora import reference_of
from ..train.dpo import reference_logprobs, train_dpo
from ..train.lm import train_lm
from ..train.packing import pack
from ..train.reward import train_reward_model
from ..train.engine import Engine
from .aspects import encode_ratings, regression_batch
from .hparams import train_hparams
from .run_record import TRAINING_RECORD
from .common import (Output, TuneError, check_lora_targets, check_model_dir,
                     context_limit, data_record, disable_dropout, encode_demonstrations,
                     encode_pairs, load_model_tokenizer, prepare, save_model,
                     trainable_parameters, write_record)

Progress = Callable[[str, int], Callable[[int, dict], None]] | None


def _setup(model_dir: Path, data: Path, out: Path):
    if out.exists():
        raise TuneError(f"{out}: already exists (choose another --out or remove it)")
    check_model_dir(model_dir)
    if not data.is_file():
        raise TuneError(f"{data}: no such file")
    tokenizer = load_model_tokenizer(model_dir)
    return tokenizer, chat_format(tokenizer)


def _output(out: Path, command: str, model_dir: Path, data: Path, cfg, fmt: str,
            engine: Engine) -> Output:
    """Created once the inputs have been read, so bad input leaves nothing behind."""
    from ..rundir import sha256_file
    return Output(out, {"command": command, "model": str(model_dir.resolve()),
                        "data": sha256_file(data), "format": fmt,
                        "config": cfg.model_dump(mode="json")}, engine)


def _finish(output: Output, command: str, model, tok, chat, model_dir: Path, data: Path, loaded,
            enc, cfg, result: dict, started: float) -> dict:
    """The main process saves the model and its card and renames OUT.partial to OUT; every
    process returns the record it wrote."""
    params = trainable_parameters(model)  # before a merge folds the adapters away
    whole = output.engine.full_state_dict(model)  # FSDP: every process sends its shards

    def write(directory: Path) -> None:
        saved = save_model(model, tok, directory, cfg.merge, whole)
        write_record(directory, output.out.name, command, model_dir, cfg,
                     data_record(data, loaded, enc), {**result, **params}, saved, chat.kind,
                     started, output, loaded.facts)
    out = output.finish(write)
    return {**json.loads((out / TRAINING_RECORD).read_text()), "out": str(out)}


def _begin(command: str, model_dir: Path, data: Path, out: Path, cfg, fmt: str, load_data,
           encode, load_model):
    """1.-2. read the data and the model, encode, then (inputs good) claim OUT.partial/. The
    engine (processes, device, precision) comes first: only its main process writes."""
    engine = Engine(train_hparams(cfg), recipe=command)
    if engine.sharded and cfg.lora is not None:
        raise TuneError("--lora under FSDP is not built (the adapters would be sharded with "
                        "the frozen base); launch DDP (examples/accelerate/ddp_2gpu.yaml)")
    tok, chat = _setup(model_dir, data, out)
    loaded = load_data(data, fmt)
    model = load_model(model_dir.resolve())
    check_lora_targets(model, cfg, model_dir)
    try:
        enc = encode(chat, loaded.items, context_limit(model, cfg.max_length))
    except TuneError as e:
        raise TuneError(f"{data}: {e}") from None
    if not enc.items:
        raise TuneError(f"{data}: no example fits in max_length ({enc.skipped} prompts too "
                        "long)")
    return (_output(out, command, model_dir, data, cfg, fmt, engine), engine, tok, chat, loaded,
            model, enc)


def _causal_lm(path: Path):
    from transformers import AutoModelForCausalLM
    return AutoModelForCausalLM.from_pretrained(path)


def _progress(progress: Progress, engine: Engine, command: str, steps: int):
    """One progress bar per job: the main process's."""
    return progress(command, steps) if progress and engine.is_main_process else None


def run_sft(model_dir: Path, data: Path, out: Path, cfg: TuneSFTConfig, fmt: str = "auto",
            progress: Progress = None) -> dict:
    started = time.time()
    output, engine, tok, chat, loaded, model, enc = _begin(
        "sft", model_dir, data, out, cfg, fmt, load_demonstrations, encode_demonstrations,
        _causal_lm)
    # packed rows as long as the encoding's limit (TRL packs to max_length)
    items = pack(enc.items, context_limit(model, cfg.max_length)) if cfg.packing else enc.items
    model = prepare(model, cfg)
    result = train_lm(model, items, train_hparams(cfg), tok.pad_token_id, cfg.seed,
                      output.checkpointer(cfg.checkpoint_every),
                      _progress(progress, engine, "sft", cfg.steps), engine=engine)
    if cfg.packing:
        result["packed_rows"] = len(items)
    return _finish(output, "sft", model, tok, chat, model_dir, data, loaded, enc, cfg, result,
                   started)


def run_reward(model_dir: Path, data: Path, out: Path, cfg: TuneRewardConfig,
               fmt: str = "auto", progress: Progress = None) -> dict:
    from transformers import AutoModelForSequenceClassification

    aspects: list[str] = []  # --aspects: the rating aspects, one head output each

    def load_data(path: Path, fmt: str):
        if not cfg.aspects:
            return load_preferences(path, fmt)
        loaded = load_ratings(path, fmt)
        aspects.extend(loaded.counts["aspects"])
        return loaded

    def encode(chat, items, limit):
        return encode_ratings(chat, items, limit, aspects) if cfg.aspects else \
            encode_pairs(chat, items, limit)

    def head_model(path: Path):
        torch.manual_seed(cfg.seed)  # the new head's initialisation
        return AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=len(aspects) or 1)

    started = time.time()
    output, engine, tok, chat, loaded, model, enc = _begin(
        "reward", model_dir, data, out, cfg, fmt, load_data, encode, head_model)
    model.config.pad_token_id = tok.pad_token_id
    if aspects:
        model.config.id2label = dict(enumerate(aspects))
        model.config.label2id = {a: i for i, a in enumerate(aspects)}
        if engine.is_main_process:  # OUT.partial is the main process's
            atomic_write_json(output.work / HEADS_FILE, {"heads": aspects, "weights": None})
    disable_dropout(model)
    model = prepare(model, cfg, task="SEQ_CLS")
    result = train_reward_model(model, enc.items, train_hparams(cfg), tok.pad_token_id, cfg.seed,
                                output.checkpointer(cfg.checkpoint_every),
                                _progress(progress, engine, "reward", cfg.steps),
                                cfg.center_coefficient,
                                regression_batch if cfg.aspects else None, engine=engine)
    return _finish(output, "reward", model, tok, chat, model_dir, data, loaded, enc, cfg, result,
                   started)


def run_dpo(model_dir: Path, data: Path, out: Path, cfg: TuneDPOConfig, fmt: str = "auto",
            progress: Progress = None) -> dict:
    started = time.time()
    output, engine, tok, chat, loaded, policy, enc = _begin(
        "dpo", model_dir, data, out, cfg, fmt, load_preferences, encode_pairs, _causal_lm)
    disable_dropout(policy)
    policy = prepare(policy, cfg)
    # The reference is the starting model, whose log-probs never change: computed once, from
    # the policy itself before it trains -- with LoRA, with its adapters disabled (the base) --
    # in the precision the policy trains in, so that the two agree exactly at step 0. Under
    # FSDP, before sharding, by the main process alone (with memory-efficient loading the only
    # one holding the weights), which sends them to the others: no second model to shard.
    ref_chosen = ref_rejected = None
    if engine.is_main_process or not engine.sharded:
        policy.to(engine.device)
        with engine.accelerator.autocast(), reference_of(policy):
            ref_chosen, ref_rejected = reference_logprobs(policy, enc.items, tok.pad_token_id,
                                                          batch_size=cfg.batch_size)
    if engine.sharded:
        ref_chosen, ref_rejected = broadcast_object_list([ref_chosen, ref_rejected])
    result = train_dpo(policy, enc.items, ref_chosen, ref_rejected, train_hparams(cfg),
                       tok.pad_token_id, cfg.seed, output.checkpointer(cfg.checkpoint_every),
                       _progress(progress, engine, "dpo", cfg.steps),
                       accelerator=engine.accelerator)
    result.pop("history")
    return _finish(output, "dpo", policy, tok, chat, model_dir, data, loaded, enc, cfg, result,
                   started)
