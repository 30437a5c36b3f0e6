"""Causal LMs built from a transformers config (no download), and loading saved ones."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (AutoModelForCausalLM, AutoModelForSequenceClassification,
                          AutoTokenizer, GPT2Config, LlamaConfig)

from ..config import ModelConfig
from .fused_ops import fuse_activations


def build_causal_lm(cfg: ModelConfig, tokenizer, seed: int):
    # Dropout off: RLHF trains without it (as TRL does), and it makes resumed runs exact.
    ids = dict(pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
               eos_token_id=tokenizer.eos_token_id)
    if cfg.architecture == "gpt2":
        config = GPT2Config(vocab_size=len(tokenizer), n_positions=cfg.max_length,
                            n_embd=cfg.n_embd, n_layer=cfg.n_layer, n_head=cfg.n_head,
                            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **ids)
    else:
        config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=cfg.n_embd,
                             intermediate_size=4 * cfg.n_embd, num_hidden_layers=cfg.n_layer,
                             num_attention_heads=cfg.n_head, max_position_embeddings=cfg.max_length,
                             attention_dropout=0.0, tie_word_embeddings=True, **ids)
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config)


def load_causal_lm(path: str | Path):
    """In eval mode, GPT-2's Python tanh-GELU swapped for the same function in fewer ops
    (models/fused_ops.py): the lab samples and scores with these, and trainers swap it anyway."""
    model = AutoModelForCausalLM.from_pretrained(path)
    fuse_activations(model)
    model.eval()
    return model


def load_reward_model(path: str | Path):
    """As load_causal_lm: eval mode, fused GELU."""
    model = AutoModelForSequenceClassification.from_pretrained(path)
    fuse_activations(model)
    model.eval()
    return model


def load_tokenizer(path: str | Path):
    tok = AutoTokenizer.from_pretrained(path)
    tok.padding_side = "left"
    if tok.pad_token is None and tok.eos_token is not None:
        # Many released tokenizers (Llama, Mistral, GPT-2) have no pad token; padded positions
        # are masked by length everywhere in rlxf, so reusing <eos> is safe (TRL does the same).
        tok.pad_token = tok.eos_token
    return tok
