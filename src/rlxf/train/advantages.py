"""Advantage estimators as pure functions: GAE for PPO with a critic, whitening, and the two
critic-free group baselines (GRPO, RLOO). Tensors in, tensors out; no models.

Layout conventions:
- Per-token tensors are (B, T) over response tokens; `mask` is 1 on a prefix of each row (the
  response, right-padded) and 0 on padding. A 0 ends the episode: nothing after it is
  bootstrapped from.
- Group tensors are (P, G): P prompts, G sampled responses each (row p holds prompt p's group).
"""

from __future__ import annotations

import torch


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of x over positions where mask == 1 (over all of them if dim is None)."""
    mask = mask.to(x.dtype)
    if dim is None:
        return (x * mask).sum() / mask.sum()
    return (x * mask).sum(dim) / mask.sum(dim)


def masked_var(x: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance of x over all positions where mask == 1; Bessel-corrected if unbiased
    (as TRL's PPOTrainer did), which needs at least two valid positions."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    if unbiased:
        n = mask.to(x.dtype).sum()
        if n < 2:
            raise ValueError(f"masked_var(unbiased=True) needs >= 2 valid positions, got {int(n)}")
        var = var * n / (n - 1)
    return var


def whiten(x: torch.Tensor, mask: torch.Tensor | None = None, shift_mean: bool = True,
           eps: float = 1e-8) -> torch.Tensor:
    """Normalise x to unit variance (and zero mean if shift_mean) using the statistics of its valid
    positions; padding comes back as 0. Used for PPO advantages (shift_mean=True) and for
    rewards (shift_mean=False keeps the reward's sign, as in Ziegler et al.'s reward scaling).

    (x - mean) / sqrt(var + eps), var unbiased over valid positions."""
    if mask is None:
        mask = torch.ones_like(x)
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    # whitening (Schulman et al. 2017, PPO baselines): (x - μ) / sqrt(σ² + eps)
    out = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return out * mask.to(x.dtype)


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0,
        lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """(advantages, returns), both (B, T) and 0 on padding.

    rewards: (B, T) per-token rewards (e.g. from `losses.kl_penalised_rewards`)
    values:  (B, T) V(s_t) from the critic at each response token
    mask:    (B, T) 1 on the response, 0 on padding (right-padded)

    GAE (Schulman et al. 2016, eq. 16): Â_t = Σ_l (γλ)^l δ_{t+l}, δ_t = r_t + γ V(s_{t+1}) - V(s_t),
    with V = 0 after the last valid token (the response ends the episode). Returns are the
    λ-returns Â_t + V(s_t), the critic's regression target."""
    mask = mask.to(values.dtype)
    rewards, values = rewards * mask, values * mask
    T = rewards.shape[1]
    advantages = torch.zeros_like(values)
    last = torch.zeros_like(values[:, 0])                      # (B,) Â_{t+1}
    for t in reversed(range(T)):
        # a padded (or absent) next step contributes neither its value nor its advantage
        alive = mask[:, t + 1] if t + 1 < T else torch.zeros_like(last)
        next_value = values[:, t + 1] * alive if t + 1 < T else torch.zeros_like(last)
        # δ_t = r_t + γ V(s_{t+1}) - V(s_t)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        # Â_t = δ_t + γλ Â_{t+1}
        last = delta + gamma * lam * alive * last
        advantages[:, t] = last
    advantages = advantages * mask
    return advantages, (advantages + values) * mask


def group_advantages(rewards: torch.Tensor, scale: bool = True, eps: float = 1e-4) -> torch.Tensor:
    """GRPO outcome advantages, (P, G) -> (P, G): each response's reward relative to its group.

    GRPO (Shao et al. 2024, DeepSeekMath §4.1.2): Â_i = (r_i - mean(r_group)) / (std(r_group) + eps).
    std is the unbiased sample std and eps = 1e-4, as TRL's GRPOTrainer; scale=False gives
    Dr. GRPO's unscaled r_i - mean (Liu et al. 2025), which avoids up-weighting easy prompts."""
    if rewards.dim() != 2 or rewards.shape[1] < 2:
        raise ValueError(f"rewards must be (P, G) with G >= 2, got shape {tuple(rewards.shape)}")
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    if not scale:
        return centred
    # GRPO (Shao et al. 2024): (r - mean_group) / (std_group + eps)
    return centred / (rewards.std(dim=1, keepdim=True) + eps)


def rloo_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """RLOO advantages, (P, G) -> (P, G): each reward minus the mean of the *other* G - 1 rewards
    of its group, an unbiased baseline because it does not depend on the sample it scores.

    RLOO (Ahmadian et al. 2024, eq. 8; Kool et al. 2019): Â_i = r_i - 1/(G-1) Σ_{j≠i} r_j
    = G/(G-1) (r_i - mean(r_group))."""
    if rewards.dim() != 2 or rewards.shape[1] < 2:
        raise ValueError(f"rewards must be (P, G) with G >= 2, got shape {tuple(rewards.shape)}")
    G = rewards.shape[1]
    # RLOO (Ahmadian et al. 2024): r_i - (Σ_j r_j - r_i) / (G - 1)
    return rewards - (rewards.sum(dim=1, keepdim=True) - rewards) / (G - 1)


