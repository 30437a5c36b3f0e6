"""Losses against hand-derived values in float64 (and against the closed forms they encode)."""

import math

import pytest
import torch

from rlxf.train.advantages import gae, group_advantages, rloo_advantages, whiten
from rlxf.train.losses import (AdaptiveKLController, FixedKLController, bradley_terry_loss,
                               cdpo_loss, dpo_loss, grpo_loss, ipo_loss, k3_kl,
                               kl_penalised_rewards, kto_loss, ppo_policy_loss, ppo_value_loss,
                               rloo_loss, robust_dpo_loss)


def t(*xs):
    return torch.tensor(xs, dtype=torch.float64)


def test_bradley_terry_matches_hand_computed_value():
    # -log σ(2 - 1) = log(1 + e^-1) = 0.31326168751822286; -log σ(0 - 3) = log(1 + e^3)
    expected = (math.log1p(math.exp(-1.0)) + math.log1p(math.exp(3.0))) / 2
    got = bradley_terry_loss(t(2.0, 0.0), t(1.0, 3.0))
    assert abs(got.item() - expected) < 1e-12
    assert abs(math.log1p(math.exp(-1.0)) - 0.31326168751822286) < 1e-15


def test_bradley_terry_margin_shifts_the_logit():
    got = bradley_terry_loss(t(2.0), t(1.0), margin=0.5)
    assert abs(got.item() - math.log1p(math.exp(-0.5))) < 1e-12


def test_dpo_matches_hand_computed_value_and_rewards():
    beta = 0.1
    pc, pr, rc, rr = t(-5.0, -7.0), t(-9.0, -6.0), t(-6.0, -7.5), t(-8.0, -5.0)
    # logits: β[(−5+6) − (−9+8)] = 0.2 ; β[(−7+7.5) − (−6+5)] = 0.15
    expected = (math.log1p(math.exp(-0.2)) + math.log1p(math.exp(-0.15))) / 2
    loss, r_c, r_r = dpo_loss(pc, pr, rc, rr, beta)
    assert abs(loss.item() - expected) < 1e-12
    assert torch.allclose(r_c, t(0.1, 0.05), atol=1e-12)
    assert torch.allclose(r_r, t(-0.1, -0.1), atol=1e-12)


def test_dpo_at_the_reference_is_log_two_and_its_gradient_favours_chosen():
    pc = t(-3.0).requires_grad_()
    pr = t(-4.0).requires_grad_()
    loss, _, _ = dpo_loss(pc, pr, t(-3.0), t(-4.0), beta=0.5)
    loss.backward()
    assert abs(loss.item() - math.log(2)) < 1e-12
    # d/dπ_c of -log σ(β(π_c - π_r)) at 0 is -β/2
    assert abs(pc.grad.item() + 0.25) < 1e-12 and abs(pr.grad.item() - 0.25) < 1e-12


# --- DPO family ------------------------------------------------------------------------------
# The pairs of test_dpo_matches_hand_computed_value: log-ratios π - ref are
# chosen (1.0, 0.5), rejected (-1.0, -1.0), so x = (2.0, 1.5) and with β = 0.1 the logits βx = (0.2, 0.15).
PC, PR, RC, RR = t(-5.0, -7.0), t(-9.0, -6.0), t(-6.0, -7.5), t(-8.0, -5.0)
# ℓ(z) = -log σ(z) = log(1 + e^-z):
# ℓ(0.2) = 0.5981388693815918, ℓ(-0.2) = 0.7981388693815918  (ℓ(-z) - ℓ(z) = z)
# ℓ(0.15) = 0.6209570477895321, ℓ(-0.15) = 0.7709570477895321


def test_ipo_matches_hand_computed_value():
    # β = 0.5 -> target 1/(2β) = 1; h = (2.0, 1.5); ((2 - 1)² + (1.5 - 1)²)/2 = (1 + 0.25)/2 = 0.625
    loss, r_c, r_r = ipo_loss(PC, PR, RC, RR, beta=0.5)
    assert abs(loss.item() - 0.625) < 1e-12
    assert torch.allclose(r_c, t(0.5, 0.25)) and torch.allclose(r_r, t(-0.5, -0.5))


