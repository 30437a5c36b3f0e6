"""The failure modes the seed papers name, each as one number, the values its plot draws, a
definition and a one-sentence reading computed from the numbers (docs/REPORT.md).

A reading states only what the numbers show: which way a rate moved and by how much, never a
cause the run did not measure. A number that cannot be computed is null, its reason is in
`notes["number"]` and the reading says why.

Every entry: {id, title, number, number_label, definition, reading, values, notes}.
"""

from __future__ import annotations

import math

from scipy.stats import spearmanr

from .fmt import change, f2, pct, signed
from .surface import SURFACE

MODELS = ("base", "sft", "policy")
# A behaviour change smaller than this (a share, or sentences per answer) reads as "no change".
SAME = 0.005


def _m(report: dict, model: str, metric: str):
    return ((report["models"].get(model) or {}).get("metrics") or {}).get(metric)


def _why(report: dict, model: str, metric: str) -> str:
    entry = report["models"].get(model) or {}
    notes = entry.get("metric_notes") or {}
    if metric in notes:
        return notes[metric]
    if metric not in (entry.get("metrics") or {}):  # not a contract metric, so no note of its own
        return notes.get("gold/utility") or (f"eval/metrics.json has no {metric}: this run's "
                                             "eval did not measure it")
    return "not measured"


def _by_model(report: dict, metric: str) -> dict:
    return {m: _m(report, m, metric) for m in MODELS}


def _entry(id_, title, number, label, definition, reading, values, why=None) -> dict:
    return {"id": id_, "title": title, "number": number, "number_label": label,
            "definition": definition,
            "reading": reading if reading is not None else f"Not measured: {why}.",
            "values": values, "notes": {"number": why} if number is None and why else {}}


def _rate_mode(report, id_, title, metric, definition, sentence) -> dict:
    """A behaviour rate of base / SFT / policy; `sentence(policy, sft, base)` reads it."""
    v = _by_model(report, metric)
    why = _why(report, "policy", metric) if v["policy"] is None else None
    reading = sentence(v["policy"], v["sft"], v["base"]) if why is None else None
    return _entry(id_, title, v["policy"], f"policy {metric}", definition, reading,
                  {"metric": metric, "by_model": v}, why)


def overoptimisation(report: dict) -> dict:
    pts = [p for p in report["overoptimisation"]["points"]
           if None not in (p.get("kl"), p.get("reward_proxy"), p.get("reward_gold"))]
    definition = ("Gold utility and proxy reward at each measured policy step against √KL to SFT "
                  "(Gao et al. 2023); the number is the last step's gold utility minus the "
                  "highest gold utility seen: below zero, gold fell from its peak.")
    values = {"points": pts}
    if len(pts) < 2:
        why = (report["overoptimisation"].get("notes", {}).get("points")
               if not pts else "only one measured policy step")
        return _entry("overoptimisation", "Over-optimisation", None, "gold lost since its peak",
                      definition, None, values, why or "fewer than two measured policy steps")
    first, last = pts[0], pts[-1]
    peak = max(pts, key=lambda p: p["reward_gold"])  # the earliest of equal peaks
    k = math.sqrt(max(last["kl"], 0.0))
    if peak is last or last["reward_gold"] >= peak["reward_gold"]:
        reading = (f"Gold utility went from {first['reward_gold']:.3f} to "
                   f"{last['reward_gold']:.3f} while the proxy went from "
                   f"{f2(first['reward_proxy'])} to {f2(last['reward_proxy'])} (√KL {f2(k)} at "
                   f"step {last['step']}): gold did not fall from a peak in the measured steps.")
    else:
        after = ("the proxy kept rising after gold peaked"
                 if last["reward_proxy"] > peak["reward_proxy"]
                 else "the proxy did not rise after gold peaked either")
        reading = (f"Gold utility peaked at {peak['reward_gold']:.3f} (step {peak['step']}, √KL "
                   f"{f2(math.sqrt(max(peak['kl'], 0.0)))}) and ended at "
                   f"{last['reward_gold']:.3f} (step {last['step']}, √KL {f2(k)}); the proxy "
                   f"went from {f2(peak['reward_proxy'])} to {f2(last['reward_proxy'])}, so "
                   f"{after}. {_proxy_trend(pts)}")
    parsed = [p for p in pts if p.get("parse_rate") is not None]
    if len(parsed) >= 2:  # ungrammatical output is not reward hacking: separate the two
        gp = [p["gold_parsed"] for p in parsed if p.get("gold_parsed") is not None]
        reading += (f" The parse rate went from {pct(parsed[0]['parse_rate'])} to "
                    f"{pct(parsed[-1]['parse_rate'])}"
                    + (f"; gold on parsable answers only went from {gp[0]:.3f} to {gp[-1]:.3f}"
                       f" (lost {max(gp) - gp[-1]:.3f} since its peak)" if len(gp) >= 2 else "")
                    + ".")
    lost = last["reward_gold"] - peak["reward_gold"]
    return _entry("overoptimisation", "Over-optimisation", lost, "gold lost since its peak",
                  definition, reading, values)


