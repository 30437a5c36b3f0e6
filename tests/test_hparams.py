"""train/'s own hyperparameters (train/hparams.py) and the two adapters that build them from
configs: stages/hparams.py (the lab's sections) and tune/hparams.py (the commands' tables).
Expected blocks are written out by hand, so a field the adapter drops or misreads fails here;
a cDPO run from the adapted block ends where one from the lab section does."""

from dataclasses import FrozenInstanceError

import pytest
import torch

from rlxf.config import TuneConfig, parse_config
from rlxf.stages.hparams import train_hparams as lab_hparams
from rlxf.train.dpo import reference_logprobs, train_dpo
from rlxf.train.hparams import (DPOHparams, GroupParams, GroupRLHparams, KTOHparams,
                                Optimisation, PPOHparams, PPOParams, RewardHparams, SafeParams,
                                hparams_from)
from rlxf.train.loop import Checkpointer
from rlxf.tune.hparams import train_hparams as tune_hparams
from test_engine import PAD, lm, pairs, params

OPT = dict(steps=7, batch_size=6, lr=2e-3, warmup_steps=3, grad_accum=2, precision="bf16",
           device="cpu")


def lab(section: str, others: dict | None = None, **values):
    return getattr(parse_config({section: {**OPT, **values}, **(others or {})}), section)


def test_lab_sections_become_the_optimisation_block():
    expected = Optimisation(steps=7, batch_size=6, lr=2e-3, warmup_steps=3, grad_accum=2,
                            precision="bf16", device="cpu", eval_every=None)
    for section in ("pretrain", "sft", "process", "finetune"):
        assert lab_hparams(lab(section)) == expected, section


def test_the_reward_section_keeps_checkpointing_and_centring():
    got = lab_hparams(lab("reward", checkpoint_every=5, center_coefficient=0.01, ensemble=3))
    assert got == RewardHparams(**OPT, checkpoint_every=5, center_coefficient=0.01)


@pytest.mark.parametrize("algorithm", ["dpo", "ipo", "cdpo", "robust"])
def test_the_dpo_family_gets_its_loss_and_its_own_numbers(algorithm):
    got = lab_hparams(lab("policy", algorithm=algorithm, beta=0.3, label_smoothing=0.2,
                          eval_every=4))
    assert got == DPOHparams(**OPT, eval_every=4, algorithm=algorithm, beta=0.3,
                             label_smoothing=0.2)


def test_kto_grpo_and_ppo_get_their_blocks_nested_ones_too():
    assert lab_hparams(lab("policy", algorithm="kto", beta=0.25, eval_every=4)) == \
        KTOHparams(**OPT, eval_every=4, beta=0.25)
    grpo = lab("policy", {"reward": {"aspects": True}}, algorithm="grpo", eval_every=4,
               group={"group_size": 3, "kl_coef": 0.5, "clip_range": 0.3,
                      "updates_per_rollout": 2},
               safe={"cost_threshold": -0.1, "lagrangian_init": 2.0, "lagrangian_lr": 0.5})
    assert lab_hparams(grpo) == GroupRLHparams(
        **OPT, eval_every=4, algorithm="grpo",
        group=GroupParams(group_size=3, kl_coef=0.5, clip_range=0.3, updates_per_rollout=2),
        safe=SafeParams(cost_threshold=-0.1, lagrangian_init=2.0, lagrangian_lr=0.5))
    ppo = lab("policy", algorithm="ppo", eval_every=4,
              ppo={"kl_coef": 0.2, "kl_target": 6.0, "kl_horizon": 500, "gamma": 0.9, "lam": 0.8,
                   "clip_range": 0.1, "clip_range_value": 0.4, "vf_coef": 0.3, "epochs": 3,
                   "minibatches": 4, "whiten_rewards": True, "temperature": 0.7})
    assert lab_hparams(ppo) == PPOHparams(**OPT, eval_every=4, ppo=PPOParams(
        kl_coef=0.2, kl_target=6.0, kl_horizon=500, gamma=0.9, lam=0.8, clip_range=0.1,
        clip_range_value=0.4, vf_coef=0.3, epochs=3, minibatches=4, whiten_rewards=True,
        temperature=0.7))


