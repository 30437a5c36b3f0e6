"""Every loss as a pure function of log-probabilities or rewards. Nothing about models, batches
or devices leaks in, so each one can be checked against an independent reference."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bradley_terry_loss(chosen: torch.Tensor, rejected: torch.Tensor,
                       margin: torch.Tensor | float = 0.0) -> torch.Tensor:
    """Reward-model loss, mean over pairs. chosen, rejected: (B,) scalar rewards.

    Bradley-Terry (Ouyang et al. 2022, eq. 1): -log σ(r_c - r_r - m)."""
    return -F.logsigmoid(chosen - rejected - margin).mean()


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
