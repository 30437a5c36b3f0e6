"""The audit report on a small hand-written run directory (no training): the JSON contract and
its schema, byte-determinism, partial runs, the disclosure checklist, HTML, and sample order."""

import json
import shutil
from pathlib import Path

import jsonschema
import pytest

from rlxf.audit.disclosure import STATUSES
from rlxf.audit.report import CONTRACT_METRICS, SCHEMA_PATH, STAGE_ORDER, build_report, write_report
from rlxf.rundir import RunDir, atomic_write_json, write_jsonl
from rlxf.world.grammar import Response, render
from rlxf.world.kb import build_kb
from rlxf.world.prompts import all_prompts, split_prompts

WEIGHTS = {"helpful": 0.3, "harmless": 0.45, "honest": 0.25}
VERSIONS = {"python": "3.11.7", "rlxf": "0.1.0", "torch": "2.13.0+cpu", "transformers": "5.23.0"}
# Policy-minus-SFT proxy reward of the first held-out prompts' samples, and the order the report
# must rank them in (largest |difference| first, at most 8); a factual prompt answered truly by
# SFT, with a difference of 10, comes before them all.
PROXY_DIFFS = [0.1, -3.0, 2.0, 0.5, -0.2, 1.0, 4.0, -1.5, 0.3, 0.05]
EXPECTED_ORDER = [6, 1, 2, 7, 5, 3, 8]
CASPER_ITEMS = [  # Casper et al. (2023) section 5, in order
    ("Human feedback", "pretraining"), ("Human feedback", "evaluator selection and training"),
    ("Human feedback", "example selection"), ("Human feedback", "feedback types"),
    ("Human feedback", "quality assurance and inter-annotator agreement"),
    ("Reward model", "loss function and disagreement modelling"),
    ("Reward model", "reward model evaluation and red teaming"),
    ("Policy", "policy evaluation and red teaming"),
    ("Systemic safety", "internal and external audits"),
    ("Systemic safety", "expected risks and failure modes"),
    ("Systemic safety", "monitoring and correcting failures")]
CONFIG = """seed = 1

[feedback]
overlap = 3

[disclosure]
audits = "internal review by the lab <script>alert(1)</script> & no external audit"
"""


def _metrics(utility: float, **over) -> dict:
    m = {k: 0.5 for k in CONTRACT_METRICS if k != "rate/backdoor"}  # eval never writes it
    m.update({"gold/utility": utility, "world/parse_rate": 0.9, "rate/flattery": 0.1}, **over)
    return m


def _family(helpful, harmless, honest) -> dict:
    return {"n": 4, "helpful": helpful, "harmless": harmless, "honest": honest,
            "utility": WEIGHTS["helpful"] * helpful + WEIGHTS["harmless"] * harmless
            + WEIGHTS["honest"] * honest}


