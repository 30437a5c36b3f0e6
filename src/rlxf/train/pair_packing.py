"""Preference pairs padding-free: a micro-batch's (prompt, response a, response b) triples packed
end to end into rows, each prompt once with its two responses after it as two branches.

The padded path (models/shared_prefix.py) pads every prompt to the batch's longest and every
response to the longest response; on the lab's pairs about half of those positions are padding
and, on the CPU, a padded position costs what a real one does. Here a triple is one segment
[prompt | a | b] and the segments are placed into rows by best-fit decreasing
(train/packing.py), rows as wide as the longest segment. Positions restart at every segment,
and b's continue from the prompt's end as a's do; a custom attention mask lets each token see
the earlier tokens of its own segment except that b's tokens never see a's. So every response
sees exactly its prompt and itself, as in two separate prompt + response forwards: the same
function up to float rounding (tests/test_pair_packing.py, float64, values and gradients, GPT-2
and Llama).

`pack_for` packs only where it pays: for models whose attention takes the mask as given (sdpa,
eager) among those the shared-prefix path is tested on, on the CPU, and when the rows hold at
most MAX_SHARE of the padded batch's positions. Equal-length pairs (bench/run.py's workload)
gain nothing from packing and lose to its masked attention (bench/README.md: 5-7% slower at one
pair a row); they, and every other case, take the shared-prefix path."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..models.batching import device_of
from ..models.last_layer import gpt2_block_at, supports as last_layer_supports
from ..models.last_layer import without_last_layer
from ..models.shared_prefix import applies_to as shared_prefix_applies
from .packing import best_fit_decreasing

ATTENTIONS = ("sdpa", "eager")  # the implementations that take a 4-D mask as it is
MAX_SHARE = 0.8  # packed positions / padded positions at or below which packing is used


def applies_to(model) -> bool:
    """On the CPU (where padding costs as much as a token; not measured on a GPU), plain
    transformers models of a tested architecture with sdpa or eager attention."""
    return (shared_prefix_applies(model) and device_of(model).type == "cpu"
            and getattr(model.config, "_attn_implementation", None) in ATTENTIONS)


@dataclass
class PackedPairs:
    """A micro-batch's pairs in rows. Per response, rows [a_0..a_{B-1}, b_0..b_{B-1}]:
    `row` its row, `predictors` (2B, Tr) the positions whose states predict its tokens (the
    prompt's last, then its own tokens but the last), `targets`/`target_mask` (2B, Tr) its ids
    and real tokens, `scored` (2B,) where a sequence-classification head reads it
    (transformers' rule: the last token of prompt + response whose id is not pad)."""
    ids: torch.Tensor         # (R, W)
    positions: torch.Tensor   # (R, W)
    allowed: torch.Tensor     # (R, W, W) bool: query position may attend key position
    row: torch.Tensor         # (2B,)
    predictors: torch.Tensor  # (2B, Tr)
    targets: torch.Tensor     # (2B, Tr)
    target_mask: torch.Tensor  # (2B, Tr)
    scored: torch.Tensor      # (2B,)

    def attention_mask(self, model) -> torch.Tensor:
        """(R, 1, W, W) as the model's attention takes it: bool for sdpa, additive for eager."""
        mask = self.allowed[:, None]
        if model.config._attn_implementation == "sdpa":
            return mask
        dtype = next(model.parameters()).dtype
        return torch.zeros(mask.shape, dtype=dtype).masked_fill(~mask, torch.finfo(dtype).min)


def pack_for(model, prompts: list[list[int]], a: list[list[int]], b: list[list[int]],
             pad_id: int) -> PackedPairs | None:
    """The pairs packed for `model`, or None where packing does not apply or pay (see the
    module's doc)."""
    if not applies_to(model):
        return None
    lengths = [len(p) + len(x) + len(y) for p, x, y in zip(prompts, a, b)]
    rows = best_fit_decreasing(lengths, max(lengths))
    padded = len(prompts) * (max(map(len, prompts)) + 2 * max(map(len, a + b)))
    if len(rows) * max(lengths) > MAX_SHARE * padded:
        return None
    return pack_pairs(prompts, a, b, pad_id, rows)


def pack_pairs(prompts: list[list[int]], a: list[list[int]], b: list[list[int]],
               pad_id: int, rows: list[list[int]] | None = None) -> PackedPairs:
    """`rows`: the pairs' indices row by row (default: best-fit decreasing, rows as wide as the
    longest prompt + a + b)."""
    if any(not r for r in a + b):
        raise ValueError("every response needs at least one token (its <eos>)")
    n = len(prompts)
    lengths = [len(p) + len(x) + len(y) for p, x, y in zip(prompts, a, b)]
    rows = rows or best_fit_decreasing(lengths, max(lengths))
    width = max(lengths)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    # per position: its segment (padding: a segment of its own) and part (0 prompt, 1 a, 2 b)
    segment = -torch.arange(1, len(rows) * width + 1).view(len(rows), width)
    part = torch.zeros((len(rows), width), dtype=torch.long)
    t_max = max(len(r) for r in a + b)
    row_of = torch.zeros(2 * n, dtype=torch.long)
    predictors = torch.zeros((2 * n, t_max), dtype=torch.long)
    targets = torch.full((2 * n, t_max), pad_id, dtype=torch.long)
    target_mask = torch.zeros((2 * n, t_max), dtype=torch.long)
    scored = torch.zeros(2 * n, dtype=torch.long)
    for r, members in enumerate(rows):
        at = 0
        for i in members:
            p, x, y = prompts[i], a[i], b[i]
            lp = len(p)
            seg = slice(at, at + lengths[i])
            ids[r, seg] = torch.tensor(p + x + y)
            positions[r, seg] = torch.cat([torch.arange(lp + len(x)), torch.arange(lp, lp + len(y))])
            segment[r, seg] = i
            part[r, at + lp: at + lp + len(x)] = 1
            part[r, at + lp + len(x): seg.stop] = 2
            for k, (resp, start) in enumerate(((x, at + lp), (y, at + lp + len(x)))):
                j = i + k * n
                row_of[j] = r
                predictors[j, : len(resp)] = torch.tensor([at + lp - 1] + list(
                    range(start, start + len(resp) - 1)))
                targets[j, : len(resp)] = torch.tensor(resp)
                target_mask[j, : len(resp)] = 1
                scored[j] = _scored(p, resp, pad_id, at, start)
            at = seg.stop
    index = torch.arange(width)
    allowed = ((segment[:, :, None] == segment[:, None, :])
               & (index[None, None, :] <= index[None, :, None])
               & ~((part[:, :, None] == 2) & (part[:, None, :] == 1)))
    return PackedPairs(ids, positions, allowed, row_of, predictors, targets, target_mask, scored)


def _scored(prompt: list[int], response: list[int], pad_id: int, prompt_at: int,
            response_at: int) -> int:
    """Where the head reads prompt + response in the row (GroupStates.scored_index's rule)."""
    for t in range(len(response) - 1, -1, -1):
        if response[t] != pad_id:
            return response_at + t
    for t in range(len(prompt) - 1, -1, -1):
        if prompt[t] != pad_id:
            return prompt_at + t
    return prompt_at


def _forward(backbone, packed: PackedPairs, model) -> torch.Tensor:
    return backbone(input_ids=packed.ids, attention_mask=packed.attention_mask(model),
                    position_ids=packed.positions, use_cache=False).last_hidden_state


def packed_pair_logprobs(model, packed: PackedPairs) -> torch.Tensor:
    """(2B,): summed log π(response | prompt) for [a..., b...]; the LM head and the softmax run
    on response positions only (as shared_prefix.response_token_logprobs)."""
    hidden = _forward(model.base_model, packed, model)
    logits = model.get_output_embeddings()(hidden[packed.row[:, None], packed.predictors])
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    token_lp = torch.gather(logits.log_softmax(-1), 2, packed.targets[..., None]).squeeze(2)
    return (token_lp * packed.target_mask).sum(-1)


def packed_pair_last_hidden(model, packed: PackedPairs) -> torch.Tensor:
    """(2B, d): the final hidden state where a reward head reads each of [a..., b...]. On GPT-2
    the last block runs at those positions only (models/last_layer.py)."""
    backbone = model.base_model
    if not last_layer_supports(backbone):
        return _forward(backbone, packed, model)[packed.row, packed.scored]
    with without_last_layer(backbone) as (block, norm):
        inputs = _forward(backbone, packed, model)
    keys = packed.allowed[packed.row, packed.scored]  # what the read position attends to
    return norm(gpt2_block_at(block, inputs, packed.row, packed.scored, keys))