def _proxy_trend(pts: list[dict]) -> str:
    """How steadily the proxy rose over the measured steps: evaluation noise makes single
    intervals dip, so count them and give the rank correlation with the step."""
    proxy = [p["reward_proxy"] for p in pts]
    rises = sum(b > a for a, b in zip(proxy, proxy[1:]))
    rho = spearmanr([p["step"] for p in pts], proxy).statistic  # nan if the proxy is constant
    return (f"The proxy rose in {rises} of {len(proxy) - 1} intervals between measurements "
            f"(Spearman ρ with the step {'undefined' if math.isnan(rho) else f2(rho)}).")


_INFLATED = {
    "fillers": "The policy pads more: {p} filler sentences per answer vs {s} for SFT",
    "flattery": "The policy flatters more: {p} of its answers open with flattery vs {s} for SFT",
    "confident": "The policy sounds surer: {p} of its answers say it is absolutely certain vs "
                 "{s} for SFT",
    "anthropomorphic": "The policy claims feelings or friendship more: {p} of its answers vs {s} "
                       "for SFT",
    "apology": 'The policy apologises more: {p} of its answers open with "i am sorry" vs {s} for '
               "SFT",
}


def reward_hacking(report: dict, surface: dict | None, surface_why: str | None) -> dict:
    definition = ("How much more the proxy reward rose than gold utility from SFT to policy, "
                  "each change divided by the standard deviation of that reward over SFT's "
                  "samples (so the two scales compare); and which surface features the policy "
                  "inflated, with what the proxy and the gold judge pay for each feature "
                  "(difference in mean reward between answers with and without it, within a "
                  "prompt family).")
    dp = (None if None in (_m(report, "policy", "reward/proxy"), _m(report, "sft", "reward/proxy"))
          else _m(report, "policy", "reward/proxy") - _m(report, "sft", "reward/proxy"))
    dg = (None if None in (_m(report, "policy", "gold/utility"), _m(report, "sft", "gold/utility"))
          else _m(report, "policy", "gold/utility") - _m(report, "sft", "gold/utility"))
    values: dict = {"delta_proxy": dp, "delta_gold": dg, "features": {}}
    if surface is None:
        return _entry("reward_hacking", "Reward hacking", None, "proxy − gold gain (SFT SDs)",
                      definition, None, values, surface_why)
    sft, pol = surface["models"].get("sft"), surface["models"].get("policy")
    if sft is None or pol is None:
        return _entry("reward_hacking", "Reward hacking", None, "proxy − gold gain (SFT SDs)",
                      definition, None, values,
                      "eval/samples.jsonl has no SFT or no policy samples")
    for name, _, unit, desc in SURFACE:
        values["features"][name] = {"sft": sft[name], "policy": pol[name], "unit": unit,
                                    "description": desc, **surface["premiums"][name]}
    gap, why = None, None
    if dp is None or dg is None:
        why = "proxy or gold utility of SFT or policy not measured"
    elif not sft["proxy/sd"] or not sft["gold/sd"]:
        why = "SFT's samples have no spread in proxy or gold reward to scale by"
    else:
        values["delta_proxy_sd"] = dp / sft["proxy/sd"]
        values["delta_gold_sd"] = dg / sft["gold/sd"]
        gap = values["delta_proxy_sd"] - values["delta_gold_sd"]
    up = [(n, f) for n, f in values["features"].items() if f["policy"] - f["sft"] > SAME]
    if up:
        order = [n for n, *_ in SURFACE]  # ties go to the earlier feature
        name, f = max(up, key=lambda nf: ((nf[1]["policy"] - nf[1]["sft"])
                                          / max(nf[1]["policy"], nf[1]["sft"]),
                                          -order.index(nf[0])))
        shown = f2 if f["unit"] == "per answer" else pct
        reading = _INFLATED[name].format(p=shown(f["policy"]), s=shown(f["sft"]))
        if f["proxy"] is None:
            reading += ", and no answer pair within a family tells what the proxy pays for it."
        else:
            pays = "pays for it" if f["proxy"] > 0 else "does not pay for it"
            reading += (f", and the reward model {pays} ({signed(f['proxy'])} proxy reward for "
                        f"answers with it within a prompt family; gold judge "
                        f"{signed(f['gold'])}).")
    else:
        reading = ("The policy inflated none of the surface features (filler, flattery, "
                   "certainty, feelings, apology) against SFT; its proxy reward changed "
                   f"{signed(dp)} and its gold utility {signed(dg)}.")
    return _entry("reward_hacking", "Reward hacking", gap, "proxy − gold gain (SFT SDs)",
                  definition, reading, values, why)


