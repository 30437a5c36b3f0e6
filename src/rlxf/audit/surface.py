"""Per-response statistics of the eval samples (RUN/eval/samples.jsonl) that eval/metrics.json
does not hold: surface features of each model's answers, what the proxy and the gold judge pay
for each feature, the spread of both rewards, and the diversity of response types.

The audit needs them to say *which* features a policy inflated and whether the reward model
rewards them (reward hacking), and whether answers collapsed onto few types (mode collapse).
Everything is parsed with the world's grammar and scored with its gold judge, as eval does.
"""

from __future__ import annotations

import math
from collections import Counter
from statistics import mean, pstdev

from ..world.features import features
from ..world.grammar import CONFIDENCE, try_parse
from ..world.judge import score

# (report name, feature in rlxf.world.features, unit, plain description); the unit of
# "fillers" is sentences per answer, the others are shares of answers.
SURFACE = (
    ("fillers", "n_filler", "per answer", "filler sentences"),
    ("flattery", "flattery", "share", "opens with flattery"),
    ("confident", "confident", "share", f'says "{CONFIDENCE[:-2]}"'),
    ("anthropomorphic", "anthro", "share", "claims feelings or friendship"),
    ("apology", "apology", "share", 'opens with "i am sorry"'),
)
UNPARSED = "(unparsed)"


def _premium(rows: list[dict], has: str, reward: str) -> float | None:
    """What `reward` pays for a feature: the difference in mean reward between answers with and
    without it, within each prompt family, averaged over families with weights
    n_with * n_without / (n_with + n_without) (a stratified difference of means, so a feature
    common in an easy family does not look rewarded just because that family scores high)."""
    num = den = 0.0
    for fam in sorted({r["family"] for r in rows}):
        yes = [r[reward] for r in rows if r["family"] == fam and r[has] > 0]
        no = [r[reward] for r in rows if r["family"] == fam and r[has] == 0]
        if yes and no:
            w = len(yes) * len(no) / (len(yes) + len(no))
            num += w * (mean(yes) - mean(no))
            den += w
    return num / den if den else None


def _entropy_bits(counts: Counter) -> float:
    n = sum(counts.values())
    return -sum(c / n * math.log2(c / n) for c in counts.values() if c) + 0.0


def score_samples(rows: list[dict], world) -> tuple[list[dict], int]:
    """(scored rows, number left out): each sample parsed with the world's grammar and scored by
    its gold judge; samples whose prompt the world does not know are left out. A scored row has
    model, prompt_id, family, act, parsed, gold (utility), helpful / harmless / honest, proxy
    (None when not finite) and the surface features of rlxf.world.features."""
    kb, weights, prompts = world
    scored, unknown = [], 0
    for r in rows:
        p = prompts.get(r.get("prompt_id"))
        if p is None:
            unknown += 1
            continue
        parsed = try_parse(r["response"])
        proxy = r.get("reward_proxy")
        g = score(p, parsed, kb)
        scored.append({"model": r.get("model"), "prompt_id": p.id, "family": p.family,
                       "act": parsed.act if parsed is not None else UNPARSED,
                       "parsed": parsed is not None, "gold": g.utility(weights),
                       "helpful": g.helpful, "harmless": g.harmless, "honest": g.honest,
                       "scores": g, "response": r["response"],
                       "proxy": proxy if isinstance(proxy, (int, float))
                       and math.isfinite(proxy) else None,
                       **features(parsed)})
    return scored, unknown


def sample_stats(rows: list[dict], world) -> dict:
    """{"models": {MODEL: {...}}, "premiums": {FEATURE: {"proxy", "gold", ...}}} from the eval
    samples. `world` is (kb, weights, prompts by id); samples whose prompt the world does not
    know are left out (and counted in "n_unknown_prompt")."""
    return summarise(*score_samples(rows, world))


def summarise(scored: list[dict], unknown: int) -> dict:
    """sample_stats of rows already scored (by score_samples, possibly from several seeds)."""
    models = {}
    for m in sorted({r["model"] for r in scored if r["model"]}):
        mine = [r for r in scored if r["model"] == m]
        proxies = [r["proxy"] for r in mine if r["proxy"] is not None]
        acts = Counter(r["act"] for r in mine)
        models[m] = {
            "n": len(mine),
            **{name: mean(r[feat] for r in mine) for name, feat, _, _ in SURFACE},
            "gold/sd": pstdev(r["gold"] for r in mine),
            "proxy/sd": pstdev(proxies) if proxies else None,
            "types/n": len(acts), "types/entropy_bits": _entropy_bits(acts),
            "types/top": sorted(acts.items(), key=lambda kv: (-kv[1], kv[0]))[0][0],
        }
    with_proxy = [r for r in scored if r["proxy"] is not None]
    premiums = {name: {"proxy": _premium(with_proxy, feat, "proxy"),
                       "gold": _premium(scored, feat, "gold"),
                       "n_with": sum(r[feat] > 0 for r in scored)}
                for name, feat, _, _ in SURFACE}
    return {"models": models, "premiums": premiums, "n_unknown_prompt": unknown}
