"""The sentences the disclosure and the cards may say about feedback, reward model and policy,
each built only from what the run recorded (stage records in the ledger, their files). Every
function returns None where the facts cannot support its sentence, and the caller then writes
"not disclosed" with the reason from `why_unknown`, never a guess.

Facts used: the feedback stage's `metrics.records` (rlxf.feedback.facts: record types, who
judged, where the responses came from), its config (source, records file and its sha256); the
reward stage's counts (training pairs and rankings: Plackett–Luce whenever it trained on
rankings) and `metrics.aspects`; the policy stage's config and counts.
"""

from __future__ import annotations

TYPE_WORDS = {"pairwise": ("pairwise preference", "pairwise preferences"),
              "ranking": ("ranking", "rankings"), "rating": ("rating", "ratings"),
              "binary": ("binary good / bad label", "binary good / bad labels"),
              "edit": ("edit", "edits"), "critique": ("free-text critique", "free-text critiques")}
JUDGE_WORDS = {"simulated": "simulated annotators", "ai": "an AI judge", "human": "people"}
NOT_RECORDED = ("the feedback stage did not record its record types and origins (a run from "
                "an rlxf before they were recorded): rerun the feedback stage")


def _n(count: int, kind: str) -> str:
    one, many = TYPE_WORDS[kind]
    return f"{count} {one if count == 1 else many}"


def _join(parts: list[str], last: str = "and") -> str:
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} {last} {parts[-1]}"


def recorded(fb_rec: dict | None) -> dict | None:
    """The feedback stage's recorded facts about its records, or None."""
    return (fb_rec or {}).get("metrics", {}).get("records")


def source_phrase(fb_rec: dict) -> str:
    """Where the feedback came from, by the config the stage ran with."""
    cfg = fb_rec["config"]["feedback"]
    source = cfg.get("source", "simulated")
    if source == "human":
        sha = cfg.get("records_sha256")
        return (f"a file of people's judgements, {cfg.get('records', '?')}"
                + (f" (sha256 {sha[:12]}…)" if sha else ""))
    return {"ai": "an AI judge run by this run (RLAIF)",
            "simulated": "simulated annotator pools run by this run"}.get(source, source)


def judged_by(facts: dict) -> str:
    """Who gave the judgements, by each record's own `source` field."""
    parts = [f"{JUDGE_WORDS.get(s, s)} ({n} record{'' if n == 1 else 's'})"
             for s, n in facts["judged_by"].items() if n]
    return _join(parts) if parts else "nobody (no records)"


def types_sentence(fb_rec: dict) -> str | None:
    """The feedback types with their counts, the absent ones named as absent."""
    facts = recorded(fb_rec)
    if facts is None:
        return None
    types = facts["types"]
    present, absent = [], []
    for kind in TYPE_WORDS:  # the record types in one order, whatever order was stored
        n = types.get(kind, 0)
        if not n:
            absent.append(TYPE_WORDS[kind][1])
            continue
        text = _n(n, kind)
        if kind == "pairwise" and facts.get("pairwise_with_aspect"):
            text += f" ({facts['pairwise_with_aspect']} naming the aspect judged)"
        if kind == "rating" and facts.get("rating_aspects"):
            text += " on " + " / ".join(facts["rating_aspects"])
        sizes = facts.get("ranking_sizes") or {}
        if kind == "ranking" and len(sizes) == 1:
            text += f" of {next(iter(sizes))} responses each"
        elif kind == "ranking" and sizes:
            text += " of " + _join([f"{k} ({m})" for k, m in sizes.items()], "or") + " responses"
        present.append(text)
    cfg = fb_rec["config"]["feedback"]
    overlap = (f"; overlap {cfg.get('overlap')} judgements per comparison"
               if cfg.get("source") != "human" and types.get("pairwise") else "")
    return ((_join(present) if present else "no records")
            + (f"; no {_join(absent, 'or')}" if absent else "")
            + f"{overlap}; judged by {judged_by(facts)}; from {source_phrase(fb_rec)}")


def responses_sentence(fb_rec: dict) -> str | None:
    """Where the judged responses came from; None when no record says."""
    facts = recorded(fb_rec)
    if facts is None:
        return None
    origins = facts["responses_from"]
    known = {o: n for o, n in origins.items() if o != "unknown"}
    if not known:
        return None
    total = sum(origins.values())
    parts = [f"{o} ({n} of {total} records)" for o, n in known.items()]
    if origins.get("unknown"):
        parts.append(f"not recorded for {origins['unknown']} records (their provenance does "
                     "not say)")
    return "responses from " + _join(parts)