def test_best_of_n_trains_nothing_and_says_so():
    with pytest.raises(ValueError, match="'bon' trains nothing"):
        lab_hparams(lab("policy", algorithm="bon"))


def tune(command: str, **values):
    return getattr(TuneConfig.model_validate({command: {**OPT, **values}}), command)


def test_tune_tables_become_their_trainers_blocks():
    assert tune_hparams(tune("sft")) == Optimisation(**OPT)
    assert tune_hparams(tune("reward", center_coefficient=0.02, checkpoint_every=9)) == \
        RewardHparams(**OPT, checkpoint_every=9, center_coefficient=0.02)
    # no label_smoothing in [dpo]: plain DPO
    assert tune_hparams(tune("dpo", beta=0.4)) == DPOHparams(**OPT, beta=0.4, algorithm="dpo",
                                                              label_smoothing=0.0)
    assert tune_hparams(tune("kto", beta=0.3)) == KTOHparams(**OPT, beta=0.3)
    # grpo / rloo own their losses (tune/rl.py): the engine's block, with the eval cadence
    for command in ("grpo", "rloo"):
        assert tune_hparams(tune(command, eval_every=3)) == Optimisation(**OPT, eval_every=3)


def test_tune_ppo_samples_at_the_tables_temperature():
    got = tune_hparams(tune("ppo", temperature=0.6, eval_every=3,
                            ppo={"kl_coef": 0.2, "temperature": 1.0, "epochs": 3}))
    assert got == PPOHparams(**OPT, eval_every=3, ppo=PPOParams(
        kl_coef=0.2, lam=0.95, clip_range=0.2, clip_range_value=0.2, vf_coef=0.1, epochs=3,
        minibatches=2, temperature=0.6))


def test_blocks_are_frozen_and_refuse_what_cannot_train():
    block = Optimisation(steps=1, batch_size=1, lr=1.0)
    with pytest.raises(FrozenInstanceError):
        block.lr = 2.0
    with pytest.raises(ValueError, match=r"Optimisation.steps = 0: must be >= 1"):
        Optimisation(steps=0, batch_size=1, lr=1.0)
    with pytest.raises(ValueError, match=r"DPOHparams.grad_accum = 0"):
        DPOHparams(steps=1, batch_size=1, lr=1.0, beta=0.1, grad_accum=0)
    with pytest.raises(ValueError, match="lr = 0"):
        Optimisation(steps=1, batch_size=1, lr=0)

    class Section:  # a source without KTO's beta
        steps, batch_size, lr = 1, 2, 1e-3
    with pytest.raises(TypeError, match="beta"):
        hparams_from(KTOHparams, Section())


def test_a_cdpo_run_from_the_adapted_block_ends_where_the_lab_section_ends(tmp_path):
    """The trainer reads every number it needs from the adapted block: warm-up, accumulation,
    β and ε change the parameters, so a field the adapter lost would show here."""
    torch.set_num_threads(1)
    section = parse_config({"policy": {"algorithm": "cdpo", "steps": 3, "batch_size": 8,
                                       "lr": 1e-2, "warmup_steps": 2, "grad_accum": 2,
                                       "beta": 0.3, "label_smoothing": 0.2,
                                       "device": "cpu"}}).policy
    data = pairs(16)
    ref_c, ref_r = reference_logprobs(lm(), data, PAD)
    ends = []
    for i, cfg in enumerate((section, lab_hparams(section))):
        model = lm()
        train_dpo(model, data, ref_c, ref_r, cfg, PAD, 0, Checkpointer(tmp_path / str(i), 1000))
        ends.append(params(model))
    assert not torch.equal(ends[0], params(lm()))  # it trained
    assert torch.equal(ends[0], ends[1])
