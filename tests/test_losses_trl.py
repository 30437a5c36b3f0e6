"""rlxf's losses against TRL's own code on the same float64 tensors (tolerance 1e-6).

TRL 1.16 has no standalone loss functions: each loss lives inside a trainer's `_compute_loss`,
which runs a model. So each test builds the trainer with `object.__new__` (no __init__, no model
download), sets the few attributes that method reads (see the installed
trl/trainer/{dpo,kto,grpo,rloo}_trainer.py), and passes a stand-in model that returns chosen
per-token log-probs. The arithmetic that produces the loss is then TRL's, line for line.

Where the installed TRL lacks a loss (TRL 1.16's DPOTrainer dropped label smoothing from the
sigmoid loss, i.e. cDPO), the test says so and compares with the closest TRL function that
computes the same expression plus a second, independent derivation (test_losses.py also has
hand-computed values for every loss)."""

from __future__ import annotations

import math
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch

trl = pytest.importorskip("trl", reason="trl is in the [test] extra: pip install -e '.[test]'")

from rlxf.train.advantages import group_advantages, rloo_advantages  # noqa: E402
from rlxf.train.losses import (cdpo_loss, dpo_loss, grpo_loss, ipo_loss, kto_loss,  # noqa: E402
                               rloo_loss, robust_dpo_loss)

TOL = 1e-6
DT = torch.float64


class _Accelerator:
    """Single-process stand-in: every collective is the identity."""
    device = torch.device("cpu")
    num_processes = 1
    sync_gradients = True

    def gather_for_metrics(self, x):
        return x

    def gather(self, x):
        return x

    def reduce(self, x, reduction="sum"):
        return x


class _LogProbModel:
    """Returns given per-token log-probs, zero where the label is -100 (as the fused LM head does).
    `table` maps the first token id of a batch to its (rows, T) per-token log-probs."""
    training = True

    def __init__(self, table: dict[int, torch.Tensor]):
        self.table = table

    def __call__(self, input_ids, labels, **_):
        lp = self.table[int(input_ids[0, 0])]
        lp = lp.masked_fill(labels[:, 1:] == -100, 0.0)
        zeros = torch.zeros_like(lp)
        return SimpleNamespace(log_probs=lp, entropy=zeros, mean_logits=zeros,
                               is_top1=torch.zeros_like(lp, dtype=torch.bool))


def _trainer(cls, **attrs):
    trainer = object.__new__(cls)
    trainer.accelerator = _Accelerator()
    trainer._metrics = defaultdict(lambda: defaultdict(list))
    trainer._total_train_tokens = 0
    trainer._tp_size = 1
    trainer.aux_loss_enabled = False
    trainer.precompute_ref_logps = True
    for k, v in attrs.items():
        setattr(trainer, k, v)
    return trainer


def _pairs(seed: int = 0, B: int = 5, L: int = 6):
    """B preference pairs as TRL's DPO batch ([chosen; rejected] rows, prompt of 1 token then
    right-padded completions) and as rlxf's (B,) summed log-probs with completion lengths."""
    g = torch.Generator().manual_seed(seed)
    per_token = -torch.rand(2 * B, L, generator=g, dtype=DT) * 3          # (2B, L) log π per token
    lengths = torch.randint(1, L + 1, (2 * B,), generator=g)               # completion tokens per row
    completion_mask = torch.zeros(2 * B, L + 1, dtype=torch.long)
    for i, n in enumerate(lengths.tolist()):
        completion_mask[i, 1:1 + n] = 1                                    # position 0 is the prompt
    ref = -torch.rand(2 * B, generator=g, dtype=DT) * 3 * lengths          # (2B,) summed ref log-probs
    inputs = {"input_ids": torch.full((2 * B, L + 1), 7), "attention_mask": completion_mask.clamp(min=1),
              "completion_mask": completion_mask,
              "ref_chosen_logps": ref[:B], "ref_rejected_logps": ref[B:]}
    summed = (per_token * completion_mask[:, 1:]).sum(1)
    ours = dict(policy_chosen=summed[:B], policy_rejected=summed[B:], ref_chosen=ref[:B],
                ref_rejected=ref[B:])
    return _LogProbModel({7: per_token}), inputs, ours, lengths


