"""Disclosure and cards say only what the run recorded: the feedback types and their counts, who
judged, where the responses came from, the reward model's loss with its real pair and ranking
counts, and what the policy was optimised on -- across source (simulated, AI judge, a file of
people's records) x feedback (pairwise, ratings, rankings, aspects). Each run is the report's
hand-written run directory (tests/report_fakes.py) with feedback facts computed by the feedback
stage's own function (rlxf.feedback.facts.record_facts) from real canonical records."""

import re

import pytest
from report_fakes import STAGE_ORDER, FakeRun

from rlxf.audit.cards import datasheet, model_card
from rlxf.audit.report import build_report
from rlxf.feedback.facts import record_facts
from rlxf.feedback.record import FeedbackRecord
from rlxf.rundir import RunDir

SOURCES = ("simulated", "ai", "human")
KINDS = ("pairwise", "ratings", "rankings", "aspects")
SFT_ORIGIN = "this run's SFT model (samples at temperature 1)"
DATASET = "nvidia/HelpSteer2"
# The case: 40% ratings and 20% rankings of 1250 records.
N_PAIRWISE, N_RATINGS, N_RANKINGS = 500, 500, 250


def feedback_records(source: str, kind: str, provenance: dict | None = None,
                     n_pairwise: int = N_PAIRWISE) -> list[FeedbackRecord]:
    prov = provenance if provenance is not None else (
        {"dataset": DATASET} if source == "human" else {})
    common = {"prompt": "what is the capital of a ?", "source": source, "provenance": prov}
    out = [FeedbackRecord(id=f"p{i}", item_id=f"c{i // 2}", type="pairwise",
                          responses=["x .", "y ."], choice=i % 2,
                          annotator={"id": f"a{i % 5}", "group": "crowd"}, **common)
           for i in range(n_pairwise)]
    if kind in ("ratings", "aspects"):
        scale = ({"helpful": 4, "harmless": 5, "honest": 3} if kind == "aspects"
                 else {"overall": 7})
        out += [FeedbackRecord(id=f"r{i}", item_id=f"c{i // 2}/{i % 2}", type="rating",
                               responses=["x ."], ratings=scale,
                               annotator={"id": f"a{i % 5}", "group": "crowd"}, **common)
                for i in range(N_RATINGS)]
    if kind == "rankings":
        out += [FeedbackRecord(id=f"k{i}", item_id=f"k{i}", type="ranking",
                               responses=["x .", "y .", "z ."], ranking=[2, 0, 1],
                               annotator={"id": f"a{i % 5}", "group": "crowd"}, **common)
                for i in range(N_RANKINGS)]
    return out


class FactsRun(FakeRun):
    """The fake run with the feedback, reward and policy records a run of `source` x `kind`
    commits (its recorded facts), and a policy trained by `algorithm`."""

    def __init__(self, root, source: str, kind: str, algorithm: str = "dpo",
                 records: list[FeedbackRecord] | None = None):
        super().__init__(root)
        self.source, self.kind, self.algorithm = source, kind, algorithm
        self.ai_judge = source == "ai"
        self.records = records if records is not None else feedback_records(source, kind)
        self.facts = record_facts(self.records, None if source == "human" else SFT_ORIGIN)

    def commit(self, stage, files, config, counts, metrics):
        if stage == "feedback":
            fb = {**config["feedback"], "source": self.source}
            if self.source == "human":  # what the pipeline records for a file of records
                fb.update(records="people.feedback.jsonl", records_sha256="ab" * 32,
                          overlap=3)
                files = {**files, "annotators.json": [
                    {"id": f"a{i}", "group": "crowd", "n_judgements": 100} for i in range(5)]}
            config = {"feedback": fb}
            counts = {**counts, "judgements": len(self.records), "annotators": 5}
            metrics = {**metrics, "records": self.facts}
        elif stage == "reward":
            counts = {"pairs/train": 212, "pairs/heldout": 38, "pairs/gold_comparable": 30,
                      **({"rankings/train": 221} if self.kind == "rankings" else {})}
            aspects = self.kind == "aspects"
            config = {"reward": {"aspects": aspects}}
            if aspects:
                metrics = {**metrics, "aspects": {a: {"pairs/train": n} for a, n in
                                                  (("helpful", 301), ("harmless", 122),
                                                   ("honest", 87))}}
        elif stage == "policy":
            config = {"policy": {"algorithm": self.algorithm, "beta": 0.1, "steps": 40,
                                 "reward": "mean", "ppo": {"kl_coef": 0.02}}}
            if self.algorithm == "ppo":
                counts = {"prompts": 96, "eval_prompts": 16, "eval_points": 3}
        super().commit(stage, files, config, counts, metrics)


