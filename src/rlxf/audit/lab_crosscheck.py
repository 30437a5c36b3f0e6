"""Issue 16 item 5: does the real-model path measure what the lab measures? A lab run's policy
measured by `rlxf eval` (policy = RUN/policy/model, reference = RUN/sft/model, the run's
held-out prompts from `rlxf data prompts`, gold = `gold:RUN`) against the lab's own eval of the
same models on the same prompts: gold utility and KL(policy ‖ SFT), each with its 95% interval.

Like with like: the lab's KL is the Monte-Carlo Σ_t log π − log π_sft of its samples, so it is
compared with `rlxf eval`'s kl/sampled (the same estimator on its own samples); `rlxf eval`'s
Rao–Blackwellised kl/to_reference is shown beside it, and the lab's estimator applied to
`rlxf eval`'s samples (`lab_convention_kl`: the lab scores a truncated response with an <eos>
appended, which `rlxf eval` does not). The lab's gold interval is the report's
(report.json seeds.headline, a bootstrap over prompts); the lab's KL interval is
probes/stats.py's bootstrap over the per-prompt means of eval/samples.jsonl's kl_to_sft, the
same bootstrap `rlxf eval` uses. Two estimates agree when their intervals overlap.

    python -m rlxf.audit.lab_crosscheck LAB_RUN EVAL_RUN
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..probes.stats import estimate
from ..rundir import RunDir, read_jsonl

SETTINGS = ("samples_per_prompt", "temperature", "max_new_tokens")


def lab_settings(lab_run: Path) -> dict:
    """The lab eval's sampling settings (what `rlxf eval` must use to compare)."""
    rec = RunDir(lab_run).latest().get("eval")
    if rec is None:
        raise ValueError(f"{lab_run}: its eval stage has not finished")
    return {k: rec["config"]["eval"][k] for k in SETTINGS}


def _lab_kl(lab_run: Path) -> dict:
    by_prompt: dict[str, list[float]] = {}
    for s in read_jsonl(lab_run / "eval" / "samples.jsonl"):
        if s["model"] == "policy":
            by_prompt.setdefault(s["prompt_id"], []).append(s["kl_to_sft"])
    return estimate([sum(v) / len(v) for v in by_prompt.values()])


def _per_prompt(rows: list[dict], values: list[float]) -> list[float]:
    by_prompt: dict = {}
    for r, v in zip(rows, values):
        by_prompt.setdefault(r["prompt_index"], []).append(v)
    return [sum(v) / len(v) for v in by_prompt.values()]


def lab_convention_kl(lab_run: Path, eval_run: Path) -> dict:
    """The lab's KL estimator on `rlxf eval`'s own policy samples: each decoded response is
    re-encoded as words + <eos> (eval/measure.py), so a response cut at max_new_tokens is
    scored with an <eos> it never sampled; `rlxf eval` scores the sampled tokens only. The gap
    between this and kl/sampled on the same samples is what the convention alone changes."""
    from ..eval.measure import response_logprobs
    from ..models.build import load_causal_lm, load_tokenizer
    tok = load_tokenizer(RunDir(lab_run).stage_dir("world") / "tokenizer")
    rows = [r for r in read_jsonl(eval_run / "eval" / "samples.jsonl") if r["model"] == "policy"]
    prompts, texts = [r["prompt"] for r in rows], [r["response"] for r in rows]
    logp = response_logprobs(load_causal_lm(lab_run / "policy" / "model"), tok, prompts, texts)
    ref = response_logprobs(load_causal_lm(lab_run / "sft" / "model"), tok, prompts, texts)
    return _iv(estimate(_per_prompt(rows, [a - b for a, b in zip(logp, ref)])))


def overlap(a: dict, b: dict) -> bool | None:
    if a.get("ci95") is None or b.get("ci95") is None:
        return None
    return bool(a["ci95"][0] <= b["ci95"][1] and b["ci95"][0] <= a["ci95"][1])


def _pair(lab: dict, real: dict) -> dict:
    return {"lab": _iv(lab), "rlxf_eval": _iv(real), "overlap": overlap(lab, real),
            "difference": None if None in (lab.get("value"), real.get("value"))
            else real["value"] - lab["value"]}


def _iv(iv: dict) -> dict:
    n = iv.get("n")
    return {"value": iv.get("value"), "ci95": iv.get("ci95"),
            "n": n.get("prompts") if isinstance(n, dict) else n}


def crosscheck(lab_run: Path, eval_run: Path) -> dict:
    """{"gold_utility", "kl"}: each {lab, rlxf_eval, overlap, difference}, plus
    kl_rao_blackwell (rlxf eval's other estimator) and whether the settings matched."""
    report = json.loads((lab_run / "report" / "report.json").read_text())
    lab_gold = report["seeds"]["headline"]["gold/utility"]["number"]
    metrics = json.loads((eval_run / "eval" / "metrics.json").read_text())
    policy = metrics["models"]["policy"]
    if "gold/score" not in policy:
        raise ValueError(f"{eval_run}: measured without --gold (give --gold gold:{lab_run})")
    settings = lab_settings(lab_run)
    mine = {k: metrics["options"][k] for k in SETTINGS}
    return {"gold_utility": _pair(lab_gold, policy["gold/score"]),
            "kl": _pair(_lab_kl(lab_run), policy["kl/sampled"]),
            "kl_rao_blackwell": _iv(policy["kl/to_reference"]),
            "kl_lab_convention_on_rlxf_eval_samples": lab_convention_kl(lab_run, eval_run),
            "settings": {"lab": settings, "rlxf_eval": mine, "same": settings == mine}}


def main(argv: list[str]) -> int:
    from .. import quiet
    quiet.quiet_environment()  # rlxf's output only: no library progress bars
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    out = crosscheck(Path(argv[0]), Path(argv[1]))
    print(json.dumps(out, indent=2))
    return 0 if out["settings"]["same"] and out["gold_utility"]["overlap"] is not False \
        and out["kl"]["overlap"] is not False else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
