"""What train/'s functions take: small frozen hyperparameter blocks, independent of any config
schema (the lab's TOML sections, the `rlxf sft|reward|dpo|...` tables). Whoever holds a config
builds these from it, in one place: stages/hparams.py for the lab, tune/hparams.py for the
real-model commands. Field names are the configs' own, so `hparams_from` copies them by name.

Validation of user input (which key, which value, what is allowed) is the configs' job; the
checks here only stop a library caller from training on a value that cannot mean anything."""

from __future__ import annotations

import typing
from dataclasses import dataclass, field, fields, is_dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class Optimisation:
    """The training engine's block (train/engine.py, train/loop.py): every trainer takes it."""
    steps: int                      # optimizer updates
    batch_size: int                 # items per update (the global batch, over all processes)
    lr: float                       # peak AdamW learning rate (warm-up, then cosine to 10%)
    warmup_steps: int = 0           # linear warm-up steps
    grad_accum: int = 1             # micro-batches per update
    precision: str = "fp32"         # "auto", "fp32", "bf16" or "fp16" (accelerate's autocast)
    device: str = "auto"            # "auto" (the launcher's GPU, else CPU), "cpu" or "cuda"
    eval_every: int | None = None   # steps between evaluations (needed when a trainer evaluates)

    def __post_init__(self):
        for name in ("steps", "batch_size", "grad_accum"):
            if getattr(self, name) < 1:
                raise ValueError(f"{type(self).__name__}.{name} = {getattr(self, name)}: must "
                                 "be >= 1")
        if not self.lr > 0 or self.warmup_steps < 0:
            raise ValueError(f"{type(self).__name__}: lr = {self.lr} must be > 0 and "
                             f"warmup_steps = {self.warmup_steps} >= 0")
        if self.eval_every is not None and self.eval_every < 1:
            raise ValueError(f"{type(self).__name__}.eval_every = {self.eval_every}: must be "
                             ">= 1 (or None)")


@dataclass(frozen=True, kw_only=True)
class RewardHparams(Optimisation):
    """A reward model trained or loaded by `train.reward.train_or_load`."""
    checkpoint_every: int           # steps between resumable checkpoints
    center_coefficient: float = 0.0  # reward-centring penalty c·E[(r_c + r_r)²]


@dataclass(frozen=True, kw_only=True)
class DPOHparams(Optimisation):
    """The DPO family (train/dpo.py)."""
    algorithm: str = "dpo"          # "dpo", "ipo", "cdpo" or "robust"
    beta: float                     # KL strength β
    label_smoothing: float = 0.0    # cdpo / robust: the assumed label-flip rate ε


@dataclass(frozen=True, kw_only=True)
class KTOHparams(Optimisation):
    """KTO (train/kto.py); desirable and undesirable weights are 1."""
    beta: float                     # KTO's β


@dataclass(frozen=True, kw_only=True)
class GroupParams:
    """GRPO / RLOO's group and update."""
    group_size: int                 # responses sampled per prompt (G)
    kl_coef: float                  # β: k3 per token in the loss (grpo), in the reward (rloo)
    clip_range: float               # ratio clip ε (binds only with updates_per_rollout > 1)
    updates_per_rollout: int = 1    # optimizer updates per sampled batch (GRPO's μ)


@dataclass(frozen=True, kw_only=True)
class SafeParams:
    """Safe RL's constraint E[cost] <= cost_threshold by a Lagrange multiplier (dual ascent)."""
    cost_threshold: float | None = None  # the bound d (None: no constraint)
    lagrangian_init: float = 1.0    # initial multiplier λ
    lagrangian_lr: float = 0.05     # dual ascent step size η


@dataclass(frozen=True, kw_only=True)
class GroupRLHparams(Optimisation):
    """GRPO and RLOO (train/group_rl.py)."""
    algorithm: str                  # "grpo" or "rloo"
    group: GroupParams
    safe: SafeParams = field(default_factory=SafeParams)


@dataclass(frozen=True, kw_only=True)
class PPOParams:
    """PPO's own options (train/ppo.py)."""
    kl_coef: float                  # β of the per-token KL penalty (initial value with kl_target)
    kl_target: float | None = None  # adaptive controller's target KL per response (None: fixed β)
    kl_horizon: float = 10000       # adaptive controller's horizon (samples)
    gamma: float = 1.0              # discount
    lam: float                      # GAE λ
    clip_range: float               # policy ratio clip ε
    clip_range_value: float         # value clip ε_v
    vf_coef: float                  # weight of the value loss
    epochs: int                     # optimisation epochs over each rollout batch
    minibatches: int                # minibatches per epoch
    whiten_rewards: bool = False    # scale per-token rewards to unit variance before GAE
    temperature: float = 1.0        # rollout sampling temperature


@dataclass(frozen=True, kw_only=True)
class PPOHparams(Optimisation):
    """PPO with a value head (train/ppo.py)."""
    ppo: PPOParams


def hparams_from(cls: type[T], source, **given) -> T:
    """`cls` with each field read by name from `source` (any object with those attributes: a
    config section), nested blocks likewise; `given` sets fields directly. A field `source`
    lacks keeps its default; one without a default is a TypeError naming it."""
    types = typing.get_type_hints(cls)
    values = dict(given)
    for f in fields(cls):
        if f.name in values or not hasattr(source, f.name):
            continue
        value = getattr(source, f.name)
        values[f.name] = hparams_from(types[f.name], value) if is_dataclass(types[f.name]) \
            else value
    return cls(**values)
