"""Every loss as a pure function of log-probabilities or rewards. Nothing about models, batches
or devices leaks in, so each one can be checked against an independent reference."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .advantages import masked_mean


def reward_model_loss(chosen: torch.Tensor, rejected: torch.Tensor,
                      margin: torch.Tensor | float = 0.0,
                      center_coefficient: float = 0.0) -> torch.Tensor:
    """Bradley-Terry with the reward-centring penalty (Eisenstein et al. 2023):
    -log σ(r_c - r_r - m) + c·E[(r_c + r_r)²], which pins the rewards' scale so that rewards of
    different models or ensemble members are comparable."""
    loss = bradley_terry_loss(chosen, rejected, margin)
    if center_coefficient:
        loss = loss + center_coefficient * ((chosen + rejected) ** 2).mean()
    return loss


def bradley_terry_loss(chosen: torch.Tensor, rejected: torch.Tensor,
                       margin: torch.Tensor | float = 0.0) -> torch.Tensor:
    """Reward-model loss, mean over pairs. chosen, rejected: (B,) scalar rewards.

    Bradley-Terry (Ouyang et al. 2022, eq. 1): -log σ(r_c - r_r - m)."""
    return -F.logsigmoid(chosen - rejected - margin).mean()


def plackett_luce_loss(rewards: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Reward-model loss for k-wise rankings, mean over rankings. rewards: (B, K), each row in
    ranked order (best first); mask: (B, K) bool, True for real entries -- a prefix of each row,
    so rankings of different lengths share a batch. For K = 2 it is the Bradley-Terry loss.

    Plackett-Luce (Plackett 1975; Zhu et al. 2023, eq. 4 for RLHF):
    -Σ_i log( exp(r_i) / Σ_{j≥i} exp(r_j) ), the log-probability of choosing the best of the
    remaining responses at every position."""
    if mask is None:
        mask = torch.ones_like(rewards, dtype=torch.bool)
    # A finite fill (not -inf) keeps the gradient of padded rows free of NaN; exp() of it is 0.
    x = rewards.masked_fill(~mask, torch.finfo(rewards.dtype).min)
    suffix = torch.logcumsumexp(x.flip(-1), dim=-1).flip(-1)  # log Σ_{j≥i} exp(r_j)
    return -torch.where(mask, x - suffix, torch.zeros_like(x)).sum(-1).mean()


MAX_WEAK_ORDER = 12  # the dynamic programme below visits all 2^K subsets


@functools.lru_cache(maxsize=None)
def _subset_lattice(k: int):
    """For k items: each subset's members (2^k, k) bool; subsets in order of size; and per
    size l >= 1, (states of size l, their predecessors' positions (n, l), the element added)."""
    states = sorted(range(1 << k), key=lambda s: (bin(s).count("1"), s))
    position = {s: i for i, s in enumerate(states)}
    members = torch.tensor([[bool(s >> i & 1) for i in range(k)] for s in states])
    layers = []
    for size in range(1, k + 1):
        dst = [s for s in states if bin(s).count("1") == size]
        elems = [[i for i in range(k) if s >> i & 1] for s in dst]
        layers.append((torch.tensor([position[s] for s in dst]),
                       torch.tensor([[position[s & ~(1 << i)] for i in e] for s, e in
                                     zip(dst, elems)]),
                       torch.tensor(elems)))
    return members, layers, position


