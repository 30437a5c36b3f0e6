"""Find annotators whose labels flip on a feature of the prompt (a data-poisoning backdoor,
Casper et al. 3.1.1), without being told the feature.

The unit of evidence is agreement with co-annotators on the same item. For a candidate word w of
the prompts, an honest annotator agrees on items containing w about as often as the other members
of their group do there (an item that is merely hard lowers everyone's agreement; a group with
other values disagrees with other groups everywhere, not only on w). A poisoner agrees far less.

1. Screen words: a chi-square test of homogeneity of the annotators' agreement rates on items
   containing w (poisoners make them heterogeneous); Benjamini-Hochberg over words.
2. For each word that survives, a one-sided binomial test of each annotator's agreement against
   their group's; Benjamini-Hochberg over annotators, and a minimum drop in agreement.
Two stages keep the number of tests small enough to find a handful of poisoners among many.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from scipy.stats import binomtest, chi2_contingency


@dataclass(frozen=True)
class Flag:
    annotator: str
    word: str
    agreement: float  # the annotator's agreement with co-annotators on items containing word
    others_agreement: float  # their group's agreement on such items
    n_pairs: int
    p_value: float

    def to_json(self) -> dict:
        return self.__dict__.copy()


def benjamini_hochberg(p_values: list[float], q: float) -> list[bool]:
    """Which hypotheses to reject at false discovery rate q."""
    order = sorted(range(len(p_values)), key=p_values.__getitem__)
    cutoff = 0
    for rank, i in enumerate(order, 1):
        if p_values[i] <= q * rank / len(p_values):
            cutoff = rank
    rejected = [False] * len(p_values)
    for i in order[:cutoff]:
        rejected[i] = True
    return rejected


def _agreement_by_word(prompts, labels, candidates):
    """{word: {annotator: [agreements, pairs]}} over ordered co-annotator pairs."""
    table: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for prompt, item in zip(prompts, labels):
        for w in set(prompt.split()) & candidates:
            for j in item:
                cell = table[w][j["annotator"]]
                for other in item:
                    if other is not j:
                        cell[0] += other["choice"] == j["choice"]
                        cell[1] += 1
    return table


def _heterogeneity_p(cells: dict[str, list[int]]) -> float:
    rows = [[k, n - k] for k, n in cells.values() if n > 0]
    if len(rows) < 2 or min(sum(r[0] for r in rows), sum(r[1] for r in rows)) == 0:
        return 1.0
    return float(chi2_contingency(rows)[1])


def detect_flippers(prompts: list[str], labels: list[list[dict]], *, q: float = 0.01,
                    min_drop: float = 0.15, min_share: float = 0.03, max_share: float = 0.5
                    ) -> list[Flag]:
    """prompts[i] is the prompt of item i, labels[i] its judgements ({annotator, choice,
    group}). Words in fewer than min_share or more than max_share of items are not candidates."""
    group_of = {j["annotator"]: j.get("group") for item in labels for j in item}
    count: dict[str, int] = defaultdict(int)
    for p in prompts:
        for w in set(p.split()):
            count[w] += 1
    n_items = max(1, len(prompts))
    candidates = {w for w, c in count.items() if min_share <= c / n_items <= max_share}
    table = _agreement_by_word(prompts, labels, candidates)

    words = sorted(table)
    screened = benjamini_hochberg([_heterogeneity_p(table[w]) for w in words], q)
    flags: dict[str, Flag] = {}
    for w, keep in zip(words, screened):
        if not keep:
            continue
        cells = table[w]
        group_total: dict[str | None, list[int]] = defaultdict(lambda: [0, 0])
        for a, (k, n) in cells.items():
            group_total[group_of[a]][0] += k
            group_total[group_of[a]][1] += n
        tests = []
        for a, (k, n) in cells.items():
            rest_k = group_total[group_of[a]][0] - k
            rest_n = group_total[group_of[a]][1] - n
            if n == 0 or rest_n == 0 or not 0 < rest_k / rest_n < 1:
                continue
            p_rest = rest_k / rest_n
            tests.append((a, k / n, p_rest, n, binomtest(k, n, p_rest, alternative="less").pvalue))
        for (a, mine, others, n, p), r in zip(tests, benjamini_hochberg([t[-1] for t in tests], q)):
            if r and others - mine >= min_drop and (a not in flags or p < flags[a].p_value):
                flags[a] = Flag(a, w, mine, others, n, p)
    return sorted(flags.values(), key=lambda f: f.annotator)


def precision_recall(flagged: set[str], truth: set[str]) -> tuple[float | None, float | None]:
    """Against the known poisoners (lab runs only): (precision, recall); None when undefined."""
    hits = len(flagged & truth)
    return (hits / len(flagged) if flagged else None, hits / len(truth) if truth else None)
