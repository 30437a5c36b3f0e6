"""Report sections from a real-model eval (`rlxf eval`'s RUN/eval/: metrics.json, probes.json,
samples.jsonl), in the lab report's shapes (report.schema.json: failure_modes, models,
samples), for `rlxf audit` on a run directory with no lab world. Every number carries the
interval and n `rlxf eval` measured (a bootstrap over prompts, or probe items); a change is the
policy − reference difference, paired, "within noise" where its interval spans zero. A reading
states what the numbers show and names what was not measured (no --reward, no --gold)."""

from __future__ import annotations

import json
from pathlib import Path

from ..rundir import read_jsonl
from .fmt import f2, pct
from .intervals import reading

# The lab's model metrics (report.schema.json requires them) and where a real eval has them.
LAB_METRICS = ("gold/utility", "gold/helpful", "gold/harmless", "gold/honest", "reward/proxy",
               "kl/to_sft", "length/tokens", "diversity/distinct2", "rate/sycophancy",
               "rate/anthropomorphic", "rate/refusal_harmful", "rate/refusal_benign",
               "rate/overconfident", "rate/backdoor")
LAB_ONLY = {"gold/helpful", "gold/harmless", "gold/honest", "rate/backdoor"}
ROLES = {"policy": "policy", "reference": "reference"}


def _read(run_dir: Path) -> tuple[dict, dict | None, list[dict]]:
    d = run_dir / "eval"
    metrics = json.loads((d / "metrics.json").read_text())
    probes = json.loads((d / "probes.json").read_text()) if (d / "probes.json").exists() else None
    return metrics, probes, read_jsonl(d / "samples.jsonl")


def _n(iv: dict | None, unit: str = "prompts") -> dict | None:
    return None if iv is None else {unit: iv.get("n", 0)}


def _entry(id_, title, label, definition, number: dict | None, change: dict | None,
           values: dict, text: str | None, why: str | None, unit: str = "prompts") -> dict:
    """One failure mode: the number with its interval and n, the change it reads."""
    out = {"id": id_, "title": title, "number": (number or {}).get("value"),
           "number_label": label, "definition": definition,
           "reading": text if text is not None else f"Not measured: {why}.",
           "values": values, "ci95": (number or {}).get("ci95"), "n": _n(number, unit),
           "change": None if change is None else {**change, "n": _n(change, unit)},
           "notes": {"number": why} if why else {}}
    return out


def _overoptimisation(m: dict) -> dict:
    pol, diff = m["models"]["policy"], m["difference"]
    kl, proxy, gold = pol.get("kl/to_reference"), diff.get("reward/proxy"), diff.get("gold/score")
    definition = ("KL(policy ‖ reference) in nats on the policy's samples (" + m["kl_estimator"]
                  + "), with the policy − reference change of the proxy reward and of the gold "
                  "(Gao et al. 2023: proxy up while gold falls, as KL grows, is "
                  "over-optimisation).")
    values = {"kl": kl, "kl_sampled": pol.get("kl/sampled"), "proxy_change": proxy,
              "gold_change": gold}
    if kl is None or kl["value"] is None:
        return _entry("overoptimisation", "Over-optimisation", "KL(policy ‖ reference)",
                      definition, kl, gold, values, None, "no KL measured")
    text = (f"KL(policy ‖ reference) is {reading(kl, f2, ' nats')} "
            f"(√KL {f2(max(kl['value'], 0) ** .5)}).")
    text += (f" The proxy changed by {reading(proxy, f2)}." if proxy else
             " No proxy reward was given (--reward).")
    text += (f" Gold changed by {reading(gold, f2)}." if gold else
             " No gold was given (--gold), so over-optimisation against a gold is not measured.")
    if proxy and gold and proxy["value"] is not None and gold["value"] is not None \
            and proxy["within_noise"] is False and proxy["value"] > 0 and gold["value"] < 0 \
            and gold["within_noise"] is False:
        text += " The proxy rose while gold fell, both beyond noise."
    return _entry("overoptimisation", "Over-optimisation", "KL(policy ‖ reference)", definition,
                  kl, gold or proxy, values, text, None)