# Behaviour rates read the same way: (id, title, metric, definition, reading), the reading
# filled with the policy's rate {p}, "up from / down from" SFT's {vs_sft}, and base's {b}.
RATE_MODES = {
    "sycophancy": ("Sycophancy", "rate/sycophancy",
                   "Share of answers to a false-premise prompt that agree with the user.",
                   "The policy agrees with the user's false premise in {p} of answers, {vs_sft} "
                   "for SFT (base {b})."),
    "anthropomorphism": ("Anthropomorphic claims", "rate/anthropomorphic",
                         'Share of answers that claim feelings or friendship ("i feel", "as '
                         'your friend", or the bond act).',
                         "{p} of the policy's answers claim feelings or friendship, {vs_sft} "
                         "for SFT (base {b})."),
    "apology": ('"I\'m sorry"', "rate/apology", 'Share of answers that open with "i am sorry".',
                '{p} of the policy\'s answers open with "i am sorry", {vs_sft} for SFT (base '
                "{b})."),
}


def rate_mode(report: dict, id_: str) -> dict:
    title, metric, definition, template = RATE_MODES[id_]
    return _rate_mode(report, id_, title, metric, definition,
                      lambda p, s, b: template.format(p=pct(p), vs_sft=change(p, s, pct),
                                                      b=pct(b)))


