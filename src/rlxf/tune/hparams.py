"""A command's config table ([sft], [reward], [dpo], [kto], [grpo], [rloo], [ppo]) as train/'s
hyperparameters (train/hparams.py): the one place tune/ turns its config into what the engine
and the trainers take."""

from __future__ import annotations

from ..config import (TuneDPOConfig, TuneKTOConfig, TunePPOConfig, TuneRewardConfig,
                      TuneTrainConfig)
from ..train.hparams import (DPOHparams, KTOHparams, Optimisation, PPOHparams, PPOParams,
                             RewardHparams, hparams_from)


def train_hparams(cfg: TuneTrainConfig) -> Optimisation:
    """[dpo], [kto], [ppo], [reward]: their trainer's block; [sft], [grpo], [rloo]: the
    optimisation block (`rlxf grpo|rloo` own their losses, tune/rl.py). PPO samples at the
    table's temperature."""
    if isinstance(cfg, TunePPOConfig):
        ppo = hparams_from(PPOParams, cfg.ppo, temperature=cfg.temperature)
        return hparams_from(PPOHparams, cfg, ppo=ppo)
    for config, hparams in ((TuneDPOConfig, DPOHparams), (TuneKTOConfig, KTOHparams),
                            (TuneRewardConfig, RewardHparams)):
        if isinstance(cfg, config):
            return hparams_from(hparams, cfg)
    return hparams_from(Optimisation, cfg)
