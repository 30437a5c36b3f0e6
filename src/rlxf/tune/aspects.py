"""`rlxf reward --aspects`: a multi-aspect regression reward model on rating records (HelpSteer2's
attribute model, Wang et al. 2024): one head output per rating aspect in the file, trained by
mean squared error on the ratings each response has (losses.rating_regression_loss), in the same
loop as Bradley-Terry (train_reward_model with another batch loss). OUT gets heads.json (the
aspect names, models/reward_heads.py's format), so `HeadedRewardModel.load` and `rlxf score`
read one reward per aspect."""

from __future__ import annotations

import math

import torch

from ..data.training_data import Rated
from ..models.chat import ChatFormat
from ..models.reward_scores import head_rewards
from ..train.losses import rating_regression_loss
from .common import Encoded, _example, _fit

RatedIds = tuple[list[int], list[int], list[float]]  # prompt, response, ratings (NaN: none)


def encode_ratings(chat: ChatFormat, items: list[Rated], limit: int, aspects: list[str]
                   ) -> Encoded:
    enc = Encoded()
    for n, item in enumerate(items):
        c = item.conversation
        with _example(n):
            prompt, (response,) = chat.sequences(c.messages, [c.response], c.raw)
        fitted = _fit(prompt, [response], limit, enc)
        if fitted:
            enc.items.append((prompt, fitted[0],
                              [float(item.ratings.get(a, math.nan)) for a in aspects]))
    return enc


def regression_batch(model, items: list[RatedIds], pad_id: int):
    """(loss, share of given ratings the rounded prediction hits)."""
    predicted = head_rewards(model, [p for p, _, _ in items], [r for _, r, _ in items], pad_id)
    target = torch.tensor([t for _, _, t in items], dtype=predicted.dtype)
    known = ~torch.isnan(target)
    hits = (predicted.detach().round() == target) & known
    return rating_regression_loss(predicted, target), hits.sum() / known.sum().clamp(min=1)
