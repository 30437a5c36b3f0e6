"""A reward-model directory as a reward source: `rlxf reward`'s output (full, merged or a LoRA
adapter) or any `AutoModelForSequenceClassification` with one label. Each (prompt, reply) is
encoded with the reward model's own tokenizer and chat format (encoding.py) and scored by the
model's plain forward, where transformers scores it (the last non-pad token)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..models.build import load_tokenizer
from ..models.chat import chat_format
from ..models.lora import is_adapter_dir
from ..models.batching import pad_right
from .batch import RewardBatch, RewardError
from .encoding import prompt_ids, response_ids


def load_reward_model(path: Path):
    if is_adapter_dir(path):
        from peft import AutoPeftModelForSequenceClassification
        model = AutoPeftModelForSequenceClassification.from_pretrained(path, num_labels=1)
    else:
        from transformers import AutoModelForSequenceClassification
        model = AutoModelForSequenceClassification.from_pretrained(path)
    if model.config.num_labels != 1:
        raise RewardError(f"--reward {path}: a reward model has one label; this model has "
                          f"{model.config.num_labels} (config.json num_labels)")
    return model.eval()


class RewardModelReward:
    """Scores with a sequence-classification model; `batch_size` rows per forward."""
    kind = "reward_model"

    def __init__(self, path: Path, batch_size: int = 16):
        if not (path / "config.json").exists() and not is_adapter_dir(path):
            raise RewardError(f"--reward {path}: not a model directory (no config.json or "
                              "adapter_config.json)")
        self.name, self.batch_size = f"rm:{path.name}", batch_size
        self.tokenizer = load_tokenizer(path)
        self.chat = chat_format(self.tokenizer)
        self.model = load_reward_model(path)
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id

    @torch.no_grad()
    def __call__(self, batch: RewardBatch) -> list[float | None]:
        seqs = [prompt_ids(self.chat, p) + response_ids(self.chat, p, t)
                for p, t in zip(batch.prompts, batch.texts)]
        pad = self.model.config.pad_token_id
        scores: list[float | None] = []
        for b in range(0, len(seqs), self.batch_size):
            ids, mask = pad_right(seqs[b: b + self.batch_size], pad)
            scores += self.model(input_ids=ids, attention_mask=mask).logits[:, 0].tolist()
        return scores
