"""bench/workload.py's data and tokenizer with a Llama model of any size (bench/gpu_check.py):
the same prompts, completions and word-level tokenizer, so both sides and bench/trl_side.py's
tokenization check work unchanged; the initial weights built once (on the GPU when there is one,
where a 0.5B model initialises in a moment) and loaded into a fresh model for every run."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import (AutoModelForCausalLM, AutoModelForSequenceClassification,
                          LlamaConfig)

from .workload import Workload, build


@dataclass
class LlamaWorkload(Workload):
    device: str = "cpu"

    def causal_lm(self):
        with torch.device(self.device):
            model = AutoModelForCausalLM.from_config(self.config)
        model.load_state_dict(self.state)
        return model

    def reward_model(self, seed: int):
        """The causal LM's backbone with a scalar head whose init is seeded (both sides start
        from the same weights)."""
        fields = {k: v for k, v in self.config.to_dict().items()
                  if k not in ("id2label", "label2id")}
        config = LlamaConfig.from_dict({**fields, "num_labels": 1})
        with torch.device(self.device):
            model = AutoModelForSequenceClassification.from_config(config)
        model.model.load_state_dict({k.removeprefix("model."): v for k, v in self.state.items()
                                     if k.startswith("model.")})
        torch.manual_seed(seed)
        torch.nn.init.normal_(model.score.weight, std=self.config.initializer_range)
        return model

    @property
    def parameters(self) -> int:
        return sum(v.numel() for v in self.state.values())


def build_llama(shape: tuple[int, int, int, int, int], n_pairs: int, prompt_len: int,
                completion_len: int, seed: int) -> LlamaWorkload:
    """shape = (layers, hidden, heads, kv heads, intermediate); fp32 weights, dropout off."""
    layers, hidden, heads, kv_heads, intermediate = shape
    data = build("1m", n_pairs, prompt_len, completion_len, seed)  # its GPT-2 weights unused
    tok = data.tokenizer
    config = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, num_hidden_layers=layers,
                         num_attention_heads=heads, num_key_value_heads=kv_heads,
                         intermediate_size=intermediate,
                         max_position_embeddings=prompt_len + completion_len + 8,
                         pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, tie_word_embeddings=False)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config)
    state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    del model
    return LlamaWorkload(tok, state, config, data.prompts, data.chosen, data.rejected,
                         device=device)
