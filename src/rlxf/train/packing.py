"""SFT packing as TRL 1.16 does it (`SFTConfig(packing=True)`, strategy "bfd"): the examples are
placed into rows of at most `capacity` tokens by best-fit decreasing, each row keeps its
sequences whole, position ids restart at every sequence, and no sequence attends to another.

The order is TRL's (`trl.data_utils._pack_bfd`): examples by length, longest first (ties in
data order); each goes into the open row with the least room that still fits it (among rows
with the same room, the one that reached that room first), else into a new row; rows in the
order they were opened, a row's sequences in the order they were placed. Attention: the
forward gets position ids and no attention mask, from which transformers builds a causal mask
that is block-diagonal over the sequences (`masking_utils.find_packed_sequence_indices`, what
TRL's padding-free batches rely on with SDPA / eager attention; flash attention reads the
position ids itself). The first token of every sequence is never a target (it would be
predicted from the previous sequence), as in TRL's collator."""

from __future__ import annotations

import bisect
from collections import deque
from typing import NamedTuple

import torch


class Packed(NamedTuple):
    """One packed row: the sequences' ids end to end, which tokens are trained (0/1 each, a
    sequence's first token 0), each sequence's length."""
    ids: list[int]
    trained: list[int]
    lengths: list[int]


def best_fit_decreasing(lengths: list[int], capacity: int) -> list[list[int]]:
    """Rows of example indices (TRL's bfd order, see the module's doc); every length must be in
    1..capacity."""
    bad = [n for n in lengths if not 0 < n <= capacity]
    if bad:
        raise ValueError(f"cannot pack a sequence of {bad[0]} tokens into rows of {capacity}")
    rooms: list[int] = []                      # sorted free room of the open rows (with room)
    by_room: dict[int, deque] = {}             # free room -> rows with it, first reached first
    rows: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        n = lengths[i]
        at = bisect.bisect_left(rooms, n)
        if at < len(rooms):
            room = rooms.pop(at)
            row = by_room[room].popleft()
            if by_room[room]:  # another row has that room too
                bisect.insort(rooms, room)
        else:
            room, row = capacity, []
            rows.append(row)
        row.append(i)
        left = room - n
        if left > 0:
            if not by_room.get(left):
                bisect.insort(rooms, left)
            by_room.setdefault(left, deque()).append(row)
    return rows


def trained_mask(ids: list[int], trained: int | list[int]) -> list[int]:
    """An SFT example's `trained` (the index of the first trained token, or a 0/1 mask: train_lm's
    convention) as a 0/1 mask over its ids."""
    if isinstance(trained, int):
        return [0] * min(trained, len(ids)) + [1] * max(len(ids) - trained, 0)
    return list(trained) + [0] * (len(ids) - len(trained))


def pack(examples: list[tuple[list[int], int | list[int]]], capacity: int) -> list[Packed]:
    """train_lm's examples (ids, trained) packed into rows of at most `capacity` tokens."""
    rows = []
    for row in best_fit_decreasing([len(ids) for ids, _ in examples], capacity):
        ids, trained, lengths = [], [], []
        for i in row:
            seq, mask = examples[i][0], trained_mask(*examples[i])
            ids += seq
            trained += [0] + mask[1:]  # never predicted from the sequence before it
            lengths.append(len(seq))
        rows.append(Packed(ids, trained, lengths))
    return rows


def position_ids(rows: list[Packed], width: int) -> torch.Tensor:
    """(rows, width): each sequence's positions from 0; a row's padding after its last sequence
    counts as one more sequence from 0 (a block of its own: never attended by real tokens)."""
    out = torch.zeros(len(rows), width, dtype=torch.long)
    for r, row in enumerate(rows):
        at = 0
        for n in row.lengths + [width - len(row.ids)]:
            out[r, at: at + n] = torch.arange(n)
            at += n
    return out
