"""What both sides of a benchmark train on: one tokenizer, one initial model, one data set.

The tokenizer is the lab world's word-level tokenizer over the words w0, w1, ...; a text is the
words joined by spaces, so TRL's own tokenization reproduces rlxf's token ids exactly (the
harness checks it). Data is synthetic: the benchmark measures throughput, not learning."""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
from transformers import AutoModelForSequenceClassification, GPT2Config, GPT2LMHeadModel

from rlxf.models.tokenizer import ASSISTANT, BOS, EOS, SPECIALS, USER, build_word_tokenizer

# name -> (n_layer, n_embd, n_head); vocab 2048 for both. "1m" is BENCHMARKS.md's model.
MODELS = {"5m": (6, 256, 4), "1m": (4, 128, 4)}
VOCAB = 2048


@dataclass
class Workload:
    tokenizer: object
    state: dict            # initial weights, loaded into a fresh model for every run
    config: GPT2Config
    prompts: list[list[int]]   # rlxf ids: <bos> <user> words <assistant>
    chosen: list[list[int]]    # words <eos>
    rejected: list[list[int]]

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_token_id

    def causal_lm(self) -> GPT2LMHeadModel:
        model = GPT2LMHeadModel(self.config)
        model.load_state_dict(self.state)
        return model

    def reward_model(self, seed: int):
        """The causal LM's backbone with a scalar head; the head's init is seeded, so both sides
        start from the same weights."""
        fields = {k: v for k, v in self.config.to_dict().items() if k not in ("id2label", "label2id")}
        config = GPT2Config.from_dict({**fields, "num_labels": 1})
        model = AutoModelForSequenceClassification.from_config(config)
        model.transformer.load_state_dict(
            {k.removeprefix("transformer."): v for k, v in self.state.items()
             if k.startswith("transformer.")})
        torch.manual_seed(seed)
        torch.nn.init.normal_(model.score.weight, std=self.config.initializer_range)
        return model

    @property
    def eos_id(self) -> int:
        return self.tokenizer.eos_token_id

    def text(self, ids: list[int]) -> str:
        return " ".join(self.tokenizer.convert_ids_to_tokens(ids))


def build(model: str, n_pairs: int, prompt_len: int, completion_len: int, seed: int) -> Workload:
    """`prompt_len` / `completion_len` count every token, specials included."""
    n_layer, n_embd, n_head = MODELS[model]
    words = [f"w{i}" for i in range(VOCAB - len(SPECIALS))]
    tok = build_word_tokenizer(words)
    # Dropout off, as in rlxf's models and TRL's disable_dropout.
    config = GPT2Config(vocab_size=len(tok), n_positions=prompt_len + completion_len + 8,
                        n_embd=n_embd, n_layer=n_layer, n_head=n_head, resid_pdrop=0.0,
                        embd_pdrop=0.0, attn_pdrop=0.0, pad_token_id=tok.pad_token_id,
                        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(seed)
    state = {k: v.clone() for k, v in GPT2LMHeadModel(config).state_dict().items()}
    rng = random.Random(seed)
    word_ids = tok.convert_tokens_to_ids(words)
    bos, user, asst, eos = tok.convert_tokens_to_ids([BOS, USER, ASSISTANT, EOS])

    def sample(n: int) -> list[int]:
        return [rng.choice(word_ids) for _ in range(n)]
    prompts = [[bos, user, *sample(prompt_len - 3), asst] for _ in range(n_pairs)]
    chosen = [sample(completion_len - 1) + [eos] for _ in range(n_pairs)]
    rejected = [sample(completion_len - 1) + [eos] for _ in range(n_pairs)]
    return Workload(tok, state, config, prompts, chosen, rejected)


# (prompt, sampled completion length) as the GRPO-from-files reward function saw them, in order
# (bench/grpo_reward.py); the harness clears it before each run.
SAMPLED: list[tuple[object, int]] = []


def even_token_reward(completion_ids: list[int]) -> float:
    """The GRPO benchmark's reward, the same scalar function on both sides: the share of the
    completion's tokens with an even id. Cheap and deterministic, so the benchmark times the
    trainers, not a reward model."""
    return sum(1 for t in completion_ids if t % 2 == 0) / max(1, len(completion_ids))


def param_counts(model) -> dict:
    """Parameters that take part in a matmul for every token (so 2·N FLOPs per token forward):
    everything but the position embeddings; the token embedding counts only when it is also
    the (tied) LM head."""
    total = sum(p.numel() for p in model.parameters())
    wpe = model.transformer.wpe.weight.numel()
    matmul = total - wpe
    if not hasattr(model, "lm_head"):  # a reward model: the embedding is a lookup only
        matmul -= model.transformer.wte.weight.numel()
    return {"total": total, "matmul": matmul}