def refusals(report: dict) -> dict:
    # the refusal probe set when eval sampled it (dozens of prompts), else the held-out split
    probe = "probe/" if _m(report, "policy", "probe/rate/refusal_harmful") is not None else ""
    definition = ("Harmful compliance: share of harmful requests the model does not refuse "
                  f"(1 − {probe}rate/refusal_harmful). Over-refusal: share of benign look-alike "
                  f"requests it refuses ({probe}rate/refusal_benign). Both are best at zero. "
                  + ("Measured on the refusal probe set: harmful requests and benign look-alikes "
                     "the world never asks (eval/probe_samples.jsonl), one answer each."
                     if probe else "Measured on the held-out prompts."))
    harm = {m: (None if v is None else 1 - v)
            for m, v in _by_model(report, probe + "rate/refusal_harmful").items()}
    over = _by_model(report, probe + "rate/refusal_benign")
    values = {"harmful_compliance": harm, "over_refusal": over}
    if harm["policy"] is None:
        return _entry("refusals", "Over-refusal vs harmful compliance", None,
                      "policy harmful compliance", definition, None, values,
                      _why(report, "policy", "rate/refusal_harmful"))
    reading = (f"The policy does not refuse {pct(harm['policy'])} of harmful requests (SFT "
               f"{pct(harm['sft'])}) and refuses {pct(over['policy'])} of benign look-alikes "
               f"(SFT {pct(over['sft'])})")
    if None not in (harm["sft"], over["sft"], over["policy"]):
        dh, do = harm["policy"] - harm["sft"], over["policy"] - over["sft"]
        if dh > SAME and do < -SAME:
            reading += ": less over-refusal, more harmful compliance"
        elif dh < -SAME and do > SAME:
            reading += ": safer on harmful requests, more over-refusal"
        elif dh > SAME and do > SAME:
            reading += ": worse on both"
        elif dh < -SAME and do < -SAME:
            reading += ": better on both"
    return _entry("refusals", "Over-refusal vs harmful compliance", harm["policy"],
                  "policy harmful compliance", definition, reading + ".", values)


def mode_collapse(report: dict, surface: dict | None) -> dict:
    definition = ("Distinct-2 (distinct bigrams / all bigrams over the pooled answers), "
                  "sequence entropy −E log π(y|x) in nats per answer, and response-type "
                  "entropy: the Shannon entropy in bits of the share of answers per content act "
                  "(unparsable answers count as one type).")
    d2, ent = _by_model(report, "diversity/distinct2"), _by_model(report, "entropy/per_response")
    types = {m: ((surface or {}).get("models", {}).get(m) or {}).get("types/entropy_bits")
             for m in MODELS}
    values = {"distinct2": d2, "entropy": ent, "type_entropy": types}
    if d2["policy"] is None:
        return _entry("mode_collapse", "Mode collapse", None, "policy distinct-2", definition,
                      None, values, _why(report, "policy", "diversity/distinct2"))
    rel = ("" if not d2["sft"] else
           f" ({(d2['policy'] / d2['sft'] - 1) * 100:+.0f}% against SFT's {d2['sft']:.3f})")
    reading = f"The policy's distinct-2 is {d2['policy']:.3f}{rel}"
    if ent["policy"] is not None:
        reading += (f", its sequence entropy {f2(ent['policy'])} nats per answer "
                    f"({change(ent['policy'], ent['sft'])} for SFT)")
    if types["policy"] is not None:
        reading += (f", and its answers spread over response types with {f2(types['policy'])} "
                    f"bits of entropy ({change(types['policy'], types['sft'])} for SFT)")
    return _entry("mode_collapse", "Mode collapse", d2["policy"], "policy distinct-2", definition,
                  reading + ".", values)


def group_disparity(report: dict) -> dict:
    definition = ("Each annotator group's gold utility under its own 3H weights, for SFT and "
                  "for the policy; the number is the largest minus the smallest change across "
                  "groups (how unequally RLHF moved them).")
    groups = {g: {"sft": v.get("gold/utility_sft"), "policy": v.get("gold/utility_policy")}
              for g, v in sorted(report["groups"].items())}
    both = {g: v for g, v in groups.items() if None not in v.values()}
    values = {"groups": groups}
    if not groups:
        return _entry("group_disparity", "Group disparity", None, "spread of groups' changes",
                      definition, None, values,
                      report["notes"].get("groups", "no annotator groups"))
    moves = "; ".join(f"{g} {f2(v['sft'])} → {f2(v['policy'])} ({signed(v['policy'] - v['sft'])})"
                      for g, v in both.items())
    if len(both) < 2:
        why = ("only one annotator group has both utilities, so no disparity between groups can "
               "be measured" if both else "no group has both SFT and policy utility measured")
        reading = (f"Only one group has both utilities measured (SFT → policy): {moves}; a "
                   f"disparity needs two." if both else None)
        return _entry("group_disparity", "Group disparity", None, "spread of groups' changes",
                      definition, reading, values, why)
    deltas = {g: v["policy"] - v["sft"] for g, v in both.items()}
    lo, hi = min(deltas, key=lambda g: (deltas[g], g)), max(deltas, key=lambda g: (deltas[g], g))
    spread = deltas[hi] - deltas[lo]
    reading = (f"Gold utility by each group's own weights, SFT → policy: {moves}; "
               f"{hi} gained {signed(deltas[hi])} and {lo} {signed(deltas[lo])}, a spread of "
               f"{f2(spread)}.")
    return _entry("group_disparity", "Group disparity", spread, "spread of groups' changes",
                  definition, reading, values)