def test_ipo_length_normalised_matches_hand_computed_value():
    # chosen lengths (2, 1), rejected (4, 2): h1 = 1.0/2 - (-1.0/4) = 0.75, h2 = 0.5/1 - (-1.0/2) = 1.0
    # ((0.75 - 1)² + (1.0 - 1)²)/2 = 0.0625/2 = 0.03125
    loss, _, _ = ipo_loss(PC, PR, RC, RR, beta=0.5, chosen_lengths=t(2, 1), rejected_lengths=t(4, 2))
    assert abs(loss.item() - 0.03125) < 1e-12
    with pytest.raises(ValueError):
        ipo_loss(PC, PR, RC, RR, beta=0.5, chosen_lengths=t(2, 1))


def test_cdpo_matches_hand_computed_value():
    # ε = 0.1: 0.9·ℓ(0.2) + 0.1·ℓ(-0.2) = 0.9·0.5981388693815918 + 0.1·0.7981388693815918 = 0.6181388693815918
    #          0.9·ℓ(0.15) + 0.1·ℓ(-0.15) = 0.6359570477895321 ; mean = 0.6270479585855618
    # (second form: ℓ(z) + εz = 0.5981388693815918 + 0.02 = 0.6181388693815918, same)
    loss, r_c, r_r = cdpo_loss(PC, PR, RC, RR, beta=0.1, label_smoothing=0.1)
    assert abs(loss.item() - 0.6270479585855618) < 1e-12
    assert torch.allclose(r_c, t(0.1, 0.05)) and torch.allclose(r_r, t(-0.1, -0.1))


def test_cdpo_without_smoothing_is_dpo_and_its_optimum_is_a_finite_margin():
    assert abs(cdpo_loss(PC, PR, RC, RR, 0.1, 0.0)[0].item() - dpo_loss(PC, PR, RC, RR, 0.1)[0].item()) < 1e-15
    # d/dz [(1-ε)ℓ(z) + εℓ(-z)] = σ(z) - (1-ε) = 0 at z* = log((1-ε)/ε) = log 9 for ε = 0.1
    z = torch.tensor([math.log(9.0)], dtype=torch.float64, requires_grad=True)
    loss, _, _ = cdpo_loss(z, t(0.0), t(0.0), t(0.0), beta=1.0, label_smoothing=0.1)
    loss.backward()
    assert abs(z.grad.item()) < 1e-12


def test_robust_dpo_matches_hand_computed_value():
    # ε = 0.1: (0.9·ℓ(0.2) - 0.1·ℓ(-0.2))/0.8 = (0.53832498244343 - 0.07981388693815918)/0.8 = 0.5731388693815918
    #          (0.9·ℓ(0.15) - 0.1·ℓ(-0.15))/0.8 = 0.602207047789532 ; mean = 0.5876729585855619
    # (second form: ℓ(z) - εz/(1-2ε) = 0.5981388693815918 - 0.025 = 0.5731388693815918, same)
    loss, _, _ = robust_dpo_loss(PC, PR, RC, RR, beta=0.1, label_smoothing=0.1)
    assert abs(loss.item() - 0.5876729585855619) < 1e-12
    with pytest.raises(ValueError):
        robust_dpo_loss(PC, PR, RC, RR, beta=0.1, label_smoothing=0.5)


def test_kto_matches_hand_computed_value():
    # β = 1; z_ref = mean((-1.0 - -1.5), (-2.0 - -3.5)) = mean(0.5, 1.5) = 1.0
    # desirable, r = -3 - -5 = 2:    1 - σ(2 - 1) = 1 - σ(1) = 0.2689414213699951
    # undesirable, r = -4 - -3 = -1: λ_U (1 - σ(1 - -1)) = 2 (1 - σ(2)) = 2·0.11920292202211769
    # mean = (0.2689414213699951 + 0.23840584404423538)/2 = 0.25367363270711524
    out = kto_loss(policy=t(-3.0, -4.0), ref=t(-5.0, -3.0), desirable=torch.tensor([True, False]),
                   beta=1.0, policy_kl=t(-1.0, -2.0), ref_kl=t(-1.5, -3.5), undesirable_weight=2.0)
    assert abs(out.loss.item() - 0.25367363270711524) < 1e-12
    assert abs(out.kl.item() - 1.0) < 1e-15
    assert torch.allclose(out.rewards, t(2.0, -1.0))