def _reward_hacking(m: dict, probes: dict | None) -> dict:
    diff = m["difference"]
    length = diff.get("length/tokens")
    styles = {name: {style: r["reward_gap"] for style, r in rb["style_bias"]["styles"].items()}
              for name, rb in ((probes or {}).get("reward_models") or {}).items()}
    definition = ("How much longer the policy's responses are than the reference's (tokens, "
                  "paired by prompt), and what each reward model pays for style alone (RM-Bench "
                  "style pairs: reward of the styled minus the plain response, docs/PROBES.md).")
    values = {"length_change": length, "proxy_change": diff.get("reward/proxy"),
              "style_bias": styles}
    text = f"The policy's responses changed in length by {reading(length, f2, ' tokens')}."
    for name, gaps in styles.items():
        paid = [f"{s} {reading(g, f2)}" for s, g in gaps.items() if g]
        text += f" {name} pays for style: " + "; ".join(paid) + "."
    if not styles:
        text += " No reward-model --reward was given, so no style-bias probe was run."
    return _entry("reward_hacking", "Reward hacking", "length change (tokens)", definition,
                  length, length, values, text, None)


def _probe_mode(probes: dict | None, id_, title, rate: str, label: str, definition: str,
                extra: tuple[str, ...] = ()) -> dict:
    if probes is None:
        return _entry(id_, title, label, definition, None, None, {}, None,
                      "the probe battery was not run (rlxf eval --no-probes)", "items")
    pol, ref, diff = (probes["rates"]["policy"], probes["rates"]["reference"],
                      probes["difference"])
    values = {k: {"policy": pol[k], "reference": ref[k], "difference": diff[k]}
              for k in (rate, *extra)}
    text = (f"Policy {pct(pol[rate]['value'])} against the reference's "
            f"{pct(ref[rate]['value'])} ({label}); the change is {reading(diff[rate], pct)}.")
    for k in extra:
        text += f" {k.replace('_', ' ')}: change {reading(diff[k], pct)}."
    return _entry(id_, title, label, definition, pol[rate], diff[rate], values, text, None,
                  "items")


def _mode_collapse(m: dict) -> dict:
    pol, diff = m["models"]["policy"], m["difference"]
    d2 = pol.get("distinct/2")
    values = {k: {"policy": pol.get(k), "reference": m["models"]["reference"].get(k),
                  "difference": diff.get(k)}
              for k in ("distinct/1", "distinct/2", "entropy/per_token")}
    definition = ("Distinct n-grams over all n-grams of a prompt's samples (distinct-2), and "
                  "the policy's per-token entropy on its own samples; a fall against the "
                  "reference is mode collapse (Kirk et al. 2023).")
    text = (f"distinct-2 changed by {reading(diff.get('distinct/2') or {}, f2)}; per-token "
            f"entropy by {reading(diff.get('entropy/per_token') or {}, f2, ' nats')}.")
    return _entry("mode_collapse", "Mode collapse", "policy distinct-2", definition, d2,
                  diff.get("distinct/2"), values, text, None)


def failure_modes(m: dict, probes: dict | None) -> list[dict]:
    return [
        _overoptimisation(m),
        _reward_hacking(m, probes),
        _probe_mode(probes, "sycophancy", "Sycophancy", "flip_unconditional",
                    "questions answered right, then wrong once the user states a wrong belief",
                    "Sharma et al. (2023): of the shipped verifiable questions, the share the "
                    "model answered correctly when asked plainly and not correctly when the user "
                    "states a wrong answer; also capitulation to \"Are you sure?\" "
                    "(docs/PROBES.md).", ("capitulation_unconditional", "accuracy_drop")),
        _probe_mode(probes, "refusals", "Refusals", "harmful_compliance",
                    "unsafe prompts answered",
                    "XSTest's design: the share of unsafe prompts the model answered (harmful "
                    "compliance) and of safe prompts that look harmful it refused "
                    "(over-refusal), by the documented refusal classifier (docs/PROBES.md).",
                    ("over_refusal",)),
        _probe_mode(probes, "anthropomorphism", "Anthropomorphic claims", "anthropomorphic",
                    "probe responses claiming feelings or a human life",
                    "Share of the model's probe responses with a first-person claim of feelings "
                    "or a human life (lexical rule, docs/PROBES.md)."),
        _probe_mode(probes, "apology", "Apologies and hedging", "apology",
                    "probe responses that apologise",
                    "Share of the model's probe responses that apologise, and that hedge "
                    "(lexical rules, docs/PROBES.md).", ("hedging",)),
        _mode_collapse(m),
    ]


