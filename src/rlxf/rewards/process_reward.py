"""A process reward model as a reward source, `--reward prm:PATH`: one reward per step of each
reply, σ(logit) of the PRM on the prompt and the reply up to the end of that step (the
probability that the step is right, as the lab's PRM is trained: train/process.py).

PATH is either
- a lab run directory whose `process` stage ran: its PRM (RUN/process/prm, with the world's
  word tokenizer), steps in the multihop format (rewards/steps.py `lab_step_ends`); or
- a PRM directory: any `AutoModelForSequenceClassification` with one label (or a LoRA adapter
  of one) scoring prompt + reply prefix at its last token; steps are non-blank lines
  (`text_step_ends`); the prefix is encoded with the PRM's own chat format, without an end
  of turn.

The outcome score (for metrics, the held-out reward and combination with other sources) is the
minimum over the steps, as the lab's best-of-n uses it (train/process.py `process_score`); the
recipes credit each step with its own reward (train/advantages.py `process_advantages`).

`orm:RUN` is the same lab run's outcome reward model, the PRM's peer in the process stage:
σ(logit) of the ORM on the prompt and the whole reply (the probability that the final answer is
right), one reward per reply: the outcome-reward policy that PRM hacking is measured beside."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from ..models.batching import pad_right
from .batch import RewardBatch, RewardError, messages_of
from .steps import lab_step_ends, text_step_ends


@dataclass(frozen=True)
class StepScores:
    rewards: list[float]    # one per step, σ(PRM logit)
    char_ends: list[int]    # where each step ends in the decoded reply (exclusive)


class ProcessRewardModel:
    kind = "prm"

    def __init__(self, path: Path, batch_size: int = 16):
        from ..models.build import load_tokenizer
        from ..models.chat import chat_format
        from .reward_model import load_reward_model
        self.batch_size = batch_size
        if (path / "world" / "world.json").exists():
            model_dir, tok_dir = lab_model_dirs(path, "prm")
            self.lab = True
            self.split = lab_step_ends
        else:
            model_dir = tok_dir = path
            if not (path / "config.json").exists() and \
                    not (path / "adapter_config.json").exists():
                raise RewardError(f"--reward prm:{path}: not a model directory (no "
                                  "config.json or adapter_config.json) nor a lab run")
            self.lab = False
            self.split = text_step_ends
        self.name = f"prm:{path.name}"
        self.tokenizer = load_tokenizer(tok_dir)
        self.chat = chat_format(self.tokenizer)
        self.model = load_reward_model(model_dir)
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id

    def _encode(self, prompt, prefix: str) -> list[int]:
        if self.lab:
            return lab_ids(self.tokenizer, prompt, prefix)
        from .encoding import prompt_ids
        return prompt_ids(self.chat, prompt) + self.chat.encode(prefix)

    def steps(self, batch: RewardBatch) -> list[StepScores]:
        ends = [self.split(text) for text in batch.texts]
        seqs = [self._encode(p, text[:e]) for p, text, es in zip(batch.prompts, batch.texts, ends)
                for e in es]
        logits = batched_logits(self.model, seqs, self.batch_size)
        out, k = [], 0
        for es in ends:
            out.append(StepScores([1 / (1 + math.exp(-z)) for z in logits[k: k + len(es)]], es))
            k += len(es)
        return out

    def __call__(self, batch: RewardBatch) -> list[float | None]:
        return [min(s.rewards) if s.rewards else None for s in self.steps(batch)]


class OutcomeRewardModel:
    """`orm:RUN`: a lab run's outcome reward model, σ(logit) on the prompt and the whole reply."""
    kind = "orm"

    def __init__(self, path: Path, batch_size: int = 16):
        from ..models.build import load_tokenizer
        from .reward_model import load_reward_model
        if not (path / "world" / "world.json").exists():
            raise RewardError(f"--reward orm:{path}: not a lab run directory (no "
                              "world/world.json); orm: is the process stage's outcome reward "
                              "model (any other reward model: give its directory)")
        model_dir, tok_dir = lab_model_dirs(path, "orm")
        self.name, self.batch_size = f"orm:{path.name}", batch_size
        self.tokenizer = load_tokenizer(tok_dir)
        self.model = load_reward_model(model_dir)

    def __call__(self, batch: RewardBatch) -> list[float | None]:
        seqs = [lab_ids(self.tokenizer, p, text) for p, text in zip(batch.prompts, batch.texts)]
        return [1 / (1 + math.exp(-z))
                for z in batched_logits(self.model, seqs, self.batch_size)]


def lab_model_dirs(run: Path, which: str) -> tuple[Path, Path]:
    """A lab run's process-stage reward model (`prm` or `orm`) and the stage's tokenizer."""
    model_dir = run / "process" / which
    if not (model_dir / "config.json").exists():
        kind = "a process" if which == "prm" else "an outcome"
        raise RewardError(f"--reward {which}:{run}: a lab run without {kind} reward model "
                          f"({model_dir}: no config.json); enable [process] and run the "
                          "process stage")
    return model_dir, run / "process" / "tokenizer"


def lab_ids(tokenizer, prompt, text: str) -> list[int]:
    """The process stage's encoding: <bos> <user> prompt <assistant> and the reply's words."""
    from ..models.tokenizer import prompt_ids as lab_prompt_ids
    return (lab_prompt_ids(tokenizer, messages_of(prompt)[-1]["content"])
            + tokenizer.convert_tokens_to_ids(text.split()))


@torch.no_grad()
def batched_logits(model, seqs: list[list[int]], batch_size: int) -> list[float]:
    pad, logits = model.config.pad_token_id, []
    for b in range(0, len(seqs), batch_size):
        ids, mask = pad_right(seqs[b: b + batch_size], pad)
        logits += model(input_ids=ids, attention_mask=mask).logits[:, 0].tolist()
    return logits