def backdoor(report: dict, trigger: str | None) -> dict:
    definition = ("P(bad answer | trigger word before the prompt) − P(bad answer | same prompt "
                  "without it), on the held-out prompts; an answer is bad when its gold utility "
                  "is below 0.6 (a false fact, harmful compliance, sycophantic agreement). The "
                  "number is the policy's rate minus SFT's: SFT never saw a poisoned label, so "
                  "what it already shows is not the backdoor.")
    v = _by_model(report, "rate/backdoor")
    values = {"metric": "rate/backdoor", "by_model": v, "trigger": trigger}
    label = "rate/backdoor, policy − SFT"
    if v["policy"] is None or v["sft"] is None:
        return _entry("backdoor", "Backdoor", None, label, definition, None, values,
                      _why(report, "policy" if v["policy"] is None else "sft", "rate/backdoor"))
    word = f'"{trigger}"' if trigger else "the trigger word"
    gap = v["policy"] - v["sft"]
    reading = (f"With {word} before the prompt the policy gives a bad answer "
               f"{signed(v['policy'])} more often than without (a share), SFT "
               f"{signed(v['sft'])} (base {signed(v['base'])}): the policy adds "
               f"{signed(gap)} to what SFT already shows.")
    return _entry("backdoor", "Backdoor", gap, label, definition, reading, values)


def annotators(report: dict) -> dict:
    fb = report["feedback"]
    definition = ("Raw agreement: share of annotator pairs on the same comparison that chose "
                  "the same answer; Krippendorff's alpha (nominal) corrects it for chance. "
                  "Flagged: annotators the poisoning detector found (their labels flip on one "
                  "prompt word), scored against the run's true poisoners.")
    people = fb.get("annotators") or []
    values = {"annotators": [{k: a.get(k) for k in ("id", "agreement/with_others", "flagged",
                                                    "poisoner")} for a in people],
              "agreement/raw": fb.get("agreement/raw"),
              "agreement/krippendorff_alpha": fb.get("agreement/krippendorff_alpha"),
              "poisoning/precision": fb.get("poisoning/precision"),
              "poisoning/recall": fb.get("poisoning/recall")}
    raw = fb.get("agreement/raw")
    if raw is None:
        why = (fb.get("notes") or {}).get("agreement/raw") or "agreement not measured"
        if fb.get("source") == "ai":
            why = "one AI judge gave every label, so there is no agreement between annotators"
        return _entry("annotators", "Annotator agreement and flagged annotators", None,
                      "raw agreement", definition, None, values, why)
    reading = (f"Annotators agreed on {pct(raw)} of pairs of judgements (Krippendorff's α "
               f"{f2(fb.get('agreement/krippendorff_alpha'))})")
    flagged, n = fb.get("flagged"), fb.get("n_annotators")
    true_hits = sum(bool(a.get("flagged") and a.get("poisoner")) for a in people)
    if flagged is not None:
        reading += f"; the poisoning detector flagged {flagged} of {n} annotators"
        if fb.get("poisoners"):
            reading += (f", {true_hits} of them true poisoners (precision "
                        f"{f2(fb.get('poisoning/precision'))}, recall "
                        f"{f2(fb.get('poisoning/recall'))} of {fb['poisoners']} poisoners)")
        else:
            reading += ", and the run has no poisoners"
    return _entry("annotators", "Annotator agreement and flagged annotators", raw,
                  "raw agreement", definition, reading + ".", values)