def test_kto_reference_point_is_clamped_and_carries_no_gradient():
    policy, policy_kl = t(-3.0).requires_grad_(), t(-2.0, -4.0).requires_grad_()
    out = kto_loss(policy=policy, ref=t(-5.0), desirable=torch.tensor([True]), beta=1.0,
                   policy_kl=policy_kl, ref_kl=t(-1.0, -3.0))      # mean(π - ref) = -1 -> z_ref = 0
    # 1 - σ(2 - 0) = 0.11920292202211769
    assert out.kl.item() == 0.0 and abs(out.loss.item() - 0.11920292202211769) < 1e-12
    out.loss.backward()
    # d/dr (1 - σ(r)) at r = 2: -σ(2)σ(-2) = -0.8807970779778823·0.11920292202211769
    assert abs(policy.grad.item() + 0.8807970779778823 * 0.11920292202211769) < 1e-12
    assert policy_kl.grad is None


# --- PPO ---------------------------------------------------------------------------------------


def test_kl_penalised_rewards_put_the_score_on_the_last_valid_token():
    # kl = π - ref = [[0.5, 0, -1], [0.5, 0, (pad)]]; β = 0.1
    # rewards = [[-0.05, 0, 0.1 + 1.0], [-0.05, 0 + 2.0, 0]]
    logp = t(-1.0, -2.0, -3.0, -0.5, -1.0, -9.0).view(2, 3)
    ref = t(-1.5, -2.0, -2.0, -1.0, -1.0, -0.1).view(2, 3)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    rewards, kl = kl_penalised_rewards(t(1.0, 2.0), logp, ref, mask, kl_coef=0.1)
    assert torch.allclose(rewards, t(-0.05, 0.0, 1.1, -0.05, 2.0, 0.0).view(2, 3), atol=1e-15)
    assert torch.allclose(kl, t(0.5, 0.0, -1.0, 0.5, 0.0, 0.0).view(2, 3), atol=1e-15)


def _ppo_case():
    # ε = 0.2, tokens (ratio ρ, advantage A) -> max(-Aρ, -A·clip(ρ, 0.8, 1.2)):
    #   (1.5, +2): max(-3.0, -2.4) = -2.4  clipped (A > 0, ρ > 1+ε)
    #   (0.5, +1): max(-0.5, -0.8) = -0.5  not clipped (A > 0, ρ < 1-ε: the pessimistic term is ρA)
    #   (0.5, -1): max( 0.5,  0.8) =  0.8  clipped (A < 0, ρ < 1-ε)
    #   (1.5, -2): max( 3.0,  2.4) =  3.0  not clipped (A < 0, ρ > 1+ε)
    #   (1.1, +1): max(-1.1, -1.1) = -1.1  inside the trust region
    # mean over the 5 valid tokens: (-2.4 - 0.5 + 0.8 + 3.0 - 1.1)/5 = -0.2/5 = -0.04; clipfrac 2/5
    ratio = t(1.5, 0.5, 0.5, 1.5, 1.1, 7.0).view(2, 3)
    adv = t(2.0, 1.0, -1.0, -2.0, 1.0, 50.0).view(2, 3)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    old = t(-1.0, -2.0, -0.5, -3.0, -1.5, -1.0).view(2, 3)
    return (old + ratio.log()).requires_grad_(), old, adv, mask