def why_unknown(fb_rec: dict | None, what: str) -> str:
    if fb_rec is None:
        return "stage feedback has not run"
    if recorded(fb_rec) is None:
        return NOT_RECORDED
    return f"no record's provenance says {what}"


def loss_sentence(rw_rec: dict, fb_rec: dict | None) -> str:
    """The reward model's loss and what it was trained on, from the reward stage's counts."""
    c, m = rw_rec.get("counts", {}), rw_rec.get("metrics", {})
    cfg = rw_rec.get("config", {}).get("reward", {})
    pairs, rankings = c.get("pairs/train", 0), c.get("rankings/train", 0)
    ties = (fb_rec or {}).get("counts", {}).get("majority_ties")
    majority = (f"the majority label of each comparison's judgements (disagreement treated as "
                f"noise; ties dropped: {'?' if ties is None else ties})")
    if rankings:
        text = (f"Plackett–Luce loss on a scalar head over the SFT model: {rankings} "
                f"annotator rankings trained as rankings, with {pairs} pairs from {majority} "
                "as rankings of two")
    else:
        text = (f"Bradley–Terry pairwise loss on a scalar head over the SFT model, trained on "
                f"{majority}; {pairs} training pairs")
    text += f", {m.get('steps', '?')} steps"
    if (c.get("members") or 1) > 1:
        text += f"; an ensemble of {c['members']} such models (seeds differ)"
    aspects = m.get("aspects")
    if isinstance(aspects, dict):
        per = " / ".join(f"{a} {aspects[a].get('pairs/train', '?')}"
                         for a in ("helpful", "harmless", "honest") if a in aspects)
        text += (f"; and a helpful / harmless / honest multi-head model, Bradley–Terry per "
                 f"head on per-aspect pairs from aspect ratings and aspect-labelled pairs "
                 f"(training pairs {per})")
    facts = recorded(fb_rec)
    ratings = facts["types"].get("rating", 0) if facts else 0
    if ratings and not cfg.get("aspects"):
        text += (f"; the feedback's {ratings} ratings were not used by any reward model "
                 "([reward] aspects = false)")
    if isinstance(m.get("pluralistic"), dict):
        text += "; and a group-conditioned model with one Bradley–Terry head per annotator group"
    return text


def policy_sentence(pol_rec: dict) -> str:
    """What the policy was optimised on, by algorithm (the policy stage's config and counts)."""
    p = pol_rec.get("config", {}).get("policy", {})
    c, m = pol_rec.get("counts", {}), pol_rec.get("metrics", {})
    algo = str(p.get("algorithm", "?"))
    steps = m.get("steps", p.get("steps", "?"))
    reference = "with the SFT model as the frozen reference"
    if algo == "bon":
        return (f"No training: the policy is SFT + best-of-{p.get('bon_n', '?')} against the "
                "reward model's score (the proxy).")
    if algo == "kto":
        return (f"KTO (beta {p.get('beta', '?')}, {steps} steps) on {c.get('examples', '?')} "
                f"examples ({c.get('examples/desirable', '?')} desirable) from "
                f"{m.get('kto/label_source', 'labels not recorded')}, {reference}. The reward "
                "model was not optimised against directly; it measures the policy.")
    if algo in ("grpo", "rloo", "ppo"):
        reward = p.get("reward", "mean")
        target = {"mean": "the reward model's score (the ensemble's mean)",
                  "mean_minus_std": f"the reward ensemble's mean − {p.get('uncertainty_penalty', '?')}"
                                    " × its standard deviation",
                  "worst_case": "the reward ensemble's lowest member score",
                  "ai_judge": "an AI judge rating the policy's own samples online (RLAIF)"}.get(
                      reward, str(reward))
        knob = (f"KL coefficient {p.get('ppo', {}).get('kl_coef', '?')}" if algo == "ppo"
                else f"beta {p.get('beta', '?')}")
        prompts = c.get("prompts", c.get("train_prompts", "?"))
        return (f"{algo.upper()} ({knob}, {steps} steps) on samples of {prompts} training "
                f"prompts, rewarded by {target}, {reference}: the policy was optimised "
                "against the proxy.")
    return (f"{algo.upper()} (beta {p.get('beta', '?')}, {steps} steps) on "
            f"{c.get('pairs', '?')} majority-label preference pairs, {reference}. The reward "
            "model was not optimised against directly; it measures the policy (proxy reward).")