class FakeRun:
    """Writes the files the report reads, stage by stage, the way `rlxf run` commits them."""

    def __init__(self, root: Path):
        self.run = RunDir(root)
        self.kb = build_kb(4, 4, seed=1)
        self.train, self.heldout = split_prompts(all_prompts(self.kb), 1, 0.25)
        self.n = 0

    def commit(self, stage: str, files: dict, config: dict, counts: dict, metrics: dict):
        partial, _ = self.run.begin(stage, f"fp-{stage}")
        for name, content in files.items():
            if name.endswith(".jsonl"):
                write_jsonl(partial / name, content)
            else:
                atomic_write_json(partial / name, content)
        self.n += 1
        self.run.commit(stage, {
            "stage": stage, "fingerprint": f"fp-{stage}", "config": {"seed": 1, **config},
            "inputs": {}, "counts": counts, "metrics": metrics,
            "started": f"2026-01-01T00:00:{self.n:02d}+00:00", "wall_s": 1.5 * self.n,
            "versions": VERSIONS})

    def world(self):
        prompts = ([{"split": "train", "prompt": p.to_json()} for p in self.train]
                   + [{"split": "heldout", "prompt": p.to_json()} for p in self.heldout])
        self.commit("world", {"world.json": {"kb": self.kb.to_json(), "weights": WEIGHTS},
                              "prompts.jsonl": prompts},
                    {"world": {"weights": WEIGHTS}},
                    {"prompts/train": len(self.train), "prompts/heldout": len(self.heldout)}, {})

    def pretrain(self):
        corpus = {"description": "lab-world web conversations plus statements",
                  "documents": {"conversation/factual": 60, "fact_statement": 40}, "style": {}}
        self.commit("pretrain", {"corpus.json": corpus},
                    {"pretrain": {"model": {"architecture": "gpt2", "n_layer": 1, "n_embd": 32}}},
                    {"documents": 100, "parameters": 1234}, {"steps": 40, "loss/lm": 0.5})

    def sft(self):
        self.commit("sft", {"demonstrations.jsonl": []}, {"sft": {}}, {"demonstrations": 10},
                    {"steps": 30})

    def feedback(self):
        def group(name, count, weights):
            return [{"id": f"{name}-{i:03d}", "group": name, "name": name, "count": count,
                     "weights": weights, "temperature": 0.1, "careless": 0.0,
                     "length_bias": 0.05, "flattery_bias": 0.0, "confidence_bias": 0.0,
                     "agreement_bias": 0.0, "anthro_bias": 0.0, "refusal_bias": 0.0}
                    for i in range(count)]
        minority = {"helpful": 0.6, "harmless": 0.2, "honest": 0.2}
        annotators = group("crowd", 3, WEIGHTS) + group("minority", 2, minority)
        groups = {"crowd": {"n_judgements": 200, "n_annotators": 3, "agreement/raw": 0.7},
                  "minority": {"n_judgements": 100, "n_annotators": 2, "agreement/raw": 0.6}}
        self.commit("feedback", {"annotators.json": annotators, "feedback.jsonl": []},
                    {"feedback": {"overlap": 3, "temperature": 1.0, "source": "simulated",
                                  "n_comparisons": 100}},
                    {"comparisons": 100, "judgements": 300, "annotators": 5,
                     "dropped_identical_pairs": 7, "majority_ties": 0},
                    {"agreement/raw": 0.66, "agreement/krippendorff_alpha": 0.3,
                     "groups": groups})

    def reward(self):
        self.commit("reward", {}, {"reward": {}},
                    {"pairs/train": 85, "pairs/heldout": 15, "pairs/gold_comparable": 12},
                    {"accuracy/heldout": 0.6, "accuracy/gold": 0.55, "steps": 40})

    def policy(self):
        history = [{"step": s, "kl/to_sft": kl, "reward/proxy": rp, "gold/utility": g}
                   for s, kl, rp, g in [(0, 0.0, 0.1, 0.7), (20, 4.0, 0.6, 0.65),
                                        (40, 9.0, 0.9, 0.6)]]
        self.commit("policy", {"history.json": history},
                    {"policy": {"algorithm": "dpo", "beta": 0.1, "steps": 40}},
                    {"pairs": 100, "eval_prompts": 16, "eval_points": 3}, {"steps": 40})

    def eval(self):
        fams = {"base": {"harmful": _family(0.2, 0.9, 0.6)},
                "sft": {"harmful": _family(0.5, 0.8, 1.0), "factual": _family(0.6, 1.0, 0.7)},
                "policy": {"harmful": _family(0.8, 0.6, 1.0), "factual": _family(0.6, 1.0, 0.7)}}
        metrics = {"base": {"metrics": _metrics(0.5, **{"rate/refusal_benign": None}),
                            "per_family": fams["base"], "groups": {"crowd": 0.5}},
                   "sft": {"metrics": _metrics(0.7), "per_family": fams["sft"],
                           "groups": {"crowd": 0.7, "minority": 0.8}},
                   "policy": {"metrics": _metrics(0.6), "per_family": fams["policy"],
                              "groups": {"crowd": 0.6}}}
        samples = []
        for model in ("base", "sft", "policy"):
            for i, (p, diff) in enumerate(zip(self.others, PROXY_DIFFS)):
                proxy = {"base": -1.0, "sft": 0.0, "policy": diff}[model]
                samples.append({"model": model, "prompt_id": p.id, "family": p.family,
                                "prompt": p.text, "response": f"{model} answer {i}",
                                "reward_proxy": proxy, "logp": -1.0, "kl_to_sft": 0.0})
                if model == "policy":  # a second sample: the report takes the first only
                    samples.append({**samples[-1], "response": "later", "reward_proxy": 99.0})
        factual = self.factual_heldout()
        samples.append({"model": "sft", "prompt_id": factual.id, "family": "factual",
                        "prompt": factual.text, "response": self.true_answer(factual),
                        "reward_proxy": 0.0, "logp": -1.0, "kl_to_sft": 0.0})
        samples.append({**samples[-1], "model": "policy", "response": "i am not sure about that .",
                        "reward_proxy": 10.0})
        self.commit("eval", {"metrics.json": metrics, "samples.jsonl": samples},
                    {"eval": {"samples_per_prompt": 2, "temperature": 1.0}},
                    {"prompts": len(self.heldout), "samples": len(samples)},
                    {f"{m}/{k}": v for m, r in metrics.items() for k, v in r["metrics"].items()})

    def factual_heldout(self):
        return next(p for p in self.heldout if p.family == "factual")

    @property
    def others(self):
        """Held-out prompts that are not factual, for the PROXY_DIFFS samples."""
        return [p for p in self.heldout if p.family != "factual"][:len(PROXY_DIFFS)]

    def true_answer(self, p) -> str:
        return render(Response("answer", p.relation, p.subject, self.kb.truth(p.relation,
                                                                              p.subject)))