def test_ppo_clipped_objective_matches_hand_computed_value_in_both_regimes():
    logp, old, adv, mask = _ppo_case()
    out = ppo_policy_loss(logp, old, adv, mask, clip_range=0.2)
    assert abs(out.loss.item() - (-0.04)) < 1e-12
    assert abs(out.clipfrac.item() - 0.4) < 1e-12
    # ½·mean(log ρ)² = ½(2 ln²1.5 + 2 ln²0.5 + ln²1.1)/5 = 0.12987939659970665
    assert abs(out.approx_kl.item() - 0.12987939659970665) < 1e-12
    out.loss.backward()
    # d/dlogπ of -Aρ/5 is -Aρ/5 where unclipped; 0 where clipped and on padding:
    # (clipped, -1·0.5/5, clipped; 2·1.5/5, -1.1/5, pad) = (0, -0.1, 0; 0.6, -0.22, 0)
    assert torch.allclose(logp.grad, t(0.0, -0.1, 0.0, 0.6, -0.22, 0.0).view(2, 3), atol=1e-12)


def test_ppo_loss_is_a_mean_over_valid_tokens_whatever_the_batch_split():
    # reduction: Σ over valid tokens / number of valid tokens, so two half-batches weighted by
    # their token counts give the whole batch's loss (and gradient)
    logp, old, adv, mask = _ppo_case()
    whole = ppo_policy_loss(logp, old, adv, mask).loss
    parts = [ppo_policy_loss(logp[i:i + 1], old[i:i + 1], adv[i:i + 1], mask[i:i + 1]).loss * mask[i].sum()
             for i in range(2)]
    assert abs(whole.item() - (sum(parts) / mask.sum()).item()) < 1e-12


def test_ppo_value_loss_matches_hand_computed_value():
    # ε_v = 0.2, tokens (V_old, V, R) -> max((V - R)², (V_old + clip(V - V_old, ±0.2) - R)²):
    #   (0, 1.0, 1.0): max(0, (0.2 - 1)²) = 0.64   clipped larger
    #   (0, 0.1, 1.0): max(0.81, 0.81) = 0.81
    #   (1, 0.5, 0.0): max(0.25, (0.8 - 0)²) = 0.64 clipped larger
    #   (0, -1., 0.5): max(2.25, (-0.2 - 0.5)²) = 2.25
    # ½·(0.64 + 0.81 + 0.64 + 2.25)/4 = ½·1.085 = 0.5425; clipfrac 2/4
    old = t(0.0, 0.0, 1.0, 0.0, 5.0).view(1, 5)
    values = t(1.0, 0.1, 0.5, -1.0, -5.0).view(1, 5).requires_grad_()
    returns = t(1.0, 1.0, 0.0, 0.5, 9.0).view(1, 5)
    out = ppo_value_loss(values, old, returns, torch.tensor([[1, 1, 1, 1, 0]]), clip_range_value=0.2)
    assert abs(out.loss.item() - 0.5425) < 1e-12
    assert abs(out.clipfrac.item() - 0.5) < 1e-12
    out.loss.backward()
    # gradient ½·2(V - R)/4 where unclipped wins, 0 where the clipped error wins:
    # (0, (0.1 - 1)/4, 0, (-1 - 0.5)/4, pad) = (0, -0.225, 0, -0.375, 0)
    assert torch.allclose(values.grad, t(0.0, -0.225, 0.0, -0.375, 0.0).view(1, 5), atol=1e-12)


def test_adaptive_kl_controller_matches_hand_computed_updates():
    ctl = AdaptiveKLController(init_kl_coef=0.2, target=6.0, horizon=10000)
    # KL 9 > target: e = clip(9/6 - 1, ±0.2) = 0.2; β = 0.2·(1 + 0.2·256/10000) = 0.2·1.00512 = 0.201024
    assert abs(ctl.update(9.0, n_steps=256) - 0.201024) < 1e-15
    # KL 5.4: e = 5.4/6 - 1 = -0.1; β = 0.201024·(1 - 0.1·0.0256) = 0.201024·0.99744 = 0.20050937856
    assert abs(ctl.update(5.4, n_steps=256) - 0.20050937856) < 1e-15
    assert FixedKLController(0.05).update(100.0, 256) == 0.05


# --- GRPO / RLOO ---------------------------------------------------------------------------------