def build(root, source: str, kind: str, algorithm: str = "dpo", **kw) -> tuple[dict, dict]:
    fake = FactsRun(root, source, kind, algorithm, **kw)
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.toml").write_text("seed = 1\n")
    for stage in STAGE_ORDER[:STAGE_ORDER.index("eval") + 1]:
        getattr(fake, stage)()
    return build_report(root), RunDir(root).latest()


def item(report: dict, name: str) -> dict:
    return next(d for d in report["disclosure"] if d["item"] == name)


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("kind", KINDS)
def test_disclosure_says_what_the_feedback_was(tmp_path, source, kind):
    report, records = build(tmp_path / "r", source, kind)
    types = item(report, "feedback types")["value"]
    ratings = N_RATINGS if kind in ("ratings", "aspects") else 0
    rankings = N_RANKINGS if kind == "rankings" else 0
    assert types.startswith(f"{N_PAIRWISE} pairwise preferences")
    if ratings:
        assert f"{ratings} ratings on " in types
        assert re.search(r"; no [^;]*ratings", types) is None
        assert ("harmless / helpful / honest" in types) == (kind == "aspects")
    else:
        assert re.search(r"; no [^;]*ratings", types)
    if rankings:
        assert f"{rankings} rankings of 3 responses each" in types
        assert re.search(r"; no [^;]*rankings", types) is None
    else:
        assert re.search(r"; no [^;]*rankings", types)
    assert "free-text critiques" in types.split("; no ")[1]  # none were given
    assert types.split("; no ")[1].startswith(  # absent types in the contract's order
        "rankings, " if not rankings else "ratings, " if not ratings else "binary")
    who = {"simulated": "simulated annotators", "ai": "an AI judge", "human": "people"}[source]
    assert f"judged by {who} ({N_PAIRWISE + ratings + rankings} records)" in types
    if source == "human":
        assert "people.feedback.jsonl (sha256 abababababab…)" in types

    loss = item(report, "loss function and disagreement modelling")["value"]
    if rankings:
        assert loss.startswith("Plackett–Luce loss") and "221 annotator rankings" in loss
        assert "212 pairs from the majority label" in loss and "Bradley–Terry pairwise" not in loss
    else:
        assert loss.startswith("Bradley–Terry pairwise loss") and "212 training pairs" in loss
    assert ("multi-head model" in loss) == (kind == "aspects")
    assert "helpful 301 / harmless 122 / honest 87" in loss or kind != "aspects"
    assert (f"{ratings} ratings were not used" in loss) == (kind == "ratings")

    examples = item(report, "example selection")
    evaluators = item(report, "evaluator selection and training")
    if source == "human":
        assert examples["value"].startswith(
            f"responses from the dataset {DATASET} ({N_PAIRWISE + ratings + rankings} of")
        assert "SFT" not in examples["value"]
        assert evaluators["status"] == "not disclosed"
        assert evaluators["reason"].startswith("5 pseudonymous annotators of pairwise items")
        assert f"judged by people ({N_PAIRWISE + ratings + rankings} records)" in \
            evaluators["reason"]
        assert "simulated" not in evaluators["reason"]
    else:
        assert examples["value"].startswith("pairs of SFT samples at temperature 1.0")
        assert evaluators["status"] == "disclosed"
        assert evaluators["value"].startswith(
            "simulated annotators, no people" if source == "simulated"
            else "an AI judge, no people")
    quality = item(report, "quality assurance and inter-annotator agreement")["value"]
    assert f"over {N_PAIRWISE} pairwise judgements" in quality

    sheet = datasheet(report, records["feedback"])
    rm_card = model_card(report, "reward", records["reward"], records)
    assert loss[:40] in rm_card  # the reward model's card says the same loss
    motivation = sheet.split("## Motivation\n\n")[1].split("\n")[0]
    assert motivation.startswith(f"{N_PAIRWISE} pairwise preferences")
    assert f"| ratings (records) | {ratings} |" in sheet
    assert f"| rankings (records) | {rankings} |" in sheet
    if source == "human":
        assert f"the dataset {DATASET}" in motivation and "SFT" not in motivation
        assert "simulated" not in sheet.lower()
        assert "run's SFT model" not in sheet
        assert "**How chosen and instructed.** Not disclosed — 5 pseudonymous" in sheet
        assert "The labels come from the records file, not from this run" in sheet
        assert "| minority-001 | sudo | 0.100 | 0.700 | 2.0e-09 | unknown |" in sheet
        assert "precision and recall are not measured" in sheet and "Precision 0" not in sheet
        assert "| overlap (judgements per comparison) | — |" in sheet
    else:
        assert SFT_ORIGIN in motivation
    if source == "simulated":
        assert "The annotators are simulated, not people" in sheet