def _trl_dpo(loss_type: str, beta: float, label_smoothing: float = 0.0, seed: int = 0):
    from trl.trainer.dpo_trainer import DPOTrainer
    model, inputs, ours, lengths = _pairs(seed)
    trainer = _trainer(DPOTrainer, model=model, ld_alpha=None, f_divergence_type="reverse_kl",
                       loss_types=[loss_type], loss_weights=[1.0], beta=beta,
                       label_smoothing=label_smoothing, use_weighting=False)
    loss = trainer._compute_loss(model, inputs, return_outputs=False)
    return loss, ours, lengths, trainer._metrics["train"]


def test_trl_version_is_reported():
    assert trl.__version__
    print(f"trl {trl.__version__}")


@pytest.mark.parametrize("beta", [0.1, 0.5])
def test_dpo_sigmoid_matches_trl(beta):
    trl_loss, ours, _, metrics = _trl_dpo("sigmoid", beta)
    loss, r_c, r_r = dpo_loss(**ours, beta=beta)
    assert abs(loss.item() - trl_loss.item()) < TOL
    assert abs(r_c.mean().item() - metrics["rewards/chosen"][-1]) < TOL
    assert abs(r_r.mean().item() - metrics["rewards/rejected"][-1]) < TOL


@pytest.mark.parametrize("beta", [0.1, 1.0])
def test_ipo_matches_trl_with_its_length_normalisation(beta):
    trl_loss, ours, lengths, _ = _trl_dpo("ipo", beta)
    B = len(ours["policy_chosen"])
    loss, _, _ = ipo_loss(**ours, beta=beta, chosen_lengths=lengths[:B], rejected_lengths=lengths[B:])
    assert abs(loss.item() - trl_loss.item()) < TOL


@pytest.mark.parametrize("eps", [0.1, 0.3])
def test_robust_dpo_matches_trl(eps):
    trl_loss, ours, _, _ = _trl_dpo("robust", 0.2, label_smoothing=eps)
    loss, _, _ = robust_dpo_loss(**ours, beta=0.2, label_smoothing=eps)
    assert abs(loss.item() - trl_loss.item()) < TOL


def test_cdpo_is_not_in_trl_dpo_trainer_so_check_cpo_and_a_second_derivation():
    """TRL 1.16's DPOTrainer sigmoid loss ignores label_smoothing (cDPO was dropped; its
    label_smoothing now only feeds 'robust', 'exo_pair' and 'aot'), so there is no DPOTrainer cDPO
    to compare with. CPOTrainer.cpo_loss (trl.experimental.cpo) computes the same conservative
    expression, (1-ε)(-log σ(βz)) - ε log σ(-βz), on z = its two inputs' difference; fed the
    log-ratios π - ref it is cDPO. Second derivation: -log σ(βx) + εβx (see cdpo_loss)."""
    # DPOTrainer's sigmoid loss does not change with label_smoothing in the installed TRL:
    no_smoothing, _, _, _ = _trl_dpo("sigmoid", 0.2, label_smoothing=0.0)
    with_smoothing, ours, _, _ = _trl_dpo("sigmoid", 0.2, label_smoothing=0.25)
    assert abs(no_smoothing.item() - with_smoothing.item()) < 1e-15

    beta, eps = 0.2, 0.25
    loss, _, _ = cdpo_loss(**ours, beta=beta, label_smoothing=eps)
    x = (ours["policy_chosen"] - ours["ref_chosen"]) - (ours["policy_rejected"] - ours["ref_rejected"])
    second = sum(math.log1p(math.exp(-beta * v)) + eps * beta * v for v in x.tolist()) / len(x)
    assert abs(loss.item() - second) < 1e-12

    try:
        from trl.experimental.cpo import CPOTrainer
    except ImportError as e:  # pragma: no cover - depends on the installed TRL
        pytest.skip(f"trl {trl.__version__} has no CPOTrainer ({e}); cDPO checked by the second "
                    f"derivation above and the hand value in test_losses.py")
    cpo = _trainer(CPOTrainer, alpha=0.0, loss_type="sigmoid", beta=beta, label_smoothing=eps)
    losses, _, _ = cpo.cpo_loss(ours["policy_chosen"] - ours["ref_chosen"],
                                ours["policy_rejected"] - ours["ref_rejected"])
    assert abs(loss.item() - losses.mean().item()) < TOL