def plackett_luce_weak_order_loss(rewards: torch.Tensor, levels: torch.Tensor,
                                  mask: torch.Tensor | None = None) -> torch.Tensor:
    """Plackett-Luce loss for partial (top-k) and tied rankings, mean over rankings.
    rewards: (B, K) in any order; levels: (B, K) integer tier of each entry, 0 the best; equal
    levels are tied -- unordered among themselves; mask: (B, K) bool, True for real entries.
    A top-k ranking of K responses puts the K - k unranked ones on one last level.

    Ties as equivalence classes: the observation is the weak order, so its likelihood is the PL
    probability of the event "the latent PL order respects the levels" -- the sum of PL over
    every order within each tied class (the marginal likelihood of Kalbfleisch & Prentice 1973
    for tied data in the Cox model, whose partial likelihood is PL; Hunter 2004, sec. 5, for
    top-k, where the sum over the unranked tail is 1 and leaves PL's first k factors).
    Strict rankings give `plackett_luce_loss` exactly. Not Davidson-Luce (Firth et al. 2019),
    which makes a tie an outcome of its own with a tie parameter and so changes what a strict
    ranking is worth.

    Computed by dynamic programming over the set already placed, f(∅) = 1,
    f(S ∪ {i}) += f(S) exp(r_i) / Σ_{j ∉ S} exp(r_j) over sets S that respect the levels
    (nothing in S ranks below something outside it); the likelihood is f(all)."""
    b, k = rewards.shape
    if k > MAX_WEAK_ORDER:
        raise ValueError(f"weak orders of at most {MAX_WEAK_ORDER} responses, got {k}")
    if mask is None:
        mask = torch.ones_like(rewards, dtype=torch.bool)
    members, layers, position = _subset_lattice(k)
    members, mask = members.to(rewards.device), mask.to(rewards.device)
    neg = torch.finfo(rewards.dtype).min / 8  # finite: no NaN in the gradient of padded rows
    x = rewards.masked_fill(~mask, neg)
    lv = levels.to(rewards.device, rewards.dtype)
    inside = members[None] & mask[:, None, :]  # (B, 2^K, K)
    outside = ~members[None] & mask[:, None, :]
    within_real = ~(members[None] & ~mask[:, None, :]).any(-1)
    top_in = torch.where(inside, lv[:, None, :], float("-inf")).amax(-1)
    best_out = torch.where(outside, lv[:, None, :], float("inf")).amin(-1)
    valid = within_real & (top_in <= best_out)  # (B, 2^K): sets the levels allow first
    log_rest = torch.where(outside, x[:, None, :], neg).logsumexp(-1)  # log Σ_{j ∉ S} e^{r_j}
    log_f = [torch.zeros(b, 1, dtype=rewards.dtype, device=rewards.device)]
    for dst, src, elem in layers:
        src, elem, dst = src.to(x.device), elem.to(x.device), dst.to(x.device)
        prev = torch.cat(log_f, dim=1)
        step = prev[:, src] + x[:, elem] - log_rest[:, src]  # (B, n, size)
        ok = valid[:, src] & valid[:, dst][:, :, None]
        log_f.append(step.masked_fill(~ok, neg).logsumexp(-1))
    log_f = torch.cat(log_f, dim=1)
    full = (mask.long() << torch.arange(k, device=x.device)).sum(-1)
    at = torch.tensor([position[s] for s in full.tolist()], device=x.device)
    return -log_f[torch.arange(b, device=x.device), at].mean()
