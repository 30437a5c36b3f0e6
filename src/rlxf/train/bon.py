"""Best-of-n: draw n responses from the base policy, keep the one the reward model likes best.
No training, so its distance from the base is set by n alone; this module gives the selection,
the analytic KL, the exact KL of a discrete base, and a sampling estimate of it."""

from __future__ import annotations

import math

import torch


def best_of_n(rewards: torch.Tensor) -> torch.Tensor:
    """Index of the best response of each prompt, (P, n) -> (P,); ties go to the first drawn,
    so a tie picks among the tied responses in proportion to their base probability."""
    if rewards.dim() != 2:
        raise ValueError(f"best_of_n: rewards must be (P, n), got shape {tuple(rewards.shape)}")
    return rewards.argmax(dim=1)


def bon_kl(n: int) -> float:
    """KL(best-of-n || base) when all responses are distinct (a continuous reward distribution).

    Stiennon et al. 2020, appendix G.3; Gao et al. 2023, §2.2: KL_bon = log n - (n-1)/n.
    For a discrete base it is an upper bound (Beirami et al. 2024); equality in the limit."""
    if n < 1:
        raise ValueError(f"bon_kl: n must be >= 1, got {n}")
    # KL_bon = log n - (n-1)/n
    return math.log(n) - (n - 1) / n


def bon_probs(base_probs: torch.Tensor, rewards: torch.Tensor, n: int) -> torch.Tensor:
    """Exact best-of-n distribution over a discrete response set, (K,) -> (K,).

    With responses sorted by reward and F(r) = P_base(reward ≤ r), the best of n draws has a
    reward ≤ r with probability F(r)^n, so a reward level r gets F(r)^n - F(r⁻)^n, shared among
    the responses at that level in proportion to their base probability (ties → first drawn)."""
    p = base_probs / base_probs.sum()
    levels, level_of = torch.unique(rewards, sorted=True, return_inverse=True)
    level_mass = torch.zeros(len(levels), dtype=p.dtype).index_add_(0, level_of, p)
    cdf = level_mass.cumsum(0).clamp(max=1.0)
    below = torch.cat([cdf.new_zeros(1), cdf[:-1]])
    # P(best has reward level r) = F(r)^n - F(r⁻)^n
    level_bon = cdf ** n - below ** n
    return level_bon[level_of] * p / level_mass[level_of]


def bon_kl_exact(base_probs: torch.Tensor, rewards: torch.Tensor, n: int) -> float:
    """KL(best-of-n || base) = Σ_y q(y) log(q(y)/p(y)) for a discrete base, exactly."""
    p = base_probs / base_probs.sum()
    q = bon_probs(p, rewards, n)
    keep = q > 0
    return float((q[keep] * (q[keep].log() - p[keep].log())).sum())


def sample_best_of_n(base_probs: torch.Tensor, rewards: torch.Tensor, n: int, draws: int,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """`draws` best-of-n samples from a discrete base: (draws,) response indices."""
    idx = torch.multinomial(base_probs, draws * n, replacement=True,
                            generator=generator).view(draws, n)
    return idx.gather(1, best_of_n(rewards[idx])[:, None]).squeeze(1)


def bon_kl_estimate(best_rewards: torch.Tensor, base_rewards: torch.Tensor, n: int) -> float:
    """Sampling estimate of KL(best-of-n || base) that needs only rewards, so it also works for a
    language model whose best-of-n log-probs are unknown.

    best_rewards: (m,) rewards of m best-of-n samples; base_rewards: (M,) rewards of M independent
    base samples (their empirical CDF F̂ stands in for F).
    With distinct responses, q(y)/p(y) = n F(r(y))^{n-1}, so
    KL = E_{y~q}[log n + (n-1) log F(r(y))], estimated by its sample mean with F̂ = rank / M
    (clamped at 1/(2M) so an unseen low reward stays finite)."""
    sorted_base = torch.sort(base_rewards.flatten()).values
    M = sorted_base.numel()
    cdf = torch.searchsorted(sorted_base, best_rewards.flatten(), right=True).to(torch.float64) / M
    cdf = cdf.clamp(min=1.0 / (2 * M))
    # KL = E_q[log n + (n-1) log F(r)]
    return float((math.log(n) + (n - 1) * cdf.log()).mean())