def make_run(root: Path, until: str = "eval", config: str = CONFIG) -> FakeRun:
    fake = FakeRun(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.toml").write_text(config)
    for stage in STAGE_ORDER:
        getattr(fake, stage)()
        if stage == until:
            break
    return fake


@pytest.fixture
def run_dir(tmp_path) -> Path:
    make_run(tmp_path / "r1")
    return tmp_path / "r1"


def validate(report: dict) -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(report)


def test_stage_order_is_the_pipelines():
    from rlxf.pipeline import STAGE_NAMES
    assert STAGE_ORDER == STAGE_NAMES


def test_full_report_validates_and_fills_the_contract(run_dir):
    report = build_report(run_dir)
    validate(report)
    run = report["run"]
    assert run["id"] == "r1" and run["seed"] == 1 and run["versions"] == VERSIONS
    assert run["created"] == "2026-01-01T00:00:01+00:00"
    assert run["wall_s"] == pytest.approx(1.5 * sum(range(1, 8)))
    assert len(run["config_sha256"]) == 64
    for name, role in (("base", "base"), ("sft", "sft"), ("policy", "policy")):
        m = report["models"][name]
        assert m["role"] == role and set(CONTRACT_METRICS) <= m["metrics"].keys()
        assert m["metrics"]["world/parse_rate"] == 0.9  # non-contract metrics are kept
        assert m["metric_notes"]["rate/backdoor"].startswith("feedback.trigger_rate is 0")
        for metric, value in m["metrics"].items():
            assert value is not None or metric in m["metric_notes"]
    assert "benign" in report["models"]["base"]["metric_notes"]["rate/refusal_benign"]
    assert report["feedback"]["n_judgements"] == 300 and report["feedback"]["n_annotators"] == 5
    assert report["reward_model"]["accuracy/gold"] == 0.55
    assert report["reward_model"]["bias/length"] is None
    assert "issue 5" in report["reward_model"]["notes"]["bias/length"]
    assert report["overoptimisation"]["points"][1] == {
        "step": 20, "kl": 4.0, "reward_proxy": 0.6, "reward_gold": 0.65}
    assert report["overoptimisation"]["fit"] is None
    assert [s["stage"] for s in report["stages"]] == list(STAGE_ORDER)


def test_groups_take_each_groups_own_utility_from_eval(run_dir):
    groups = build_report(run_dir)["groups"]
    assert groups["crowd"]["gold/utility_sft"] == 0.7
    assert groups["crowd"]["gold/utility_policy"] == 0.6
    assert groups["minority"]["gold/utility_sft"] == 0.8
    assert groups["minority"]["gold/utility_policy"] is None
    assert "did not score" in groups["minority"]["notes"]["gold/utility_policy"]
    assert groups["minority"]["n_annotators"] == 2
    assert groups["minority"]["weights"]["helpful"] == 0.6


def test_tradeoffs_name_the_axes_the_policy_traded(run_dir):
    tensions = build_report(run_dir)["tensions"]
    assert tensions["tradeoffs"] == ["harmful: harmless -0.20, helpful +0.30"]
    assert set(tensions["per_family"]["harmful"]) == {"base", "sft", "policy"}


def test_report_is_byte_deterministic_and_reads_only_the_run_dir(run_dir, tmp_path):
    first = {k: p.read_bytes() for k, p in write_report(run_dir).items()}
    second = {k: p.read_bytes() for k, p in write_report(run_dir).items()}
    assert first == second
    # The same run directory somewhere else gives the same bytes.
    moved = tmp_path / "elsewhere" / run_dir.name
    shutil.copytree(run_dir, moved)
    shutil.rmtree(moved / "report")
    assert {k: p.read_bytes() for k, p in write_report(moved).items()} == first
    assert json.loads(first["json"]) == build_report(run_dir)


@pytest.mark.parametrize("until", ["world", "feedback", "policy"])
def test_partial_run_reports_nulls_with_reasons(tmp_path, until):
    root = tmp_path / f"until-{until}"
    make_run(root, until=until)
    paths = write_report(root)
    report = json.loads(paths["json"].read_text())
    validate(report)
    for m in report["models"].values():
        assert all(v is None for v in m["metrics"].values())
        assert m["metric_notes"].keys() == m["metrics"].keys()
        assert "stage eval has not run" in m["metric_notes"]["gold/utility"]
    assert report["samples"] == [] and "samples" in report["notes"]
    by_item = {d["item"]: d for d in report["disclosure"]}
    policy_eval = by_item["policy evaluation and red teaming"]
    assert policy_eval["status"] == "not disclosed" and policy_eval["value"] is None
    assert policy_eval["reason"]
    if until == "world":
        assert report["feedback"]["n_judgements"] is None
        assert report["feedback"]["notes"]["n_judgements"] == "stage feedback has not run"
        assert report["reward_model"]["accuracy/heldout"] is None
        assert report["groups"] == {} and "groups" in report["notes"]
        assert by_item["pretraining"]["status"] == "not disclosed"
    if until != "policy":
        assert report["overoptimisation"]["points"] == []
        assert "<svg" not in paths["html"].read_text()
    assert [s["status"] for s in report["stages"]].count("done") == STAGE_ORDER.index(until) + 1


def test_disclosure_has_the_eleven_items_and_the_configs_answers(run_dir):
    items = build_report(run_dir)["disclosure"]
    assert [(d["section"], d["item"]) for d in items] == CASPER_ITEMS
    assert all(d["status"] in STATUSES for d in items)
    by_item = {d["item"]: d for d in items}
    audits = by_item["internal and external audits"]
    assert audits["status"] == "disclosed" and audits["value"].startswith("internal review")
    risks = by_item["expected risks and failure modes"]
    assert risks["status"] == "not disclosed" and risks["value"] is None
    assert "ties dropped: 0" in by_item["loss function and disagreement modelling"]["value"]
    assert "identical pairs dropped (7)" in by_item["example selection"]["value"]
    assert "minority x2" in by_item["evaluator selection and training"]["value"]
    rm_eval = by_item["reward model evaluation and red teaming"]
    assert "red teaming not performed" in rm_eval["value"] and rm_eval["status"] == "disclosed"
    for d in items:
        assert (d["value"] is None) == (d["status"] != "disclosed")


def test_html_is_self_contained_with_plot_sections_and_escaped_text(run_dir):
    paths = write_report(run_dir)
    page = paths["html"].read_text()
    assert "<svg" in page and '<meta name="viewport"' in page
    for heading in ("Models", "Feedback", "Reward model", "Over-optimisation",
                    "3H tensions per family", "Samples", "Disclosure (Casper et al. §5)"):
        assert f"<h2>{heading}</h2>" in page
    assert "<script" not in page and "&lt;script&gt;" in page  # config free text, escaped
    assert not any(ref in page for ref in ('src="http', 'href="http', "<link", "@import"))
    assert 'class="not-disclosed"' in page
    md = paths["md"].read_text()
    assert md.startswith("# rlxf audit report: r1")
    for heading in ("## Models", "## Over-optimisation", "## Disclosure"):
        assert heading in md


def test_samples_are_ordered_by_largest_proxy_difference(tmp_path):
    fake = make_run(tmp_path / "r")
    samples = build_report(tmp_path / "r")["samples"]
    expected = [fake.factual_heldout().id] + [fake.others[i].id for i in EXPECTED_ORDER]
    assert [s["prompt_id"] for s in samples] == expected
    diffs = [abs(s["proxy_difference"]) for s in samples]
    assert diffs == sorted(diffs, reverse=True)
    assert samples[1]["policy"]["reward_proxy"] == 4.0  # the first sample, not the later 99
    assert samples[1]["sft"]["response"] == "sft answer 6"


def test_samples_carry_the_gold_utility_of_each_response(tmp_path):
    fake = make_run(tmp_path / "r")
    top = build_report(tmp_path / "r")["samples"][0]
    assert top["sft"]["response"] == fake.true_answer(fake.factual_heldout())
    assert top["sft"]["gold_utility"] == pytest.approx(1.0)  # a true answer: (1, 1, 1)
    # a hedge to a factual question is (0.2, 1, 1) by the judge's table
    assert top["policy"]["gold_utility"] == pytest.approx(0.3 * 0.2 + 0.45 + 0.25)
    # placeholder text does not parse: (0, 1, 0.5)
    assert build_report(tmp_path / "r")["samples"][1]["sft"]["gold_utility"] == pytest.approx(
        0.45 + 0.125)
