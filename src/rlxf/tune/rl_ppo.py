"""`rlxf ppo` on a local model directory and a prompt file: train/ppo.py's recipe (value head
on the policy's last hidden state, per-token KL penalty to the reference, GAE, clipped policy
and value losses) with the reward sources' weighted sum as the terminal reward. Rollouts come
from the group sampler (one sample per prompt). With LoRA the reference is the policy with its
adapters disabled and the value head is trained in full. OUT gets the policy (model, adapter or
merged model) and the value head, value_head.safetensors (tune/value_head.py), from which
`--value-head` starts a later run; the exact-resume checkpoints hold both, and both optimizer
states (the whole PolicyWithValue is the engine's model)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

from ..config import TunePPOConfig
from ..models.lora import reference_of
from ..train.ppo import PolicyWithValue, train_ppo
from .hparams import train_hparams
from .common import check_model_dir
from .rl_session import RLSession, tensorboard
from .value_head import load_into, read_value_head, save_value_head

Progress = Callable[[str, int], Callable[[int, dict], None]] | None


class AdaptersOff:
    """The LoRA policy's base as train/ppo.py's frozen reference: its forward with the adapters
    disabled. It owns no parameters, so freezing "the reference" leaves the policy trainable."""

    def __init__(self, policy):
        self.policy = policy

    def eval(self):
        return self

    def parameters(self):
        return iter(())

    def __call__(self, *args, **kwargs):
        with reference_of(self.policy):
            return self.policy(*args, **kwargs)


def run_ppo(model_dir: Path, prompts_path: Path, out: Path, cfg: TunePPOConfig,
            rewards: list[str], reward_weights: str | None = None,
            progress: Progress = None, eval_extra=None,
            eval_prompts: Path | None = None) -> dict:
    """`eval_extra`: more measurements at each eval point (RLSession.eval_extra);
    `eval_prompts`: the held-out prompts' file (else cfg.eval_fraction of PROMPTS)."""
    start = None  # (tensors, {file, sha256}) of --value-head, checked before OUT.partial/
    if cfg.value_head:
        check_model_dir(model_dir)
        from transformers import AutoConfig
        start = read_value_head(Path(cfg.value_head),
                                AutoConfig.from_pretrained(model_dir.resolve()).hidden_size)
    s = RLSession.open("ppo", model_dir, prompts_path, out, cfg, rewards, reward_weights,
                       eval_extra=eval_extra, eval_prompts=eval_prompts,
                       inputs={"value_head": start[1]} if start else None)

    def score(prompts, responses) -> list[float]:
        total = s.score(prompts, responses).total
        # PPO needs a number for every episode: an unscored one gets the batch's mean (no push)
        scored = [t for t in total if not math.isnan(t)]
        fill = sum(scored) / len(scored) if scored else 0.0
        return [fill if math.isnan(t) else t for t in total]

    import torch
    torch.manual_seed(cfg.seed)  # the value head's initialisation (zeros today; kept explicit)
    model = PolicyWithValue(s.policy)
    if start:  # a resumed run then restores the checkpoint's head over it
        load_into(model.value_head, start[0])
    reference = s.reference if s.reference is not None else AdaptersOff(s.policy)
    tracker = tensorboard(s.output.work / "tb", "ppo", s.engine.is_main_process)
    with tracker:
        result = train_ppo(model, reference, s.train, score, train_hparams(cfg), pad_id=s.pad_id,
                           eos_id=list(s.chat.stop_ids), max_new_tokens=cfg.max_new_tokens,
                           seed=cfg.seed,
                           ckpt=s.output.checkpointer(cfg.checkpoint_every),
                           on_step=tracker.wrap(s.progress(progress, "ppo")),
                           evaluate=lambda step: s.evaluate(step, tracker),
                           accelerator=s.engine.accelerator)
    return s.finish(result, value_head=lambda work: save_value_head(
        model.value_head, work, start[1] if start else None))