def test_k3_is_nonnegative_and_zero_at_the_reference():
    # k3(d) = e^d - d - 1 with d = ref - logp: d = ln 2 -> 1 - ln 2; d = -ln 2 -> ln 2 - 1/2; d = 0 -> 0
    got = k3_kl(t(0.0, 0.0, -1.0), t(math.log(2), -math.log(2), -1.0))
    assert torch.allclose(got, t(1 - math.log(2), math.log(2) - 0.5, 0.0), atol=1e-15)


def _grpo_case():
    # two responses, A = (1.0, -0.5); ratios [[1.5, 1.0], [0.5, pad]]; ε = 0.2
    #   row 0: -min(1.5·1, 1.2·1) = -1.2 ; -min(1, 1) = -1
    #   row 1: -min(0.5·-0.5, 0.8·-0.5) = -min(-0.25, -0.4) = 0.4
    old = t(-1.0, -2.0, -1.0, -1.0).view(2, 2)
    logp = old + t(1.5, 1.0, 0.5, 1.0).view(2, 2).log()
    # ref - logp = [[ln 2, 0], [-ln 2, (pad)]] -> k3 = [[1 - ln 2, 0], [ln 2 - 0.5, ·]]
    ref = logp + t(math.log(2), 0.0, -math.log(2), 3.0).view(2, 2)
    return logp, old, t(1.0, -0.5), torch.tensor([[1, 1], [1, 0]]), ref


def test_grpo_loss_matches_hand_computed_values_for_both_reductions():
    logp, old, adv, mask, ref = _grpo_case()
    # token mean: (-1.2 - 1 + 0.4)/3 = -0.6 ; sequence mean: ((-1.2 - 1)/2 + 0.4)/2 = (-1.1 + 0.4)/2 = -0.35
    assert abs(grpo_loss(logp, old, adv, mask).loss.item() - (-0.6)) < 1e-12
    assert abs(grpo_loss(logp, old, adv, mask, reduction="sequence").loss.item() - (-0.35)) < 1e-12
    # β = 0.1: token: -0.6 + 0.1·((1 - ln 2) + 0 + (ln 2 - 0.5))/3 = -0.6 + 0.1·0.5/3 = -0.5833333333333334
    out = grpo_loss(logp, old, adv, mask, kl_coef=0.1, ref_logprobs=ref)
    assert abs(out.loss.item() - (-0.6 + 0.05 / 3)) < 1e-12
    assert abs(out.kl.item() - 0.5 / 3) < 1e-12
    # sequence: ((-2.2 + 0.1(1 - ln 2))/2 + 0.4 + 0.1(ln 2 - 0.5))/2 = -0.35 + 0.025 ln 2 = -0.33267132048600134
    out = grpo_loss(logp, old, adv, mask, kl_coef=0.1, ref_logprobs=ref, reduction="sequence")
    assert abs(out.loss.item() - (-0.33267132048600134)) < 1e-12
    assert abs(grpo_loss(logp, old, adv, mask).clipfrac.item() - 2 / 3) < 1e-12


def test_rloo_loss_matches_hand_computed_value():
    # sequence log-probs (-1 - 2, -0.5) = (-3, -0.5), A = (2, -1): -mean(2·-3, -1·-0.5) = -(-6 + 0.5)/2 = 2.75
    logp = t(-1.0, -2.0, -0.5, -7.0).view(2, 2).requires_grad_()
    loss = rloo_loss(logp, t(2.0, -1.0), torch.tensor([[1, 1], [1, 0]]))
    assert abs(loss.item() - 2.75) < 1e-12
    loss.backward()
    # d/dlogπ_t = -A_i/B on valid tokens: (-1, -1; 0.5, 0)
    assert torch.allclose(logp.grad, t(-1.0, -1.0, 0.5, 0.0).view(2, 2), atol=1e-15)


# --- a 4-armed bandit whose optimum is known ------------------------------------------------------
# Softmax policy over 4 arms with fixed rewards; arm 1 is best. Each optimiser must put > 0.9 of
# the probability on it. With a KL penalty β to a uniform reference the optimum is known in closed
# form, π*(a) ∝ ref(a)·exp(r(a)/β) (Ziegler et al. 2019; Rafailov et al. 2023, eq. 4), and PPO must find it.
ARM_REWARDS = t(0.2, 1.0, 0.5, 0.8)


