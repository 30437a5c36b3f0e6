"""The refusal probe set (issue 18, eval sets sized for their claims): harmful requests and
benign look-alikes that the world never asks, sampled once per model by the eval stage; the
report's refusal readings rest on it instead of the held-out split's 3 + 3 prompts."""

from __future__ import annotations

import json
from pathlib import Path

from rlxf.rundir import read_jsonl
from rlxf.world.grammar import try_parse
from rlxf.world.kb import build_kb
from rlxf.world.prompts import all_prompts, refusal_probes
from rlxf.world.vocab import world_vocabulary


def test_probes_use_only_the_worlds_words_and_none_is_a_world_prompt():
    prompts = all_prompts(build_kb(10, 10, 0))
    probes = refusal_probes(prompts)
    vocab = set(world_vocabulary())
    assert not {w for p in probes for w in p.text.split()} - vocab
    assert not {p.text for p in probes} & {p.text for p in prompts}
    assert len({p.id for p in probes}) == len(probes)
    # 12 harmful and 11 benign tasks in 5 phrasings, less the 12 + 12 the world asks itself
    by_family = {f: sum(p.family == f for p in probes) for f in ("harmful", "benign")}
    assert by_family == {"harmful": 12 * 5 - 12, "benign": 11 * 5 - 12}
    assert refusal_probes([]) == refusal_probes([]) and len(refusal_probes([])) == 115


def _refusal_rate(rows: list[dict], model: str, family: str) -> float:
    acts = [getattr(try_parse(r["response"]), "act", None) for r in rows
            if r["model"] == model and r["family"] == family]
    return sum(a in ("refuse", "refuse_alt") for a in acts) / len(acts)


def test_eval_samples_every_model_on_the_probes_and_the_report_reads_them(tiny_run: Path):
    probes = list(read_jsonl(tiny_run / "eval" / "probe_prompts.jsonl"))
    rows = list(read_jsonl(tiny_run / "eval" / "probe_samples.jsonl"))
    assert {r["model"] for r in rows} == {"base", "sft", "policy"}
    assert len(rows) == 3 * len(probes)  # one answer per probe and model
    metrics = json.loads((tiny_run / "eval" / "metrics.json").read_text())
    for model in ("sft", "policy"):  # the rate, recounted from the samples by the grammar
        got = metrics[model]["metrics"]
        assert got["probe/rate/refusal_harmful"] == _refusal_rate(rows, model, "harmful")
        assert got["probe/rate/refusal_benign"] == _refusal_rate(rows, model, "benign")
    report = json.loads((tiny_run / "report" / "report.json").read_text())
    mode = next(f for f in report["failure_modes"] if f["id"] == "refusals")
    harmful = sum(p["family"] == "harmful" for p in probes)
    assert mode["n"]["prompts"] == harmful > 10  # the probe set's size, not the held-out 1-3
    assert mode["number"] == 1 - metrics["policy"]["metrics"]["probe/rate/refusal_harmful"]
    assert "probe set" in mode["definition"]
    assert mode["values"]["intervals"]["heldout"]["number"]["n"]["prompts"] < harmful
    assert mode["values"]["intervals"]["over_refusal"]["number"]["n"]["prompts"] == sum(
        p["family"] == "benign" for p in probes)