def batch_scaled_advantages(rewards: torch.Tensor, eps: float = 1e-4,
                            batch_std: torch.Tensor | float | None = None) -> torch.Tensor:
    """REINFORCE++-baseline advantages, (P, G) -> (P, G): the group mean as the baseline, the
    whole batch's reward std as the scale, so easy prompts (small group std) are not up-weighted.

    REINFORCE++ (Hu 2025, §3, "baseline" variant; TRL scale_rewards="batch"):
    Â_i = (r_i - mean(r_group)) / (std(r_batch) + eps), std unbiased over all P·G rewards.
    `batch_std`: the batch's std when `rewards` are only part of it (a micro-batch, or one
    process's share); else the std of `rewards`."""
    if rewards.dim() != 2 or rewards.shape[1] < 2:
        raise ValueError(f"rewards must be (P, G) with G >= 2, got shape {tuple(rewards.shape)}")
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    std = rewards.flatten().std() if batch_std is None else batch_std
    # REINFORCE++-baseline: (r - mean_group) / (std_batch + eps)
    return centred / (std + eps)


def groups_with_signal(rewards: torch.Tensor) -> torch.Tensor:
    """(P,) True for the groups whose rewards are not all equal. DAPO's dynamic sampling (Yu et
    al. 2025, §3.2) drops the others: with zero variance every advantage is 0, so they only
    dilute the gradient of the rest."""
    return (rewards.max(dim=1).values - rewards.min(dim=1).values) > 0


def overlong_filtered(mask: torch.Tensor, truncated: torch.Tensor) -> torch.Tensor:
    """(B, T) mask with truncated responses (cut at max_new_tokens, no end of turn) zeroed: DAPO's
    overlong filtering (Yu et al. 2025, §3.4; TRL mask_truncated_completions), so a reply that
    was cut is not punished for a length limit it never saw."""
    return mask * (~truncated.bool()).to(mask.dtype)[:, None]


def process_advantages(step_rewards: list[list[float]], step_ends: list[list[int]],
                       group_size: int, length: int, *, scale: bool = True,
                       leave_one_out: bool = False, eps: float = 1e-4) -> torch.Tensor:
    """Per-token advantages from per-step rewards (process supervision), (B, length).

    step_rewards[i]: the rewards of response i's steps, in order; step_ends[i][j]: the token
    position (exclusive) where step j of response i ends, increasing. Responses come in groups
    of `group_size` consecutive rows (one prompt's group); a response with no steps gets 0.

    GRPO with process supervision (Shao et al. 2024, DeepSeekMath §4.1.3): every step reward is
    normalised by the mean and std of all step rewards of its group, r̃ = (r - mean) / (std +
    eps) (std unbiased, eps = 1e-4 as `group_advantages`; scale=False keeps r - mean), and
    token t's advantage is the sum of the normalised rewards of the steps ending after it,
    Â_t = Σ_{j: end_j > t} r̃_j. Tokens after the last step's end get 0.
    leave_one_out (rlxf's RLOO analogue, not from a paper): the baseline of response i's steps
    is the mean of the other responses' step rewards, unscaled; with one step per response
    both reduce to `group_advantages` and `rloo_advantages`."""
    B = len(step_rewards)
    if B % group_size or len(step_ends) != B:
        raise ValueError(f"process_advantages: {B} responses, {len(step_ends)} step lists, "
                         f"group_size {group_size}")
    out = torch.zeros(B, length, dtype=torch.float64)
    for g in range(0, B, group_size):
        rows = range(g, g + group_size)
        pooled = torch.tensor([r for i in rows for r in step_rewards[i]], dtype=torch.float64)
        for i in rows:
            if len(step_rewards[i]) != len(step_ends[i]):
                raise ValueError(f"process_advantages: response {i} has "
                                 f"{len(step_rewards[i])} rewards and {len(step_ends[i])} ends")
            if not step_rewards[i]:
                continue
            r = torch.tensor(step_rewards[i], dtype=torch.float64)
            if leave_one_out:
                others = pooled.sum() - r.sum()
                n_others = len(pooled) - len(r)
                # RLOO-style: the baseline leaves this response's own steps out
                normalised = r - (others / n_others if n_others else 0.0)
            else:
                # DeepSeekMath §4.1.3: (r - mean(R)) / std(R), R = all step rewards of the group
                normalised = r - pooled.mean()
                if scale:
                    std = pooled.std() if len(pooled) > 1 else torch.tensor(0.0)
                    normalised = normalised / (std + eps)
            # Â_t = Σ_{j: end_j > t} r̃_j: a reverse cumulative sum over the steps
            to_go = normalised.flip(0).cumsum(0).flip(0)
            start = 0
            for end, value in zip(step_ends[i], to_go.tolist()):
                out[i, start:min(end, length)] = value
                start = end
    return out