def rating_regression_loss(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Multi-aspect regression reward model (HelpSteer2's attribute model, Wang et al. 2024):
    mean squared error over the (response, aspect) ratings that exist. predicted, target:
    (B, K); a NaN target is a rating the data does not give (e.g. UltraFeedback's "N/A")."""
    known = ~torch.isnan(target)
    diff = torch.where(known, predicted - target.nan_to_num(), torch.zeros_like(predicted))
    return diff.pow(2).sum() / known.sum().clamp(min=1)


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor,
             ref_chosen: torch.Tensor, ref_rejected: torch.Tensor, beta: float
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, chosen_rewards, rejected_rewards); inputs are (B,) summed response log-probs.

    DPO (Rafailov et al. 2023, eq. 7): -log σ(β[(π_c - ref_c) - (π_r - ref_r)]).
    The implicit rewards β(π - ref) are returned detached, for logging."""
    chosen_logratio = policy_chosen - ref_chosen
    rejected_logratio = policy_rejected - ref_rejected
    loss = -F.logsigmoid(beta * (chosen_logratio - rejected_logratio)).mean()
    return loss, beta * chosen_logratio.detach(), beta * rejected_logratio.detach()


# --- DPO family ------------------------------------------------------------------------------
# All take the same four (B,) summed response log-probs and β as `dpo_loss` and return the same
# (loss, chosen_rewards, rejected_rewards), so a recipe picks one with functools.partial once.


def ipo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor,
             ref_chosen: torch.Tensor, ref_rejected: torch.Tensor, beta: float,
             chosen_lengths: torch.Tensor | None = None,
             rejected_lengths: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, chosen_rewards, rejected_rewards); inputs (B,) summed log-probs, β is IPO's τ.

    IPO (Azar et al. 2023, eq. 17): (h - 1/(2β))², h = (π_c - ref_c) - (π_r - ref_r).
    The squared loss regresses the log-ratio gap to a finite target instead of pushing it to
    infinity, so it does not over-fit deterministic preferences. If lengths (B,) (response token
    counts) are given, each log-ratio is divided by its length first: TRL's normalisation,
    confirmed with the IPO authors, which keeps β comparable across response lengths."""
    chosen_logratio = policy_chosen - ref_chosen
    rejected_logratio = policy_rejected - ref_rejected
    if chosen_lengths is not None or rejected_lengths is not None:
        if chosen_lengths is None or rejected_lengths is None:
            raise ValueError("ipo_loss: give both chosen_lengths and rejected_lengths, or neither")
        chosen_h = chosen_logratio / chosen_lengths.to(chosen_logratio.dtype).clamp(min=1)
        rejected_h = rejected_logratio / rejected_lengths.to(rejected_logratio.dtype).clamp(min=1)
    else:
        chosen_h, rejected_h = chosen_logratio, rejected_logratio
    # IPO (Azar et al. 2023, eq. 17): (h - 1/(2τ))²
    loss = ((chosen_h - rejected_h - 1 / (2 * beta)) ** 2).mean()
    return loss, beta * chosen_logratio.detach(), beta * rejected_logratio.detach()


def cdpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor,
              ref_chosen: torch.Tensor, ref_rejected: torch.Tensor, beta: float,
              label_smoothing: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Conservative DPO: the DPO loss when each label is flipped with probability ε.

    cDPO (Mitchell 2023, "A note on DPO with noisy preferences"):
    (1-ε)·(-log σ(βx)) + ε·(-log σ(-βx)), x = (π_c - ref_c) - (π_r - ref_r).
    Equivalently -log σ(βx) + εβx: the optimum is a finite margin log((1-ε)/ε)/β."""
    if not 0.0 <= label_smoothing < 0.5:
        raise ValueError(f"cdpo_loss: label_smoothing must be in [0, 0.5), got {label_smoothing}")
    chosen_logratio = policy_chosen - ref_chosen
    rejected_logratio = policy_rejected - ref_rejected
    logits = beta * (chosen_logratio - rejected_logratio)
    # cDPO (Mitchell 2023): (1-ε)·(-log σ(βx)) + ε·(-log σ(-βx))
    loss = (-(1 - label_smoothing) * F.logsigmoid(logits)
            - label_smoothing * F.logsigmoid(-logits)).mean()
    return loss, beta * chosen_logratio.detach(), beta * rejected_logratio.detach()


def robust_dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor,
                    ref_chosen: torch.Tensor, ref_rejected: torch.Tensor, beta: float,
                    label_smoothing: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Robust DPO: an unbiased estimate of the clean-label DPO loss under label-flip rate ε.

    rDPO (Chowdhury et al. 2024, eq. 9): [(1-ε)·(-log σ(βx)) - ε·(-log σ(-βx))] / (1 - 2ε).
    Equivalently -log σ(βx) - εβx/(1 - 2ε)."""
    if not 0.0 <= label_smoothing < 0.5:
        raise ValueError(f"robust_dpo_loss: label_smoothing must be in [0, 0.5), got {label_smoothing}")
    chosen_logratio = policy_chosen - ref_chosen
    rejected_logratio = policy_rejected - ref_rejected
    logits = beta * (chosen_logratio - rejected_logratio)
    eps = label_smoothing
    # rDPO (Chowdhury et al. 2024, eq. 9): [(1-ε)ℓ(βx) - εℓ(-βx)] / (1-2ε), ℓ(z) = -log σ(z)
    loss = ((-(1 - eps) * F.logsigmoid(logits) + eps * F.logsigmoid(-logits)) / (1 - 2 * eps)).mean()
    return loss, beta * chosen_logratio.detach(), beta * rejected_logratio.detach()


@dataclass(frozen=True)
class KTOOutput:
    loss: torch.Tensor          # () mean over all B examples of the weighted per-example losses
    rewards: torch.Tensor       # (B,) β(π - ref), detached, for logging
    kl: torch.Tensor            # () the reference point z_ref (detached, clamped at 0)


def kto_loss(policy: torch.Tensor, ref: torch.Tensor, desirable: torch.Tensor, beta: float,
             policy_kl: torch.Tensor | None = None, ref_kl: torch.Tensor | None = None,
             desirable_weight: float = 1.0, undesirable_weight: float = 1.0) -> KTOOutput:
    """KTO for binary feedback (unpaired): each response is labelled desirable or not.

    policy, ref:      (B,) summed log-probs of each response under the policy / reference
    desirable:        (B,) bool, True where the response was marked good
    policy_kl, ref_kl: (B',) summed log-probs of *mismatched* (prompt, response) pairs, from which
                      the reference point is estimated; None gives z_ref = 0

    KTO (Ethayarajh et al. 2024, eq. 7 / 8), with r = π - ref:
      desirable:   λ_D (1 - σ(β(r - z_ref)))      undesirable: λ_U (1 - σ(β(z_ref - r)))
      z_ref = max(0, mean(policy_kl - ref_kl)), detached: a batch-level estimate of
      KL(π || ref), as TRL computes it (no gradient flows through the reference point).
    The loss is the mean over all B examples (TRL's nanmean of the concatenation)."""
    desirable = desirable.to(torch.bool)
    if policy_kl is None or ref_kl is None:
        kl = torch.zeros((), dtype=policy.dtype, device=policy.device)
    else:
        # KTO reference point (Ethayarajh et al. 2024, §4.1): z_ref = max(0, E[log π(y'|x) - log ref(y'|x)])
        kl = (policy_kl - ref_kl).mean().detach().clamp(min=0)
    logratio = policy - ref
    # KTO (Ethayarajh et al. 2024, eq. 8): λ_D(1 - σ(β(r - z))) if desirable else λ_U(1 - σ(β(z - r)))
    losses = torch.where(desirable,
                         desirable_weight * (1 - torch.sigmoid(beta * (logratio - kl))),
                         undesirable_weight * (1 - torch.sigmoid(beta * (kl - logratio))))
    return KTOOutput(loss=losses.mean(), rewards=beta * logratio.detach(), kl=kl)


# --- PPO (Ziegler et al. 2019; Ouyang et al. 2022), per token over response tokens -------------
# Per-token tensors are (B, T) with `mask` 1 on response tokens and 0 on padding. Every loss below
# is reduced as the mean over the valid tokens of the whole batch (Σ x·mask / Σ mask), so a long
# response weighs more than a short one, token for token (TRL's PPOTrainer / OpenRLHF default).


def kl_penalised_rewards(scores: torch.Tensor, logprobs: torch.Tensor, ref_logprobs: torch.Tensor,
                         mask: torch.Tensor, kl_coef: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(rewards, kl), both (B, T): the per-token reward PPO maximises, and the per-token KL.

    scores:       (B,) reward-model score of each whole response
    logprobs:     (B, T) log π(a_t | s_t) of the sampled tokens under the rollout policy
    ref_logprobs: (B, T) the same tokens under the frozen reference

    KL-shaped reward (Ziegler et al. 2019, eq. 2; Ouyang et al. 2022, eq. 2):
    r_t = -β (log π(a_t|s_t) - log ref(a_t|s_t)) + [t = last valid token]·score."""
    mask = mask.to(logprobs.dtype)
    if (mask.sum(dim=1) == 0).any():
        raise ValueError("kl_penalised_rewards: a row of mask has no valid token")
    kl = (logprobs - ref_logprobs) * mask
    # r_t = -β·(log π - log ref) per token
    rewards = -kl_coef * kl
    last = mask.cumsum(dim=1).argmax(dim=1)                     # (B,) first index of the full count
    # + score at the last valid token (the episode's terminal reward)
    rewards = rewards.scatter_add(1, last[:, None], scores.to(rewards.dtype)[:, None])
    return rewards, kl


@dataclass(frozen=True)
class PolicyLossOutput:
    loss: torch.Tensor          # () mean over valid tokens of the clipped surrogate (+ β·KL)
    clipfrac: torch.Tensor      # () fraction of valid tokens where the clipped term was chosen
    approx_kl: torch.Tensor     # () ½ mean (log π - log π_old)² over valid tokens, detached
    kl: torch.Tensor | None = None  # () mean k3 KL to the reference (GRPO only), detached


def _ratio_and_clipped(logprobs, old_logprobs, advantages, clip_low, clip_high):
    ratio = torch.exp(logprobs - old_logprobs)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1 - clip_low, 1 + clip_high)
    # PPO clipped surrogate (Schulman et al. 2017, eq. 7), as a loss:
    # max(-A·ρ, -A·clip(ρ, 1-ε, 1+ε)) = -min(A·ρ, A·clip(ρ, 1-ε, 1+ε))
    return torch.maximum(unclipped, clipped), (clipped > unclipped)


def ppo_policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                    mask: torch.Tensor, clip_range: float = 0.2) -> PolicyLossOutput:
    """Clipped surrogate policy loss.

    logprobs:     (B, T) log π_θ(a_t|s_t) now (carries the gradient)
    old_logprobs: (B, T) log π_old(a_t|s_t) at rollout time (no gradient)
    advantages:   (B, T) Â_t (e.g. whitened GAE), no gradient

    PPO-clip (Schulman et al. 2017, eq. 7): -E_t[min(ρ_t Â_t, clip(ρ_t, 1-ε, 1+ε) Â_t)],
    ρ_t = π_θ/π_old, E_t the mean over valid tokens of the batch."""
    per_token, was_clipped = _ratio_and_clipped(logprobs, old_logprobs, advantages.detach(),
                                                clip_range, clip_range)
    with torch.no_grad():
        approx_kl = 0.5 * masked_mean((logprobs - old_logprobs) ** 2, mask)
        clipfrac = masked_mean(was_clipped.to(logprobs.dtype), mask)
    return PolicyLossOutput(loss=masked_mean(per_token, mask), clipfrac=clipfrac,
                            approx_kl=approx_kl)


@dataclass(frozen=True)
class ValueLossOutput:
    loss: torch.Tensor          # () ½ mean over valid tokens of the clipped squared error
    clipfrac: torch.Tensor      # () fraction of valid tokens where the clipped error was larger


def ppo_value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor,
                   mask: torch.Tensor, clip_range_value: float = 0.2) -> ValueLossOutput:
    """Clipped value loss: the critic may not move its prediction more than ε_v from the rollout
    value in one update, unless that makes the error smaller.

    values, old_values, returns: (B, T) V_θ(s_t) now, V_old(s_t) at rollout, λ-return target.

    PPO value clipping (Schulman et al. 2017 baselines; Ziegler et al. 2019):
    ½ E_t[max((V - R)², (V_old + clip(V - V_old, -ε_v, ε_v) - R)²)]."""
    returns = returns.detach()
    clipped_values = old_values + torch.clamp(values - old_values, -clip_range_value, clip_range_value)
    err, err_clipped = (values - returns) ** 2, (clipped_values - returns) ** 2
    # ½ max((V - R)², (V_clip - R)²), mean over valid tokens
    loss = 0.5 * masked_mean(torch.maximum(err, err_clipped), mask)
    with torch.no_grad():
        clipfrac = masked_mean((err_clipped > err).to(values.dtype), mask)
    return ValueLossOutput(loss=loss, clipfrac=clipfrac)


class FixedKLController:
    """A constant KL coefficient with the AdaptiveKLController interface."""

    def __init__(self, kl_coef: float):
        self.value = kl_coef

    def update(self, current_kl: float, n_steps: int) -> float:
        return self.value


class AdaptiveKLController:
    """Proportional control of the KL coefficient toward a target KL.

    Ziegler et al. 2019, eq. 3: e_t = clip((KL_t - KL_target) / KL_target, -0.2, 0.2),
    β_{t+1} = β_t (1 + K_β e_t), with K_β = n_steps / horizon (n_steps: samples since the last
    update; horizon: samples over which the error would be corrected, 10,000 in the paper)."""

    def __init__(self, init_kl_coef: float, target: float, horizon: float):
        if target <= 0 or horizon <= 0:
            raise ValueError(f"AdaptiveKLController: target and horizon must be > 0, "
                             f"got target={target}, horizon={horizon}")
        self.value, self.target, self.horizon = init_kl_coef, target, horizon

    def update(self, current_kl: float, n_steps: int) -> float:
        # e_t = clip(KL_t / KL_target - 1, -0.2, 0.2)
        error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        # β ← β (1 + e_t · n_steps / horizon)
        self.value *= 1.0 + error * n_steps / self.horizon
        return self.value


# --- critic-free group methods -----------------------------------------------------------------


def k3_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Per-token KL(π || ref) estimate, (B, T), unbiased and always ≥ 0 for samples from π.

    k3 (Schulman 2020, "Approximating KL divergence"; GRPO, Shao et al. 2024, eq. 4):
    exp(ref - logp) - (ref - logp) - 1."""
    d = ref_logprobs - logprobs
    return torch.exp(d) - d - 1


def grpo_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
              mask: torch.Tensor, clip_range: float = 0.2, clip_range_high: float | None = None,
              kl_coef: float = 0.0, ref_logprobs: torch.Tensor | None = None,
              reduction: str = "token") -> PolicyLossOutput:
    """GRPO: the PPO clipped surrogate with one advantage per response (no critic), plus a
    per-token KL penalty to the reference in the loss (not in the reward).

    logprobs, old_logprobs, ref_logprobs: (B, T); advantages: (B,) e.g. from
    `advantages.group_advantages(...).flatten()`; mask: (B, T).

    GRPO (Shao et al. 2024, eq. 3): per token
    ℓ_t = -min(ρ_t Â, clip(ρ_t, 1-ε_low, 1+ε_high) Â) + β·k3_t, k3_t = exp(ref - logp) - (ref - logp) - 1.
    reduction "sequence": mean over each response's tokens, then over responses (the paper's
    1/G Σ_i 1/|o_i| Σ_t; TRL loss_type="grpo"); "token": mean over all valid tokens of the batch
    (TRL loss_type="bnpo"; as DAPO argues, long responses are not down-weighted)."""
    if reduction not in ("token", "sequence"):
        raise ValueError(f"grpo_loss: reduction must be 'token' or 'sequence', got {reduction!r}")
    return group_policy_loss(logprobs, old_logprobs, advantages, mask,
                             loss_type="grpo" if reduction == "sequence" else "bnpo",
                             clip_low=clip_range, clip_high=clip_range_high, kl_coef=kl_coef,
                             ref_logprobs=ref_logprobs)


GROUP_LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo")


def group_policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor,
                      advantages: torch.Tensor, mask: torch.Tensor, *, loss_type: str = "grpo",
                      importance_level: str = "token", clip_low: float = 0.2,
                      clip_high: float | None = None, kl_coef: float = 0.0,
                      ref_logprobs: torch.Tensor | None = None,
                      max_completion_length: int | None = None,
                      tokens_in_batch: float | None = None) -> PolicyLossOutput:
    """The GRPO family's policy loss (TRL 1.16 GRPOTrainer's `loss_type` and
    `importance_sampling_level`): the clipped surrogate with one advantage per response, an
    optional β·k3 KL to the reference per token, and one of four reductions.

    logprobs, old_logprobs, ref_logprobs, mask: (B, T); advantages: (B,) one per response, or
    (B, T) one per token (process supervision, `advantages.process_advantages`).

    Importance ratio: "token" ρ_t = π/π_old per token (GRPO, Shao et al. 2024, eq. 3);
    "sequence" ρ = exp(mean_t log π/π_old), one per response (GSPO, Zheng et al. 2025, eq. 7).
    Clip: clip(ρ, 1-ε_low, 1+ε_high), decoupled ε_high > ε_low (DAPO's clip-higher, Yu et al.
    2025, eq. 10; ε_high = ε_low when not given).
    Reduction of ℓ_t over valid tokens:
      grpo     1/B Σ_i 1/|o_i| Σ_t ℓ_it                    (the paper; GSPO)
      bnpo     Σ_it ℓ_it / Σ_it 1                           (token mean over the batch)
      dr_grpo  Σ_it ℓ_it / (B · max_completion_length)      (Dr. GRPO, Liu et al. 2025: no
                                                             length normalisation)
      dapo     Σ_it ℓ_it / tokens_in_batch                  (DAPO's token-level loss over the
                                                             whole generation batch; = bnpo
                                                             when the batch is one update)"""
    if loss_type not in GROUP_LOSS_TYPES:
        raise ValueError(f"group_policy_loss: loss_type must be one of {GROUP_LOSS_TYPES}, "
                         f"got {loss_type!r}")
    if importance_level not in ("token", "sequence"):
        raise ValueError("group_policy_loss: importance_level must be 'token' or 'sequence', "
                         f"got {importance_level!r}")
    if kl_coef != 0.0 and ref_logprobs is None:
        raise ValueError("group_policy_loss: kl_coef != 0 needs ref_logprobs")
    if loss_type == "dr_grpo" and max_completion_length is None:
        raise ValueError("group_policy_loss: dr_grpo needs max_completion_length")
    mask = mask.to(logprobs.dtype)
    log_ratio = logprobs - old_logprobs
    if importance_level == "sequence":
        # GSPO (Zheng et al. 2025, eq. 7): s_i = exp(1/|o_i| Σ_t log π/π_old), one per response
        log_ratio = ((log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1.0))[:, None]
    high = clip_low if clip_high is None else clip_high
    per_token_advantages = advantages.detach() if advantages.dim() == 2 else \
        advantages.detach()[:, None]
    per_token, was_clipped = _ratio_and_clipped(log_ratio, 0.0, per_token_advantages,
                                                clip_low, high)
    per_token = per_token.expand_as(logprobs)
    kl = None
    if kl_coef != 0.0:
        per_token_kl = k3_kl(logprobs, ref_logprobs)
        # GRPO (Shao et al. 2024, eq. 3): + β·D_KL, k3 estimator per token
        per_token = per_token + kl_coef * per_token_kl
        kl = masked_mean(per_token_kl.detach(), mask)
    # (a response with no valid token, e.g. overlong-filtered, contributes 0: TRL's clamp)
    if loss_type == "grpo":
        loss = ((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    elif loss_type == "bnpo":
        loss = (per_token * mask).sum() / mask.sum().clamp(min=1.0)
    elif loss_type == "dr_grpo":
        loss = (per_token * mask).sum() / (per_token.shape[0] * max_completion_length)
    else:
        loss = (per_token * mask).sum() / max(float(mask.sum() if tokens_in_batch is None
                                                   else tokens_in_batch), 1.0)
    with torch.no_grad():
        approx_kl = 0.5 * masked_mean((logprobs - old_logprobs) ** 2, mask)
        clipfrac = masked_mean(was_clipped.expand_as(logprobs).to(logprobs.dtype), mask)
    return PolicyLossOutput(loss=loss, clipfrac=clipfrac, approx_kl=approx_kl, kl=kl)


def rloo_loss(logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """REINFORCE with the leave-one-out baseline, at the sequence level (one action = one response).

    logprobs: (B, T) log π_θ of the sampled tokens; advantages: (B,) from
    `advantages.rloo_advantages(...).flatten()` (already containing any KL penalty), or (B, T)
    per-token advantages (process supervision); mask: (B, T).

    RLOO (Ahmadian et al. 2024, eq. 8): -1/B Σ_i Â_i log π_θ(y_i | x), log π_θ(y|x) = Σ_t log π_θ(a_t|s_t);
    per token: -1/B Σ_i Σ_t Â_it log π_θ(a_t|s_t)."""
    if advantages.dim() == 2:
        return -(advantages.detach() * logprobs * mask.to(logprobs.dtype)).sum(1).mean()
    seq_logprobs = (logprobs * mask.to(logprobs.dtype)).sum(dim=1)
    # REINFORCE: -mean_i(Â_i · log π(y_i | x))
    return -(advantages.detach() * seq_logprobs).mean()
