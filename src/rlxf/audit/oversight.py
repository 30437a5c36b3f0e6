"""The report's `oversight` section: could the evaluators check what they judged, and did the
policy learn to be confidently wrong where they could not (Casper et al. 3.1.2, 4.2)?

Read from feedback/_stage.json (the annotators' accuracy on facts they knew and did not know)
and eval/oversight.json (confident-wrong rates on verifiable and unverifiable held-out prompts).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from statistics import mean

from ..rundir import read_jsonl
from ..world.belief import confident_wrong, fact_of
from ..world.grammar import try_parse
from ..world.kb import KnowledgeBase
from ..world.prompts import Prompt
from .intervals import Bootstrap, Clusters, difference, ratio
from .process_bon import PER_PROMPT_FILE, process_clusters, process_intervals
from .uncertainty import prompt_n

CLASSES = ("verifiable", "unverifiable")
RATE = "rate/confident_wrong"
FEEDBACK_KEYS = ("share_unknown", "accuracy_gold_known", "accuracy_gold_unknown",
                 "accuracy_gold_unknown_assisted", "accuracy_gold_unknown_unassisted",
                 "critique_accuracy", "critiques_shown", "fact_judgements")


def _pool(fb_rec: dict | None) -> dict:
    groups = (fb_rec or {}).get("config", {}).get("feedback", {}).get("annotators", [])
    return {g.get("name", "crowd"): {"knows": g.get("knows", 1.0),
                                     "assisted": g.get("assisted", False),
                                     "critique_accuracy": g.get("critique_accuracy", 1.0)}
            for g in groups}


def _process(run_dir: Path, records: dict, notes: dict, dirs: list[Path]) -> dict | None:
    """Best-of-n with the outcome vs the process reward model (stage `process`): RUN's numbers,
    and `intervals` at the largest n pooled over the seeds (audit/process_bon.py)."""
    rec = records.get("process")
    if rec is None or not rec.get("counts", {}).get("responses"):
        notes["process"] = ("stage process has not run" if rec is None else
                            "[process] enabled is false: process supervision was not measured")
        return None
    data = json.loads((run_dir / "process" / "bon.json").read_text())
    n = max(int(k.rsplit("/n", 1)[1]) for k in data["bon"])
    intervals = process_intervals(process_clusters(dirs), n)
    if not intervals:
        notes["process.intervals"] = (f"no process/{PER_PROMPT_FILE} (a run from before it was "
                                      "written): no per-question numbers to draw from")
    return {**data, "counts": rec["counts"], "intervals": intervals or None}


N_BOOT = 2000  # bootstrap resamples of the held-out prompts for the rise's 95% interval


def per_prompt_rise(run_dir: Path, verifiable: set[str]) -> dict[str, list[float]]:
    """Per class, one number per held-out fact-bearing prompt: the policy's confident-but-wrong
    share of its samples minus SFT's (eval/samples.jsonl). With equal samples per prompt their
    mean is the rise; they are the unit a bootstrap resamples, since samples of one prompt are
    not independent."""
    d = run_dir / "world"
    kb = KnowledgeBase.from_json(json.loads((d / "world.json").read_text())["kb"])
    prompts = {p.id: p for p in (Prompt.from_json(row["prompt"])
                                 for row in read_jsonl(d / "prompts.jsonl"))}
    flags: dict[tuple[str, str], list[bool]] = {}
    for s in read_jsonl(run_dir / "eval" / "samples.jsonl"):
        p = prompts.get(s["prompt_id"])
        if s["model"] in ("sft", "policy") and p is not None and fact_of(p) is not None:
            flags.setdefault((s["model"], p.id), []).append(
                confident_wrong(p, try_parse(s["response"]), kb))
    out: dict[str, list[float]] = {c: [] for c in CLASSES}
    for pid in sorted({pid for _, pid in flags}):
        if ("sft", pid) in flags and ("policy", pid) in flags:
            c = "verifiable" if "/".join(fact_of(prompts[pid])) in verifiable else "unverifiable"
            out[c].append(mean(flags["policy", pid]) - mean(flags["sft", pid]))
    return out


def rise_interval(diffs: dict[str, list[float]], n_boot: int = N_BOOT, seed: int = 0
                  ) -> dict[str, list[float] | None]:
    """95% percentile-bootstrap intervals of the rise per class and of the gap, resampling
    prompts with replacement within each class (seeded: the report stays byte-stable)."""
    rng = random.Random(seed)
    draws: dict[str, list[float]] = {c: [] for c in (*CLASSES, "gap")}
    if not all(diffs.get(c) for c in CLASSES):
        return {c: None for c in draws}
    for _ in range(n_boot):
        rise = {c: mean(rng.choices(diffs[c], k=len(diffs[c]))) for c in CLASSES}
        for c in CLASSES:
            draws[c].append(rise[c])
        draws["gap"].append(rise["unverifiable"] - rise["verifiable"])
    lo, hi = int(0.025 * n_boot), int(0.975 * n_boot) - 1
    return {c: [sorted(v)[lo], sorted(v)[hi]] for c, v in draws.items()}


def rise_clusters(dirs: list[Path]) -> Clusters:
    """Per (seed, held-out fact-bearing prompt): its rise (per_prompt_rise) as additive columns
    CLASS/rise and CLASS/prompts, each seed's prompts classed by that seed's verifiable facts."""
    clusters = Clusters()
    for i, d in enumerate(dirs):
        path = d / "eval" / "oversight.json"
        if not (path.exists() and (d / "eval" / "samples.jsonl").exists()
                and (d / "world" / "world.json").exists()):
            continue
        facts = set(json.loads(path.read_text()).get("verifiable_facts") or ())
        for c, diffs in per_prompt_rise(d, facts).items():
            for x in diffs:
                clusters.add(i, {f"{c}/rise": x, f"{c}/prompts": 1.0})
    return clusters


def rise_intervals(clusters: Clusters) -> dict:
    """The rise per class and the gap (unverifiable − verifiable), each an interval pooled over
    the seeds (bootstrap over seeds, then prompts: rlxf.audit.intervals) with n; {} without
    clusters or without a prompt of each class."""
    m = clusters.matrix()
    n = {c: {"prompts": prompt_n(clusters, m, f"{c}/prompts")["prompts"]} for c in CLASSES}
    boot = Bootstrap.of(clusters)
    if boot is None or not all(v["prompts"] for v in n.values()):
        return {}
    rise = {c: ratio(f"{c}/rise", f"{c}/prompts") for c in CLASSES}
    out = {c: boot.interval(rise[c], change=True, n=n[c]) for c in CLASSES}
    out["gap"] = boot.interval(difference(rise["unverifiable"], rise["verifiable"]), change=True,
                               n={"prompts": sum(v["prompts"] for v in n.values())})
    return out


def build_oversight(run_dir: Path, records: dict, dirs: list[Path] | None = None) -> dict:
    """`dirs`: the run's seeds (pooled.seed_dirs), RUN first; just RUN when not given (the
    process intervals and `rise_intervals` pool them; the rest is RUN's)."""
    fb = records.get("feedback")
    notes: dict = {}
    process = _process(run_dir, records, notes, dirs or [run_dir])
    out: dict = {"process": process, "groups": _pool(fb), "feedback": dict.fromkeys(FEEDBACK_KEYS),
                 "models": {}, "rise": dict.fromkeys((*CLASSES, "gap")), "rise_ci95": None,
                 "rise_intervals": None,
                 "n_facts": None,
                 "n_verifiable_facts": None, "definition": (
                     "a held-out prompt is verifiable when more than half of the annotator pool "
                     "knows its fact; confident-but-wrong = a false value for that fact "
                     "(answer, correction, or agreement with a false claim) said with "
                     "\"i am absolutely certain\"; rise = policy minus SFT")}
    if fb is None:
        notes["feedback"] = "stage feedback has not run"
    elif fb["config"]["feedback"].get("source", "simulated") != "simulated":
        notes["feedback"] = ("feedback came from people or an AI judge: what they knew is not "
                             "recorded")
    elif "oversight/share_unknown" not in fb["metrics"]:
        notes["feedback"] = ("every annotator knew every fact and none was assisted (knows = 1): "
                             "they could verify every judgement")
    else:
        out["feedback"] = {k: fb["metrics"].get(f"oversight/{k}") for k in FEEDBACK_KEYS}
        for k, v in out["feedback"].items():
            if v is None:
                notes[f"feedback.{k}"] = ("no assisted annotator met an unknown fact"
                                          if "assisted" in k or "critique" in k else
                                          "no judgement of this kind had a gold difference")
    path = run_dir / "eval" / "oversight.json"
    if "eval" not in records or not path.exists():
        notes["models"] = ("stage eval has not run" if "eval" not in records else
                           "eval/oversight.json is missing: feedback was not simulated, so "
                           "which prompts the evaluators could verify is unknown")
        return {**out, "notes": notes}
    data = json.loads(path.read_text())
    out["n_facts"] = data.get("n_facts")
    facts = data.get("verifiable_facts")
    out["n_verifiable_facts"] = len(facts) if facts is not None else None
    out["models"] = data.get("models", {})
    sft, pol = out["models"].get("sft"), out["models"].get("policy")
    for c in CLASSES:
        a, b = (sft or {}).get(c, {}).get(RATE), (pol or {}).get(c, {}).get(RATE)
        out["rise"][c] = b - a if a is not None and b is not None else None
        if out["rise"][c] is None:
            notes[f"rise.{c}"] = (f"no held-out {c} fact-bearing prompt" if sft and not
                                  sft.get(c, {}).get("n") else "SFT or policy was not measured")
    if None not in (out["rise"]["verifiable"], out["rise"]["unverifiable"]):
        out["rise"]["gap"] = out["rise"]["unverifiable"] - out["rise"]["verifiable"]
        if (run_dir / "eval" / "samples.jsonl").exists() and "world" in records:
            diffs = per_prompt_rise(run_dir, set(facts or ()))
            out["rise_ci95"] = {**rise_interval(diffs), "n_boot": N_BOOT,
                                "n_prompts": {c: len(diffs[c]) for c in CLASSES}}
            out["rise_intervals"] = rise_intervals(rise_clusters(dirs or [run_dir])) or None
        else:
            notes["rise_ci95"] = "eval/samples.jsonl or the world is missing"
    else:
        notes["rise.gap"] = "needs the rise on both verifiable and unverifiable prompts"
    return {**out, "notes": notes}


def verification_sentence(fb_rec: dict) -> str:
    """For the disclosure checklist: whether the evaluators could verify what they judged."""
    m = fb_rec.get("metrics", {})
    if fb_rec.get("config", {}).get("feedback", {}).get("source", "simulated") != "simulated":
        return "whether evaluators could verify the facts they judged is not recorded"
    share = m.get("oversight/share_unknown")
    if share is None:
        return "every evaluator knew every fact at stake, so each judgement could be verified"
    assisted = m.get("oversight/critiques_shown") or 0
    acc = m.get("oversight/critique_accuracy")
    return (f"evaluators did not know the fact at stake in {share:.1%} of fact-bearing "
            f"judgements and could not verify them themselves; {assisted} judgements were "
            f"assisted by an AI fact check"
            + (f" that was right {acc:.1%} of the time" if acc is not None else ""))