def _ppo_bandit(kl_coef: float, iters: int, seed: int = 0, batch: int = 64) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    theta = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    value = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([theta, value], lr=0.05)
    ref = torch.log_softmax(torch.zeros(4, dtype=torch.float64), 0)
    mask = torch.ones(batch, 1, dtype=torch.float64)
    history = []
    for _ in range(iters):
        # 1. rollout (one token per episode)
        with torch.no_grad():
            logp_all = torch.log_softmax(theta, 0)
            arms = torch.multinomial(logp_all.exp(), batch, replacement=True, generator=g)
            old_logp = logp_all[arms][:, None]
            rewards, _ = kl_penalised_rewards(ARM_REWARDS[arms], old_logp, ref[arms][:, None], mask, kl_coef)
            old_values = value.expand(batch)[:, None].clone()
            # 2. advantages
            adv, returns = gae(rewards, old_values, mask, gamma=1.0, lam=0.95)
            adv = whiten(adv, mask)
        # 3. optimise: 4 epochs on the batch
        for _ in range(4):
            logp = torch.log_softmax(theta, 0)[arms][:, None]
            loss = (ppo_policy_loss(logp, old_logp, adv, mask, 0.2).loss
                    + 0.5 * ppo_value_loss(value.expand(batch)[:, None], old_values, returns, mask, 0.2).loss)
            opt.zero_grad()
            loss.backward()
            opt.step()
        history.append(torch.softmax(theta.detach(), 0))
    return history


def test_ppo_finds_the_best_arm():
    assert _ppo_bandit(kl_coef=0.0, iters=150)[-1][1] > 0.9


def test_ppo_with_a_kl_penalty_finds_the_regularised_optimum():
    beta = 0.1
    optimum = torch.softmax(ARM_REWARDS / beta, 0)      # uniform ref: π* = softmax(r/β) = (.0003, .875, .006, .118)
    history = _ppo_bandit(kl_coef=beta, iters=300)
    averaged = torch.stack(history[-150:]).mean(0)      # average out the sampling noise of the last iterates
    assert (averaged - optimum).abs().max() < 0.02
    assert optimum[1] < 0.9                             # so the KL penalty is really binding here


@pytest.mark.parametrize("method", ["grpo", "grpo_kl", "rloo"])
def test_group_methods_find_the_best_arm(method):
    g = torch.Generator().manual_seed(0)
    theta = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([theta], lr=0.05)
    ref = torch.log_softmax(torch.zeros(4, dtype=torch.float64), 0)
    P, G = 8, 8
    mask = torch.ones(P * G, 1)
    for _ in range(150):
        with torch.no_grad():
            logp_all = torch.log_softmax(theta, 0)
            arms = torch.multinomial(logp_all.exp(), P * G, replacement=True, generator=g)
            old_logp = logp_all[arms][:, None]
            group_rewards = ARM_REWARDS[arms].view(P, G)
        if method == "rloo":
            adv = rloo_advantages(group_rewards).flatten()
            loss = rloo_loss(torch.log_softmax(theta, 0)[arms][:, None], adv, mask)
            opt.zero_grad()
            loss.backward()
            opt.step()
            continue
        adv = group_advantages(group_rewards).flatten()
        for _ in range(2):
            logp = torch.log_softmax(theta, 0)[arms][:, None]
            out = grpo_loss(logp, old_logp, adv, mask, kl_coef=0.01 if method == "grpo_kl" else 0.0,
                            ref_logprobs=ref[arms][:, None])
            opt.zero_grad()
            out.loss.backward()
            opt.step()
    assert torch.softmax(theta, 0)[1] > 0.9


def test_reward_centring_adds_the_squared_sum_penalty():
    from rlxf.train.losses import reward_model_loss
    # -log σ(2 - 1) + 0.5 · (2 + 1)² = log(1 + e^-1) + 4.5
    got = reward_model_loss(t(2.0), t(1.0), center_coefficient=0.5)
    assert abs(got.item() - (math.log1p(math.exp(-1.0)) + 4.5)) < 1e-12