def test_human_records_that_do_not_say_where_responses_came_from(tmp_path):
    """The issue's case: a human file whose records carry no provenance. Where the responses
    came from is then not disclosed -- not "the run's SFT model"."""
    records = feedback_records("human", "rankings", provenance={})
    report, recs = build(tmp_path / "r", "human", "rankings", records=records)
    examples = item(report, "example selection")
    assert examples["status"] == "not disclosed"
    assert examples["reason"] == "no record's provenance says where the responses came from"
    sheet = datasheet(report, recs["feedback"])
    assert "Where the judged responses came from is not disclosed: no record's provenance" in sheet
    assert "SFT" not in sheet.split("## Composition")[0]


def test_a_run_before_the_facts_were_recorded_says_not_disclosed(tmp_path):
    fake_root = tmp_path / "old"
    report, recs = build(fake_root, "simulated", "ratings")
    rec = dict(recs["feedback"], metrics={k: v for k, v in recs["feedback"]["metrics"].items()
                                          if k != "records"})
    from rlxf.audit.disclosure import build_disclosure
    old = {d["item"]: d for d in build_disclosure({**recs, "feedback": rec}, fake_root)}
    assert old["feedback types"]["status"] == "not disclosed"
    assert "did not record its record types" in old["feedback types"]["reason"]
    assert "no ratings" not in str(old)


def test_policy_card_says_what_the_policy_was_optimised_against(tmp_path):
    report, records = build(tmp_path / "ppo", "simulated", "pairwise", algorithm="ppo")
    card = model_card(report, "policy", records["policy"], records)
    assert ("PPO (KL coefficient 0.02, 40 steps) on samples of 96 training prompts, rewarded "
            "by the reward model's score") in card
    assert "the policy was optimised against the proxy" in card
    assert "majority-label preference pairs" not in card and "not optimised against" not in card
    report, records = build(tmp_path / "dpo", "human", "pairwise", algorithm="dpo")
    card = model_card(report, "policy", records["policy"], records)
    assert "DPO (beta 0.1, 40 steps) on 100 majority-label preference pairs" in card
    assert (f"People ({N_PAIRWISE} records), read from a file of people's judgements, "
            "people.feedback.jsonl") in card


def test_record_facts_count_every_type_source_and_origin():
    records = feedback_records("human", "aspects")
    records += [FeedbackRecord(id="e1", item_id="e1", type="critique", prompt="p",
                               responses=["x ."], critique="wrong capital", source="ai",
                               annotator={"id": "j"}, provenance={"app": "rlxf annotate",
                                                                  "project": "caps"})]
    facts = record_facts(records)
    assert facts["types"] == {"pairwise": N_PAIRWISE, "ranking": 0, "rating": N_RATINGS,
                              "binary": 0, "edit": 0, "critique": 1}
    assert facts["judged_by"] == {"human": N_PAIRWISE + N_RATINGS, "simulated": 0, "ai": 1}
    assert facts["responses_from"] == {f"the dataset {DATASET}": N_PAIRWISE + N_RATINGS,
                                       "the items of rlxf annotate project 'caps'": 1}
    assert facts["rating_aspects"] == ["harmless", "helpful", "honest"]
    assert record_facts(records, origin="here")["responses_from"] == {"here": len(records)}