def _kto_batch(seed: int, labels: list[bool], L: int = 5):
    g = torch.Generator().manual_seed(seed)
    B = len(labels)
    per_token = -torch.rand(B, L, generator=g, dtype=DT) * 2
    kl_per_token = -torch.rand(B, L, generator=g, dtype=DT) * 2
    mask = torch.zeros(B, L + 1, dtype=torch.long)
    kl_mask = torch.zeros(B, L + 1, dtype=torch.long)
    for i in range(B):
        mask[i, 1:1 + int(torch.randint(1, L + 1, (1,), generator=g))] = 1
        kl_mask[i, 1:1 + int(torch.randint(1, L + 1, (1,), generator=g))] = 1
    ref = (per_token * mask[:, 1:]).sum(1) + torch.randn(B, generator=g, dtype=DT)
    ref_kl = (kl_per_token * kl_mask[:, 1:]).sum(1) + torch.randn(B, generator=g, dtype=DT) * 0.5 - 0.3
    inputs = {"input_ids": torch.full((B, L + 1), 3), "attention_mask": torch.ones(B, L + 1),
              "completion_mask": mask, "KL_input_ids": torch.full((B, L + 1), 4),
              "KL_attention_mask": torch.ones(B, L + 1), "KL_completion_mask": kl_mask,
              "label": torch.tensor(labels), "ref_logps": ref, "ref_KL_logps": ref_kl}
    model = _LogProbModel({3: per_token, 4: kl_per_token})
    ours = dict(policy=(per_token * mask[:, 1:]).sum(1), ref=ref, desirable=torch.tensor(labels),
                policy_kl=(kl_per_token * kl_mask[:, 1:]).sum(1), ref_kl=ref_kl)
    return model, inputs, ours


@pytest.mark.parametrize("seed,weights", [(0, (1.0, 1.0)), (1, (1.0, 1.33)), (2, (0.7, 1.0))])
def test_kto_matches_trl_including_the_clamped_reference_point(seed, weights):
    from trl.trainer.kto_trainer import KTOTrainer
    labels = [True, False, True, True, False, False, True]
    model, inputs, ours = _kto_batch(seed, labels)
    trainer = _trainer(KTOTrainer, model=model, calculate_KL=True, loss_type="kto", beta=0.3,
                       desirable_weight=weights[0], undesirable_weight=weights[1])
    trl_loss = trainer._compute_loss(model, inputs, return_outputs=False)
    out = kto_loss(**ours, beta=0.3, desirable_weight=weights[0], undesirable_weight=weights[1])
    assert abs(out.loss.item() - trl_loss.item()) < TOL
    assert abs(out.kl.item() - trainer._metrics["train"]["kl"][-1]) < TOL


def test_kto_reference_point_clamps_at_zero_like_trl():
    from trl.trainer.kto_trainer import KTOTrainer
    model, inputs, ours = _kto_batch(5, [True, False, False, True])
    inputs["ref_KL_logps"] = ours["policy_kl"] + 1.0        # mean(π - ref) = -1 -> z_ref = 0
    ours["ref_kl"] = inputs["ref_KL_logps"]
    trainer = _trainer(KTOTrainer, model=model, calculate_KL=True, loss_type="kto", beta=0.5,
                       desirable_weight=1.0, undesirable_weight=1.0)
    trl_loss = trainer._compute_loss(model, inputs, return_outputs=False)
    out = kto_loss(**ours, beta=0.5)
    assert out.kl.item() == 0.0 and trainer._metrics["train"]["kl"][-1] == 0.0
    assert abs(out.loss.item() - trl_loss.item()) < TOL