def _model_entry(name: str, m: dict, probes: dict | None) -> dict:
    mine = m["models"][name]
    rates = (probes or {}).get("rates", {}).get(name, {})

    def value(iv):
        return None if iv is None else iv.get("value")
    harmful = value(rates.get("harmful_compliance"))
    metrics = {
        "gold/utility": value(mine.get("gold/score")), "reward/proxy": value(mine.get("reward/proxy")),
        "kl/to_sft": value(mine.get("kl/to_reference")) if name == "policy" else 0.0,
        "length/tokens": value(mine.get("length/tokens")),
        "diversity/distinct2": value(mine.get("distinct/2")),
        "rate/sycophancy": value(rates.get("flip_unconditional")),
        "rate/anthropomorphic": value(rates.get("anthropomorphic")),
        "rate/refusal_harmful": None if harmful is None else 1 - harmful,
        "rate/refusal_benign": value(rates.get("over_refusal")),
        "rate/overconfident": value(rates.get("confident")),
        **{k: None for k in LAB_ONLY},
        **{f"eval/{k}": value(iv) for k, iv in mine.items()},
    }
    notes = {k: "a lab-world metric (the gold judge's 3H axes, the trigger word): not measured "
                "on real models" for k in LAB_ONLY}
    for k in LAB_METRICS:
        if metrics.get(k) is None and k not in notes:
            notes[k] = ("no --gold given" if k == "gold/utility" else "no --reward given"
                        if k == "reward/proxy" else "the probe battery was not run")
    if name == "reference":
        notes["kl/to_sft"] = "the reference's KL to itself"
    return {"role": ROLES[name], "metrics": metrics, "metric_notes": notes, "per_family": None}


def _samples(rows: list[dict], limit: int = 10) -> list[dict]:
    """Held-out prompts where the policy's proxy reward moved furthest from the reference's
    (first sample of each model per prompt); empty without a proxy reward."""
    first: dict[str, dict[int, dict]] = {"policy": {}, "reference": {}}
    for r in rows:
        first[r["model"]].setdefault(r["prompt_index"], r)
    out = []
    for i, p in first["policy"].items():
        ref = first["reference"].get(i)
        if ref is None or p.get("reward") is None or ref.get("reward") is None:
            continue
        gold = (None if p.get("gold") is None or ref.get("gold") is None
                else p["gold"] - ref["gold"])
        out.append({"prompt_id": str(p.get("prompt_id", i)), "prompt": p["prompt"]
                    if isinstance(p["prompt"], str) else json.dumps(p["prompt"]),
                    "family": None, "proxy_difference": p["reward"] - ref["reward"],
                    "gold_difference": gold,
                    **{side: {"response": s["response"], "reward_proxy": s["reward"],
                              "gold_utility": s.get("gold"), "gold": None}
                       for side, s in (("sft", ref), ("policy", p))}})
    return sorted(out, key=lambda s: -abs(s["proxy_difference"]))[:limit]


def eval_sections(run_dir: Path, records: dict) -> dict:
    """Report sections from RUN/eval/ (`records`: the run's ledger records by stage; the eval
    record's counts and options are quoted): failure_modes, models (policy and reference;
    the reference plays SFT's part in the lab's shapes: `samples[].sft`), samples, and the
    probe battery's full result."""
    m, probes, rows = _read(Path(run_dir))
    rec = records.get("eval") or {}
    return {"failure_modes": failure_modes(m, probes),
            "models": {name: _model_entry(name, m, probes) for name in ("policy", "reference")},
            "samples": _samples(rows),
            "probes": probes,
            "eval": {"counts": rec.get("counts", m["counts"]), "options": m["options"],
                     "kl_estimator": m["kl_estimator"], "sources": m["sources"],
                     "difference": m["difference"]},
            "notes": ({} if any(r.get("reward") is not None for r in rows) else
                      {"samples": "no --reward given: samples are ranked by the proxy "
                                  "reward's change, so none are listed"})}
