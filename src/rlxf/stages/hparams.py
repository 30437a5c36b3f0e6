"""The lab config's training sections as train/'s hyperparameters (train/hparams.py): the one
place a stage turns `[pretrain]`, `[sft]`, `[reward]`, `[policy]`, `[process]` or `[finetune]`
into what a trainer takes."""

from __future__ import annotations

from ..config import PolicyConfig, RewardConfig, TrainConfig
from ..train.hparams import (DPOHparams, GroupRLHparams, KTOHparams, Optimisation, PPOHparams,
                             RewardHparams, hparams_from)

POLICY_HPARAMS = {"dpo": DPOHparams, "ipo": DPOHparams, "cdpo": DPOHparams,
                  "robust": DPOHparams, "kto": KTOHparams, "grpo": GroupRLHparams,
                  "rloo": GroupRLHparams, "ppo": PPOHparams}


def train_hparams(section: TrainConfig) -> Optimisation:
    """[policy]: its algorithm's block; [reward]: the reward model's; any other training section:
    the optimisation block alone."""
    if isinstance(section, PolicyConfig):
        if section.algorithm not in POLICY_HPARAMS:
            raise ValueError(f"[policy] algorithm = {section.algorithm!r} trains nothing")
        return hparams_from(POLICY_HPARAMS[section.algorithm], section)
    if isinstance(section, RewardConfig):
        return hparams_from(RewardHparams, section)
    return hparams_from(Optimisation, section)
