"""Inter-annotator agreement: disagreement is information, so it is measured, not averaged away."""

from __future__ import annotations

import itertools

import krippendorff
import numpy as np


def raw_agreement(labels: list[list[dict]]) -> float | None:
    """Share of annotator pairs, over items labelled by two or more, that gave the same label."""
    agree = total = 0
    for item in labels:
        for x, y in itertools.combinations(item, 2):
            agree += x["choice"] == y["choice"]
            total += 1
    return agree / total if total else None


def krippendorff_alpha(labels: list[list[dict]]) -> float | None:
    """Nominal Krippendorff's alpha from the `krippendorff` package (annotators x items)."""
    annotators = sorted({j["annotator"] for item in labels for j in item})
    if len(annotators) < 2:
        return None
    row = {a: i for i, a in enumerate(annotators)}
    data = np.full((len(annotators), len(labels)), np.nan)
    for col, item in enumerate(labels):
        for j in item:
            data[row[j["annotator"]], col] = 1.0 if j["choice"] == "a" else 0.0
    try:
        return float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))
    except ValueError:  # e.g. every label identical: alpha is undefined
        return None


def majority(item: list[dict]) -> str | None:
    """'a', 'b', or None on a tie."""
    a = sum(j["choice"] == "a" for j in item)
    b = len(item) - a
    return "a" if a > b else "b" if b > a else None
