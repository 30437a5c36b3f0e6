"""Token-id lists as padded tensors, and the device a model is on (and whether FSDP shards it):
what every forward over a batch needs, in inference (log-probs, rewards) and in training alike."""

from __future__ import annotations

import torch


def device_of(model: torch.nn.Module) -> torch.device:
    """Where a model's parameters are: batches built on the CPU go there before its forward."""
    return next(model.parameters()).device


def fully_sharded(model: torch.nn.Module) -> bool:
    """Sharded by FSDP2 (`fully_shard`): its blocks gather their parameters only inside their
    own forward, so a caller must run the model's forward, not parts of it directly."""
    if not torch.distributed.is_available():
        return False
    from torch.distributed.fsdp import FSDPModule
    return isinstance(model, FSDPModule)


def pad_right(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention_mask), both (B, T_max)."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(s)] = 1
    return ids, mask