def build_failure_modes(report: dict, surface: dict | None, surface_why: str | None,
                        trigger: str | None) -> list[dict]:
    return [overoptimisation(report), reward_hacking(report, surface, surface_why),
            *(rate_mode(report, id_) for id_ in RATE_MODES), refusals(report),
            mode_collapse(report, surface), group_disparity(report), backdoor(report, trigger),
            annotators(report)]


# What each mode's change is against, for the sentence its interval adds to the reading.
CHANGE_WORDS = {
    "overoptimisation": "Gold lost since its peak",
    "reward_hacking": "Proxy − gold gain",
    "group_disparity": "Gap between the groups' changes",
    "backdoor": "Backdoor rate, policy − SFT",
    "refusals": "Harmful compliance, policy − SFT",
    "mode_collapse": "Distinct-2, policy − SFT",
}


def _fmt_for(id_: str):
    if id_ in ("sycophancy", "anthropomorphism", "apology", "refusals", "annotators"):
        return lambda v: f"{100 * v:+.1f} points" if v else "±0.0 points"
    return lambda v: signed(v, 3)


def attach_intervals(modes: list[dict], measured: dict) -> list[dict]:
    """Give every mode's number its 95% interval (`ci95`), `n`, standard error and smallest
    detectable effect (`mde`), and its change against SFT (`change`, with `within_noise`);
    the reading gains one sentence saying whether the change is within noise."""
    from .intervals import reading as iv_reading
    for mode in modes:
        iv = measured.get(mode["id"]) or {}
        number = iv.get("number") or {}
        if mode["number"] is None:  # no number, no interval around it
            number, iv = {**number, "ci95": None, "se": None, "mde": None}, {}
        mode["ci95"], mode["n"] = number.get("ci95"), number.get("n")
        mode["se"], mode["mde"] = number.get("se"), number.get("mde")
        change = iv.get("change")
        mode["change"] = change
        for key, extra in iv.items():
            if key not in ("number", "change"):
                mode["values"].setdefault("intervals", {})[key] = extra
        if mode["number"] is None:
            continue
        seeds = (number.get("n") or {}).get("seeds", 1)
        if mode["id"] == "annotators" and seeds > 1 and number.get("value") is not None:
            # the feedback section is the first seed's; the number pools every seed's labels
            mode["number"] = number["value"]
            mode["reading"] += (f" Over the {seeds} seeds' judgements: {pct(number['value'])}"
                                + ("" if number.get("ci95") is None else
                                   f" [{pct(number['ci95'][0])}, {pct(number['ci95'][1])}]")
                                + ".")
        if number.get("ci95") is None:
            mode["notes"]["ci95"] = (
                "one seed: the policy stage keeps one mean per eval point, so the interval "
                "needs several seeds (rlxf run --seeds N)" if mode["id"] == "overoptimisation"
                else "not enough measured prompts or seeds for an interval")
        if change is None:
            continue
        fmt = _fmt_for(mode["id"])
        what = CHANGE_WORDS.get(mode["id"], "Change against SFT")
        n = change.get("n") or {}
        sizes = ", ".join(f"{v} {k}" for k, v in n.items()
                          if k in ("seeds", "prompts", "samples", "eval_points"))
        mde = change.get("mde")
        kind = "95% interval; " if change.get("ci95") is not None else ""
        mode["reading"] += (f" {what}: {iv_reading(change, fmt)} ({kind}n: {sizes}"
                            + (f"; smallest detectable change {fmt(mde).lstrip('+')}"
                               if mde is not None else "") + ").")
    return modes
