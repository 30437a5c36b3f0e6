"""Next-token training: pretraining (loss on every token) and SFT (loss on the response only)."""

from __future__ import annotations

import torch

from ..models.fused_ops import fuse_activations
from ..models.batching import fully_sharded, pad_right
from .engine import Engine
from .hparams import Optimisation
from .loop import BatchOrder, Checkpointer, StepCallback
from .packing import Packed, pack, position_ids


def lm_batch(examples: list[tuple[list[int], int | list[int]]], pad_id: int):
    """examples: (token ids, index of the first token that is trained on -- or a 0/1 mask over
    the ids, for multi-turn SFT's assistant turns); or packed rows (train/packing.py)."""
    ids, mask = pad_right([ex[0] for ex in examples], pad_id)
    labels = ids.clone()
    labels[mask == 0] = -100
    for i, (_, trained, *_) in enumerate(examples):
        if isinstance(trained, int):
            labels[i, :trained] = -100
        else:
            labels[i, : len(trained)][torch.tensor(trained) == 0] = -100
    return ids, mask, labels


def backbone_of(model):
    """The transformer without its LM head. A peft model's `base_model` is the LoRA wrapper of the
    whole causal LM, so look through it to the causal LM's own backbone (adapters stay active)."""
    if hasattr(model, "get_base_model"):
        model = model.get_base_model()
    return model.base_model


def lm_loss(model, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor,
            reduction: str = "mean", position_ids: torch.Tensor | None = None) -> torch.Tensor:
    """Next-token cross-entropy over the trained tokens (labels != -100), their mean (what
    `model(labels=...).loss` computes) or sum, with the LM head and the softmax run only where a
    label is trained (SFT trains on the response alone, so the prompt's logits would be thrown
    away). The logits are at least float32 under bf16 autocast. With `position_ids` (packed
    rows, train/packing.py) no attention mask is passed: transformers then keeps each packed
    sequence to itself (it reads the restarts of the position ids only without a KV cache). A
    model sharded by FSDP runs its own forward (every position's logits): its blocks gather
    their parameters there."""
    device = model.get_output_embeddings().weight.device
    ids, labels = ids.to(device), labels.to(device)
    inputs = ({"attention_mask": mask.to(device)} if position_ids is None
              else {"position_ids": position_ids.to(device)})
    targets = labels[:, 1:]
    keep = targets != -100
    if fully_sharded(model):
        logits = model(input_ids=ids, use_cache=False, **inputs).logits[:, :-1][keep]
    else:
        hidden = backbone_of(model)(input_ids=ids, use_cache=False, **inputs).last_hidden_state
        logits = model.get_output_embeddings()(hidden[:, :-1][keep])
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    return torch.nn.functional.cross_entropy(logits, targets[keep], reduction=reduction)


def packed_positions(rows: list, width: int) -> torch.Tensor | None:
    """Position ids of packed rows (each sequence from 0), None for plain examples."""
    return position_ids(rows, width) if rows and isinstance(rows[0], Packed) else None


# Architectures whose packed forward is tested against the padded one (tests/test_packing.py):
# transformers keeps packed sequences apart only where the model builds its mask through
# masking_utils, so others are not packed unless a caller asks.
PADDING_FREE_TESTED = ("gpt2", "llama")


def padding_free_by_default(model, device: torch.device) -> bool:
    """On the CPU, for a tested architecture (also under a peft wrapper, which forwards
    `config`)."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    return device.type == "cpu" and model_type in PADDING_FREE_TESTED


def padding_free_rows(examples: list) -> list:
    """A micro-batch's examples packed into rows no longer than its longest example (the
    padded batch's width), so that the positions a padded batch would fill with padding mostly
    hold other examples' tokens. The same sequences, trained tokens and loss (each sequence sees
    only itself: train/packing.py), as TRL's `padding_free`. Rows that are already packed stay,
    and so do examples of which no two fit in one row (equal lengths: nothing to gain)."""
    if not examples or isinstance(examples[0], Packed):
        return examples
    lengths = sorted(len(ids) for ids, *_ in examples)
    if len(lengths) < 2 or lengths[0] + lengths[1] > lengths[-1]:
        return examples
    return pack(examples, lengths[-1])


def train_lm(model, examples: list[tuple[list[int], int]], cfg: Optimisation, pad_id: int,
             seed: int, ckpt: Checkpointer, on_step: StepCallback | None = None,
             engine: Engine | None = None, padding_free: bool | None = None) -> dict:
    """The loss is the mean over the global batch's trained tokens (as TRL's SFTTrainer), also
    with gradient accumulation and several processes: each micro-batch contributes its token
    sum divided by the global batch's token count. `examples` may be packed rows
    (train/packing.py: `pack`), cfg.batch_size rows a step, as TRL's `packing=True`.
    `padding_free` (None: `padding_free_by_default`) computes each micro-batch as
    `padding_free_rows`: the same step up to float rounding (tests/test_packing.py), cheaper on
    the CPU, where every padded position costs as much as a real one (bench/README.md: the
    lab's pretraining and SFT steps). Off by default on a GPU, where it has not been measured."""
    engine = engine or Engine(cfg, recipe="sft")
    fuse_activations(model)  # same function, cheaper kernels (models/fused_ops.py)
    order = BatchOrder(len(examples), cfg.batch_size, seed)
    if padding_free is None:
        padding_free = padding_free_by_default(model, engine.device)

    def losses(model, step: int):
        micro = [[examples[i] for i in idx]
                 for idx in engine.micro_batches(order.indices(step))]
        if padding_free:
            micro = [padding_free_rows(rows) for rows in micro]
        batches = [lm_batch(rows, pad_id) for rows in micro]
        counts = [int((labels[:, 1:] != -100).sum()) for _, _, labels in batches]
        total = engine.global_sum(sum(counts))
        engine.items += sum(int(mask.sum()) for _, mask, _ in batches)
        for (ids, mask, labels), rows, count in zip(batches, micro, counts):
            loss = lm_loss(model, ids, mask, labels, reduction="sum",
                           position_ids=packed_positions(rows, ids.shape[1]))
            # the metric is this micro-batch's token mean; the gradient's weight its tokens' share
            yield loss * (engine.num_processes / total), \
                {"loss/lm": loss.item() / max(count, 1)}

    return engine.run(model, losses, ckpt, on_step=on_step,
                      items_per_step=("throughput/tokens_per_s", None))
