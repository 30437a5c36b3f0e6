"""One forward for a batch of (prompt, response a, response b) triples that runs each prompt once.

A preference pair's two responses share their prompt; the plain way (TRL's too) runs prompt +
response for both, so every prompt token goes through the network twice. Here the prompts run
once with a KV cache, the cache is repeated for the two responses, and the responses run on top
of it; gradients flow through the cache into the prompt's computation, so the result is the
same function as two full forwards (equal to float32 rounding; tests/test_shared_prefix.py).
Measured in bench/: 24-token prompts and 32-token responses cost 1408 instead of 1792 token
forwards per 16 pairs."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .batching import fully_sharded, pad_right
from .head_logprobs import head_token_logprobs
from .kv_cache import cache_kwargs, returned_cache


# Architectures whose cache path is tested against full forwards (tests/test_shared_prefix.py,
# tests/test_group_sampling.py), without a sliding attention window (a window changes what a
# position attends to; Qwen2 has none unless `use_sliding_window`, Mistral's default has one).
TESTED = ("gpt2", "llama", "qwen2", "mistral", "gemma")


def applies_to(model) -> bool:
    """Plain transformers models of a tested architecture (GPT-2, Llama, Qwen2, Mistral, Gemma;
    no sliding window), without gradient checkpointing (which turns the KV cache off in
    training). Others (peft-wrapped, checkpointed, untested
    architectures) take the two-full-forwards path, and so does a model wrapped for several
    processes (DistributedDataParallel: no `config`), whose gradients are synchronised only
    through its own forward, or sharded by FSDP, which gathers parameters in that forward."""
    config = getattr(model, "config", None)
    return (getattr(config, "model_type", None) in TESTED
            and getattr(config, "sliding_window", None) is None
            and not hasattr(model, "get_base_model")
            and not _checkpointing(model) and not fully_sharded(model))


def _checkpointing(model) -> bool:
    if hasattr(type(model), "is_activation_checkpointing"):  # transformers >= 5's name
        return model.is_activation_checkpointing
    return getattr(model, "is_gradient_checkpointing", False)


@dataclass
class PairHidden:
    """Final hidden states of the backbone, rows [a_0..a_{B-1}, b_0..b_{B-1}] (2B rows)."""
    predictors: torch.Tensor   # (2B, Tr, d): the state that predicts response token t
    targets: torch.Tensor      # (2B, Tr): response token ids (pad where mask == 0)
    mask: torch.Tensor         # (2B, Tr): 1 on real response tokens
    last: torch.Tensor         # (2B, d): the state a reward head reads (GroupStates.scored_index)


@dataclass
class GroupStates:
    """The backbone's outputs before they are gathered: each prompt once, its k responses on
    consecutive rows (prompt i's are rows i·k ... i·k + k - 1), each right-padded."""
    prompt: torch.Tensor       # (B, Tp, d)
    prompt_mask: torch.Tensor  # (B, Tp)
    response: torch.Tensor     # (k·B, Tr, d)
    response_ids: torch.Tensor  # (k·B, Tr)
    response_mask: torch.Tensor  # (k·B, Tr)
    prompt_ids: torch.Tensor | None = None  # (B, Tp)
    # True: `response` holds the states of response tokens 0 .. Tr - 2 only (group_states'
    # `predictors_only`): the last token's state predicts nothing a log-prob reads
    without_last: bool = False

    @property
    def k(self) -> int:
        return self.response.shape[0] // self.prompt.shape[0]

    def predictors(self) -> torch.Tensor:
        """(k·B, Tr, d): the state that predicts response token t (the prompt's last state for
        t = 0, else the response's state at t - 1)."""
        n = self.prompt.shape[0]
        last_prompt = self.prompt[torch.arange(n), self.prompt_mask.sum(1) - 1]
        return torch.cat([last_prompt.repeat_interleave(self.k, 0)[:, None],
                          self.response if self.without_last else self.response[:, :-1]], 1)

    def sequence_layout(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(states (k·B, Tp + Tr, d), ids, mask): each row's prompt (padded to Tp) then its
        response, the layout `scored_index` indexes."""
        if self.without_last:
            raise ValueError("group_states(predictors_only=True) ran no last response token")
        k = self.k
        return (torch.cat([self.prompt.repeat_interleave(k, 0), self.response], 1),
                torch.cat([self.prompt_ids.repeat_interleave(k, 0), self.response_ids], 1),
                torch.cat([self.prompt_mask.repeat_interleave(k, 0), self.response_mask], 1))

    def scored_index(self, pad_id: int) -> torch.Tensor:
        """(k·B,): where a sequence-classification head reads each row, in `sequence_layout`.
        transformers' rule (`*ForSequenceClassification`, what TRL and anyone loading the model
        use): the rightmost token whose id is not pad_token_id -- so when pad == eos, the token
        before a final <eos>, not the <eos> itself; 0 when every token is pad."""
        _, ids, mask = self.sequence_layout()
        real = ((ids != pad_id) & mask.bool()).long()
        return (torch.arange(ids.shape[1]) * real).argmax(1)

    def to_pair_order(self, t: torch.Tensor) -> torch.Tensor:
        """Pairs (k = 2): rows interleaved (a0, b0, a1, b1, ...) -> [a..., b...]."""
        rows = torch.arange(t.shape[0])
        return t[torch.cat([rows[0::2], rows[1::2]])]


def group_states(backbone, prompts: list[list[int]], responses: list[list[int]],
                 pad_id: int, predictors_only: bool = False) -> GroupStates:
    """`backbone` is the transformer without its head (`model.base_model`); `responses` holds
    k per prompt, grouped by prompt (k = len(responses) / len(prompts)). `predictors_only`:
    each response's last token is not run (causal attention: no other state depends on it),
    so only `predictors()` can be read -- what log-probs need, 1/Tr of the work less."""
    k, rest = divmod(len(responses), len(prompts))
    if rest or k < 1:
        raise ValueError(f"{len(responses)} responses for {len(prompts)} prompts: need k each")
    if any(not r for r in responses):
        raise ValueError("every response needs at least one token (its <eos>)")
    p_ids, p_mask = pad_right(prompts, pad_id)
    out = backbone(input_ids=p_ids, attention_mask=p_mask, use_cache=True)
    cache = returned_cache(out)
    cache.batch_repeat_interleave(k)  # row i·k + j continues prompt i
    r_ids, r_mask = pad_right(responses, pad_id)
    # token t of a response is run where token t + 1 exists
    ids, mask = (r_ids[:, :-1], r_mask[:, 1:]) if predictors_only else (r_ids, r_mask)
    if ids.shape[1] == 0:  # every response is one token: only the prompts' states are read
        states = out.last_hidden_state.new_zeros(len(responses), 0,
                                                 out.last_hidden_state.shape[2])
    else:
        # Each response continues right after its own prompt; pad positions get 0 (never
        # attended).
        starts = p_mask.sum(1).repeat_interleave(k)
        pos = (starts[:, None] + torch.arange(ids.shape[1])).masked_fill(mask == 0, 0)
        states = backbone(input_ids=ids, attention_mask=torch.cat(
            [p_mask.repeat_interleave(k, 0), mask], 1), position_ids=pos, use_cache=False,
            **cache_kwargs(backbone, cache)).last_hidden_state
    return GroupStates(out.last_hidden_state, p_mask, states, r_ids, r_mask, p_ids,
                       without_last=predictors_only)


def pair_states(backbone, prompts: list[list[int]], a: list[list[int]], b: list[list[int]],
                pad_id: int, predictors_only: bool = False) -> GroupStates:
    """k = 2: rows a_0, b_0, a_1, b_1, ..."""
    return group_states(backbone, prompts, [r for pair in zip(a, b) for r in pair], pad_id,
                        predictors_only)


def pair_hidden(backbone, prompts: list[list[int]], a: list[list[int]], b: list[list[int]],
                pad_id: int) -> PairHidden:
    """`backbone` is the transformer without its head (`model.base_model`)."""
    s = pair_states(backbone, prompts, a, b, pad_id)
    r_mask = s.response_mask
    states = s.sequence_layout()[0]
    last = states[torch.arange(states.shape[0]), s.scored_index(pad_id)]
    return PairHidden(s.to_pair_order(s.predictors()), s.to_pair_order(s.response_ids),
                      s.to_pair_order(r_mask), s.to_pair_order(last))


def response_token_logprobs(model, s: GroupStates) -> torch.Tensor:
    """(k·B, Tr): log π(response token t | prompt, response < t), 0 on padding. The LM head and
    the softmax run on response positions only (models/head_logprobs.py)."""
    token_lp = head_token_logprobs(model.get_output_embeddings(), s.predictors(),
                                   s.response_ids)
    return token_lp * s.response_mask


def group_token_logprobs(model, prompts: list[list[int]], responses: list[list[int]],
                         pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-token log-probs (k·B, Tr), response mask (k·B, Tr)) of k responses per prompt
    (grouped by prompt, as GRPO samples them), each prompt run once."""
    s = group_states(model.base_model, prompts, responses, pad_id, predictors_only=True)
    return response_token_logprobs(model, s), s.response_mask


def pair_response_logprobs(model, prompts, a, b, pad_id: int) -> torch.Tensor:
    """(2B,): summed log π(response | prompt) for [a..., b...]."""
    s = pair_states(model.base_model, prompts, a, b, pad_id, predictors_only=True)
    return s.to_pair_order(response_token_logprobs(model, s).sum(-1))
