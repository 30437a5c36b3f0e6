"""Calibration of a Bradley-Terry reward model's preference probabilities."""

from __future__ import annotations


def expected_calibration_error(probs: list[float], outcomes: list[bool], bins: int = 10
                               ) -> float | None:
    """ECE (Naeini et al. 2015; Guo et al. 2017): sum over equal-width confidence bins of
    |accuracy - mean confidence| weighted by the bin's share. probs[i] = P(first wins) from
    σ(r_first - r_second), outcomes[i] = whether the first won. Predictions are folded so the
    confidence is in [0.5, 1]: a model saying 0.2 for the first is 0.8 confident in the second."""
    if not probs:
        return None
    folded = [(p, o) if p >= 0.5 else (1 - p, not o) for p, o in zip(probs, outcomes)]
    total, ece = len(folded), 0.0
    for b in range(bins):
        lo, hi = 0.5 + 0.5 * b / bins, 0.5 + 0.5 * (b + 1) / bins
        in_bin = [(p, o) for p, o in folded if lo <= p < hi or (b == bins - 1 and p == hi)]
        if in_bin:
            conf = sum(p for p, _ in in_bin) / len(in_bin)
            acc = sum(o for _, o in in_bin) / len(in_bin)
            ece += abs(acc - conf) * len(in_bin) / total
    return ece