def _rollout(seed: int, B: int = 6, T: int = 5):
    g = torch.Generator().manual_seed(seed)
    logps = -torch.rand(B, T, generator=g, dtype=DT) * 2
    old = logps + 0.4 * torch.randn(B, T, generator=g, dtype=DT)       # both clipping regimes occur
    ref = logps + 0.3 * torch.randn(B, T, generator=g, dtype=DT)
    mask = torch.ones(B, T, dtype=torch.long)
    for i in range(B):
        mask[i, int(torch.randint(1, T + 1, (1,), generator=g)):] = 0
    rewards = torch.randn(B // 3, 3, generator=g, dtype=DT)
    return logps, old, ref, mask, rewards


def _group_trainer(cls, logps, **attrs):
    def per_token_logps(model, input_ids, attention_mask, logits_to_keep, **_):
        return logps, torch.zeros_like(logps), None
    attrs = {"epsilon_low": 0.2, "epsilon_high": 0.2, **attrs}
    trainer = _trainer(cls, model=SimpleNamespace(training=True),
                       current_gradient_accumulation_steps=1, **attrs)
    trainer._get_per_token_logps_and_entropies = per_token_logps
    return trainer


@pytest.mark.parametrize("loss_type,reduction,beta", [("grpo", "sequence", 0.0), ("grpo", "sequence", 0.04),
                                                      ("bnpo", "token", 0.04)])
def test_grpo_loss_matches_trl(loss_type, reduction, beta):
    from trl.trainer.grpo_trainer import GRPOTrainer
    logps, old, ref, mask, rewards = _rollout(3)
    adv = group_advantages(rewards).flatten()
    B, T = logps.shape
    trainer = _group_trainer(
        GRPOTrainer, logps, loss_type=loss_type, beta=beta, top_entropy_quantile=1.0,
        off_policy_mask_threshold=None, importance_sampling_level="token", use_vllm=False,
        _entropy_bonus_enabled=False, args=SimpleNamespace(use_bias_correction_kl=False, delta=None))
    inputs = {"prompt_ids": torch.ones(B, 2, dtype=torch.long), "prompt_mask": torch.ones(B, 2),
              "completion_ids": torch.ones(B, T, dtype=torch.long), "completion_mask": mask,
              "advantages": adv, "old_per_token_logps": old, "ref_per_token_logps": ref}
    trl_loss = trainer._compute_loss(None, inputs)
    out = grpo_loss(logps, old, adv, mask, clip_range=0.2, kl_coef=beta, ref_logprobs=ref,
                    reduction=reduction)
    assert abs(out.loss.item() - trl_loss.item()) < TOL
    if beta:
        assert abs(out.kl.item() - trainer._metrics["train"]["kl"][-1]) < TOL


def test_rloo_gradient_matches_trl_on_policy():
    """TRL 1.16's RLOOTrainer optimises a sequence-level clipped ratio; on-policy (ratio = 1) its
    gradient is the REINFORCE gradient -mean(Â ∇log π(y)), which rloo_loss computes."""
    from trl.trainer.rloo_trainer import RLOOTrainer
    logps, _, _, mask, rewards = _rollout(4)
    adv = rloo_advantages(rewards).flatten()
    B, T = logps.shape
    ours_lp = logps.clone().requires_grad_()
    rloo_loss(ours_lp, adv, mask).backward()
    trl_lp = logps.clone().requires_grad_()
    trainer = _group_trainer(RLOOTrainer, trl_lp)
    inputs = {"prompt_ids": torch.ones(B, 2, dtype=torch.long), "prompt_mask": torch.ones(B, 2),
              "completion_ids": torch.ones(B, T, dtype=torch.long), "completion_mask": mask,
              "advantages": adv, "old_logps": (logps * mask).sum(1)}
    trainer._compute_loss(None, inputs).backward()
    assert torch.allclose(ours_lp.grad, trl_lp.grad, atol=TOL, rtol=0)
    assert ours_lp.grad.abs().sum() > 0


def test_reward_model_loss_matches_trl_reward_trainer():
    """TRL's RewardTrainer.compute_loss on the same rewards: margin and centring included."""
    from trl import RewardTrainer

    from rlxf.train.losses import reward_model_loss

    g = torch.Generator().manual_seed(3)
    chosen, rejected = torch.randn(6, generator=g, dtype=DT), torch.randn(6, generator=g, dtype=DT)
    margin = torch.rand(6, generator=g, dtype=DT)

    class Scores:  # the model: returns the rewards TRL splits into chosen and rejected
        training = True

        def __call__(self, **_):
            return SimpleNamespace(logits=torch.cat([chosen, rejected])[:, None])

    model = Scores()
    for coefficient in (None, 0.01):
        trainer = _trainer(RewardTrainer, model=model,
                           args=SimpleNamespace(center_rewards_coefficient=coefficient))
        inputs = {"attention_mask": torch.ones(12, 3, dtype=torch.long), "margin": margin}
        theirs = trainer.compute_loss(model, inputs)
        ours = reward_model_loss(chosen, rejected, margin, coefficient or 0.0)
        assert abs(theirs.item() - ours.item()) < 1e-6


@pytest.mark.parametrize("loss_type,level,eps_high,beta", [
    ("grpo", "token", 0.2, 0.0), ("grpo", "token", 0.28, 0.04),     # GRPO; DAPO's clip-higher
    ("bnpo", "token", 0.28, 0.04), ("dr_grpo", "token", 0.2, 0.04),   # token mean; Dr. GRPO
    ("dapo", "token", 0.28, 0.0), ("dapo", "token", 0.28, 0.04),      # DAPO token-level loss
    ("grpo", "sequence", 0.2, 0.0), ("grpo", "sequence", 0.3, 0.04),  # GSPO
    ("dr_grpo", "sequence", 0.2, 0.04)])
def test_group_policy_loss_matches_trl_float64(loss_type, level, eps_high, beta):
    """Every GRPO-family option against TRL 1.16's GRPOTrainer._compute_loss on the same
    float64 tensors, to 1e-10 (one process, one update per generation batch)."""
    from trl.trainer.grpo_trainer import GRPOTrainer

    from rlxf.train.losses import group_policy_loss
    logps, old, ref, mask, rewards = _rollout(7)
    adv = group_advantages(rewards).flatten()
    B, T = logps.shape
    trainer = _group_trainer(
        GRPOTrainer, logps, loss_type=loss_type, beta=beta, top_entropy_quantile=1.0,
        off_policy_mask_threshold=None, importance_sampling_level=level, use_vllm=False,
        max_completion_length=T, _entropy_bonus_enabled=False, epsilon_high=eps_high,
        args=SimpleNamespace(use_bias_correction_kl=False, delta=None, steps_per_generation=1))
    inputs = {"prompt_ids": torch.ones(B, 2, dtype=torch.long), "prompt_mask": torch.ones(B, 2),
              "completion_ids": torch.ones(B, T, dtype=torch.long), "completion_mask": mask,
              "advantages": adv, "old_per_token_logps": old, "ref_per_token_logps": ref,
              "num_items_in_batch": mask.sum().to(DT)}
    trl_loss = trainer._compute_loss(None, inputs)
    out = group_policy_loss(logps, old, adv, mask, loss_type=loss_type, importance_level=level,
                            clip_low=0.2, clip_high=eps_high, kl_coef=beta, ref_logprobs=ref,
                            max_completion_length=T, tokens_in_batch=mask.sum().item())
    assert abs(out.loss.item() - trl_loss.item()) < 1e-10
    # the reductions really differ on this batch (ragged lengths), so each check can fail
    assert mask.sum(1).unique().numel() > 1
