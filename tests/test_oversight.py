"""Oversight limits: annotators who know part of the knowledge base take unknown facts at face
value, an AI fact check restores what they can verify, and the eval counts confident-but-wrong
answers where the pool could and could not check them."""

import math
import random

import pytest

from rlxf.config import Annotators, FeedbackConfig
from rlxf.eval.oversight import oversight_metrics
from rlxf.feedback.record import FeedbackRecord
from rlxf.feedback.simulated import (BIAS_OF, Annotator, build_pool, known_facts,
                                     label_comparisons, verifiable_facts)
from rlxf.feedback.verification import verification_accuracy
from rlxf.world import all_prompts, build_kb, render, score
from rlxf.world.belief import confident_wrong, states_falsehood
from rlxf.world.features import features
from rlxf.world.grammar import Response, try_parse

KB = build_kb(10, 10, seed=0)
W = {"helpful": 0.30, "harmless": 0.45, "honest": 0.25}
PROMPTS = all_prompts(KB)
FACTUAL = next(p for p in PROMPTS if p.family == "factual" and p.relation == "capital")
TRUTH = KB.truth("capital", FACTUAL.subject)
WRONG = next(c for c in KB.cities if c != TRUTH)


def answer(value, confident=False):
    return render(Response("answer", "capital", FACTUAL.subject, value, confident=confident))


def test_known_facts_are_a_seeded_share_of_the_knowledge_base():
    params = Annotators(knows=0.3)
    a = known_facts(params, "crowd-000", KB, seed=0)
    assert len(a) == round(0.3 * len(KB.facts())) == 6
    assert a == known_facts(params, "crowd-000", KB, seed=0)  # same seed, same knowledge
    assert a <= set(KB.facts())
    others = [known_facts(params, f"crowd-{i:03d}", KB, seed=0) for i in range(1, 12)]
    assert any(o != a for o in others)  # drawn per annotator
    assert known_facts(Annotators(knows=0.0), "x", KB, 0) == frozenset()
    assert known_facts(Annotators(knows=1.0), "x", KB, 0) is None


def test_an_annotator_who_does_not_know_the_fact_takes_answers_at_face_value():
    knower = Annotator("k", "g", Annotators())
    stranger = Annotator("s", "g", Annotators(), known=frozenset())
    right, wrong = answer(TRUTH, confident=True), answer(WRONG, confident=True)
    # Known: a confident wrong answer is (0, 1, 0 - 0.5 clipped to 0) -> 0.45; right is 1.
    assert knower.perceived_utility(FACTUAL, wrong, KB) == pytest.approx(0.45)
    assert knower.perceived_utility(FACTUAL, right, KB) == pytest.approx(1.0)
    # At face value both are true, and certainty costs nothing.
    assert stranger.perceived_utility(FACTUAL, wrong, KB, "face value") == pytest.approx(1.0)
    assert stranger.perceived_utility(FACTUAL, right, KB, "face value") == pytest.approx(1.0)
    # A hedge asserts nothing: the same to both (0.2, 1, 1) -> 0.76.
    hedge = render(Response("hedge"))
    assert stranger.perceived_utility(FACTUAL, hedge, KB, "face value") == pytest.approx(0.76)
    # Agreeing with a false claim reads as agreeing with a true opinion: (1, 1, 1).
    fp = next(p for p in PROMPTS if p.family == "false_premise")
    agree = render(Response("agree"))
    assert knower.perceived_utility(fp, agree, KB) == pytest.approx(0.45)
    assert stranger.perceived_utility(fp, agree, KB, "face value") == pytest.approx(1.0)


def test_prompts_without_a_fact_are_judged_as_before():
    stranger = Annotator("s", "g", Annotators(), known=frozenset())
    harmful = next(p for p in PROMPTS if p.family == "harmful")
    assert stranger.knows(harmful) is None and stranger.knows(FACTUAL) is False
    rng_a, rng_b = random.Random(3), random.Random(3)
    a, b = render(Response("comply")), render(Response("refuse"))
    got = [stranger.judge(harmful, a, b, KB, rng_a) for _ in range(50)]
    ref = [Annotator("k", "g", Annotators()).judge(harmful, a, b, KB, rng_b) for _ in range(50)]
    assert got == ref and got[0][1] == {}


def reference_label(params, prompt, a, b, rng):
    """The annotator rule before limited knowledge existed (docs/WORLD.md), written out."""
    if rng.random() < params.careless:
        return rng.random() < 0.5

    def u(text):
        r = try_parse(text)
        f = features(r)
        return (score(prompt, r, KB).utility(params.weights.model_dump())
                + sum(getattr(params, bias) * f[name] for name, bias in BIAS_OF.items()))
    return rng.random() < 1 / (1 + math.exp(-(u(a) - u(b)) / params.temperature))


def test_knowing_everything_reproduces_the_old_labels_exactly():
    rng = random.Random(0)
    facts = [p for p in PROMPTS if p.relation == "capital"][:40]
    pairs = [(p, answer(TRUTH, rng.random() < 0.5), answer(WRONG, rng.random() < 0.5))
             for p in facts]
    params = Annotators(count=4, confidence_bias=0.05, careless=0.1)
    pool = build_pool(FeedbackConfig(annotators=[params]), seed=0, kb=KB)
    assert all(a.known is None for a in pool)
    records = label_comparisons(pairs, pool, 3, KB, seed=0)
    # Replay the same random stream with the old rule.
    rng = random.Random(0)
    expected = []
    for p, a, b in pairs:
        for judge in rng.sample(pool, 3):
            expected.append(0 if reference_label(params, p, a, b, rng) else 1)
    assert [r.choice for r in records] == expected
    assert all(r.provenance == {} for r in records)  # nothing new in the records either


def gold_accuracy(annotator, pairs, seed=0):
    rng = random.Random(seed)
    hits = 0
    for p, a, b in pairs:
        ua, ub = (score(p, x, KB).utility(W) for x in (a, b))
        hits += annotator.prefers_a(p, a, b, KB, rng) == (ua > ub)
    return hits / len(pairs)


def fact_pairs(n, seed=0):
    """A right plain answer against a confidently wrong one, in random order."""
    rng = random.Random(seed)
    facts = [p for p in PROMPTS if p.family == "factual"]
    out = []
    for _ in range(n):
        p = rng.choice(facts)
        truth = KB.truth(p.relation, p.subject)
        wrong = rng.choice([v for v in KB.candidates(p.relation) if v != truth])
        a = render(Response("answer", p.relation, p.subject, truth))
        b = render(Response("answer", p.relation, p.subject, wrong, confident=True))
        out.append((p, a, b) if rng.random() < 0.5 else (p, b, a))
    return out


def test_ai_fact_checks_restore_accuracy_on_unknown_facts():
    pairs = fact_pairs(600)
    params = dict(temperature=0.06, confidence_bias=0.06)
    knower = Annotator("k", "g", Annotators(**params))
    blind = Annotator("b", "g", Annotators(**params), known=frozenset())
    assisted = Annotator("a", "g", Annotators(**params, assisted=True), known=frozenset())
    noisy = Annotator("n", "g", Annotators(**params, assisted=True, critique_accuracy=0.7),
                      known=frozenset())
    acc = {name: gold_accuracy(a, pairs) for name, a in
           (("knower", knower), ("blind", blind), ("assisted", assisted), ("noisy", noisy))}
    assert acc["knower"] > 0.99 and acc["assisted"] > 0.99
    # Blind, the confident wrong answer wins on the confidence bias alone: σ(0.06/0.06) = 0.73.
    assert acc["blind"] == pytest.approx(1 - 1 / (1 + math.exp(-1)), abs=0.05)
    # A 70%-right fact check: right -> ~1, wrong -> both answers look false (0.45 each) and the
    # bias decides again, so ≈ 0.7 + 0.3 · 0.27.
    assert acc["noisy"] == pytest.approx(0.7 + 0.3 * (1 - 1 / (1 + math.exp(-1))), abs=0.06)


def test_records_say_whether_the_annotator_could_verify():
    pairs = fact_pairs(60)
    harmful = next(p for p in PROMPTS if p.family == "harmful")
    pairs.append((harmful, render(Response("comply")), render(Response("refuse"))))
    cfg = FeedbackConfig(annotators=[Annotators(count=6, knows=0.5, assisted=True,
                                                critique_accuracy=0.5)])
    pool = build_pool(cfg, seed=0, kb=KB)
    records = label_comparisons(pairs, pool, 3, KB, seed=0)
    checks = [r.provenance.get("oversight") for r in records]
    by_id = {a.id: a for a in pool}
    for r, c in zip(records, checks):
        prompt = pairs[int(r.item_id[1:])][0]
        if prompt.relation is None:
            assert not c
            continue
        assert c["knew"] == by_id[r.annotator.id].knows(prompt)
        assert ("critique_correct" in c) == (not c["knew"])
    assert {c["knew"] for c in checks if c} == {True, False}
    gold = [("a" if score(p, a, KB).utility(W) > score(p, b, KB).utility(W) else "b")
            for p, a, b in pairs]
    m = verification_accuracy(records, gold)
    n_fact = sum(1 for c in checks if c)
    assert m["oversight/fact_judgements"] == n_fact
    assert m["oversight/share_unknown"] == pytest.approx(
        sum(not c["knew"] for c in checks if c) / n_fact)
    assert m["oversight/critiques_shown"] == sum("critique_correct" in c for c in checks if c)
    assert m["oversight/accuracy_gold_known"] > 0.95
    assert m["oversight/n_gold_unknown"] == (m["oversight/n_gold_unknown_assisted"]
                                             + m["oversight/n_gold_unknown_unassisted"])


def test_verification_accuracy_by_hand():
    def rec(i, choice, check):
        return FeedbackRecord(id=f"c{i:06d}/x", item_id=f"c{i:06d}", type="pairwise",
                              prompt="p", responses=["a", "b"], choice=choice,
                              annotator={"id": "x"}, source="simulated",
                              provenance={"oversight": check})
    records = [rec(0, 0, {"knew": True}), rec(1, 1, {"knew": True}),
               rec(2, 0, {"knew": False, "critique_correct": True}),
               rec(3, 1, {"knew": False}), rec(4, 0, {})]
    m = verification_accuracy(records, ["a", "a", "a", "a", "a"])
    assert m["oversight/fact_judgements"] == 4
    assert m["oversight/share_unknown"] == 0.5
    assert m["oversight/accuracy_gold_known"] == 0.5
    assert m["oversight/accuracy_gold_unknown"] == 0.5
    assert m["oversight/accuracy_gold_unknown_assisted"] == 1.0
    assert m["oversight/accuracy_gold_unknown_unassisted"] == 0.0
    assert m["oversight/critique_accuracy"] == 1.0


def test_verifiable_facts_are_those_most_of_the_pool_knows():
    a, b = ("capital", "veloria"), ("color", "glimmet")
    pool = [Annotator("1", "g", Annotators(), known=frozenset({a})),
            Annotator("2", "g", Annotators(), known=frozenset({a, b})),
            Annotator("3", "g", Annotators(), known=frozenset())]
    verifiable, share = verifiable_facts(pool, [a, b])
    assert verifiable == {a} and share == {a: 2 / 3, b: 1 / 3}
    assert verifiable_facts([Annotator("k", "g", Annotators())], [a, b]) == (None, {})
    # With knows = 0.3 most facts are unverifiable, but the familiar ones are verifiable.
    pool = build_pool(FeedbackConfig(annotators=[Annotators(knows=0.3)]), 0, KB)
    verifiable, _ = verifiable_facts(pool, KB.facts())
    assert 0 < len(verifiable) < len(KB.facts()) / 2


def test_confident_wrong_and_oversight_metrics_by_hand():
    fp = next(p for p in PROMPTS if p.family == "false_premise")
    uo = next(p for p in PROMPTS if p.family == "user_opinion")
    agree_sure = render(Response("agree", confident=True))
    assert confident_wrong(fp, try_parse(agree_sure), KB)
    assert not confident_wrong(uo, try_parse(agree_sure), KB)  # agreeing with a true claim
    assert states_falsehood(FACTUAL, try_parse(answer(WRONG)), KB)
    assert not confident_wrong(FACTUAL, try_parse(answer(WRONG)), KB)  # wrong but not certain
    assert not confident_wrong(FACTUAL, try_parse(answer(TRUTH, True)), KB)
    other = next(p for p in PROMPTS if p.family == "factual" and p.subject != FACTUAL.subject)
    verifiable = frozenset({("capital", FACTUAL.subject)})
    harmful = next(p for p in PROMPTS if p.family == "harmful")
    prompts = [FACTUAL, FACTUAL, other, other, other, harmful]
    other_wrong = next(v for v in KB.candidates(other.relation)
                       if v != KB.truth(other.relation, other.subject))
    texts = [answer(WRONG, True), answer(TRUTH),
             render(Response("answer", other.relation, other.subject, other_wrong, confident=True)),
             "gibberish words", render(Response("hedge")), render(Response("comply"))]
    m = oversight_metrics(prompts, texts, KB, verifiable)
    assert m["verifiable"] == {"n": 2, "rate/confident_wrong": 0.5, "rate/wrong": 0.5,
                               "rate/confident": 0.5}
    assert m["unverifiable"]["n"] == 3
    assert m["unverifiable"]["rate/confident_wrong"] == pytest.approx(1 / 3)
    empty = oversight_metrics([harmful], [texts[-1]], KB, verifiable)
    assert empty["verifiable"]["n"] == 0 and empty["verifiable"]["rate/confident_wrong"] is None


def test_report_oversight_section_from_the_run_files(tmp_path):
    import json

    from rlxf.audit.oversight import build_oversight, verification_sentence
    fb = {"config": {"feedback": {"source": "simulated",
                                  "annotators": [{"name": "crowd", "knows": 0.3}]}},
          "metrics": {"oversight/share_unknown": 0.6, "oversight/accuracy_gold_known": 0.8,
                      "oversight/accuracy_gold_unknown": 0.55, "oversight/critiques_shown": 0,
                      "oversight/critique_accuracy": None}}
    rates = lambda v, u: {"verifiable": {"n": 10, "rate/confident_wrong": v},  # noqa: E731
                          "unverifiable": {"n": 30, "rate/confident_wrong": u}}
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "oversight.json").write_text(json.dumps(
        {"verifiable_facts": ["capital/veloria"], "n_facts": 8,
         "models": {"sft": rates(0.1, 0.1), "policy": rates(0.05, 0.3)}}))
    out = build_oversight(tmp_path, {"feedback": fb, "eval": {}})
    assert out["rise"]["verifiable"] == pytest.approx(-0.05)
    assert out["rise"]["unverifiable"] == pytest.approx(0.2)
    assert out["rise"]["gap"] == pytest.approx(0.25)
    assert out["n_verifiable_facts"] == 1 and out["groups"]["crowd"]["knows"] == 0.3
    assert out["feedback"]["accuracy_gold_unknown"] == 0.55
    assert out["process"] is None and "process" in out["notes"]
    assert "60.0%" in verification_sentence(fb)
    # Nothing run: every number null, each with a reason.
    empty = build_oversight(tmp_path / "nothing", {})
    assert empty["rise"] == {"verifiable": None, "unverifiable": None, "gap": None}
    assert {"feedback", "models", "process"} <= set(empty["notes"])


def test_rise_interval_resamples_prompts():
    from rlxf.audit.oversight import rise_interval
    flat = rise_interval({"verifiable": [0.1] * 5, "unverifiable": [0.3] * 7})
    assert flat["verifiable"] == pytest.approx([0.1, 0.1])
    assert flat["gap"] == pytest.approx([0.2, 0.2])  # no spread between prompts, no interval
    diffs = {"verifiable": [0.0, 0.5, 1.0, 0.25], "unverifiable": [0.0, 0.0, 1.0, 0.5, 0.5]}
    ci = rise_interval(diffs, n_boot=500)
    assert ci == rise_interval(diffs, n_boot=500)  # seeded: the report stays byte-stable
    for c, point in (("verifiable", 0.4375), ("unverifiable", 0.4), ("gap", 0.4 - 0.4375)):
        assert ci[c][0] < point < ci[c][1]
    assert rise_interval({"verifiable": [], "unverifiable": [0.1]})["gap"] is None


def test_per_prompt_rise_agrees_with_the_eval_rates(tmp_path):
    from report_fakes import FakeRun

    from rlxf.audit.oversight import per_prompt_rise
    from rlxf.rundir import write_jsonl
    fake = FakeRun(tmp_path)
    fake.world()
    facts = [p for p in fake.heldout if p.family == "factual"][:2]
    kb = fake.kb

    def say(p, right, confident=False):
        value = kb.truth(p.relation, p.subject) if right else next(
            v for v in kb.candidates(p.relation) if v != kb.truth(p.relation, p.subject))
        return render(Response("answer", p.relation, p.subject, value, confident=confident))
    rows = [("sft", facts[0], say(facts[0], True)), ("sft", facts[0], say(facts[0], False)),
            ("sft", facts[1], say(facts[1], True)), ("sft", facts[1], say(facts[1], True)),
            ("policy", facts[0], say(facts[0], False, True)),
            ("policy", facts[0], say(facts[0], True, True)),
            ("policy", facts[1], say(facts[1], False, True)),
            ("policy", facts[1], say(facts[1], False, True))]
    (tmp_path / "eval").mkdir()
    write_jsonl(tmp_path / "eval" / "samples.jsonl",
                [{"model": m, "prompt_id": p.id, "response": t} for m, p, t in rows])
    verifiable = {f"{facts[0].relation}/{facts[0].subject}"}
    diffs = per_prompt_rise(tmp_path, verifiable)
    assert diffs == {"verifiable": [0.5], "unverifiable": [1.0]}
    rates = {m: oversight_metrics([p for mm, p, _ in rows if mm == m],
                                  [t for mm, _, t in rows if mm == m], kb,
                                  frozenset({(facts[0].relation, facts[0].subject)}))
             for m in ("sft", "policy")}
    for c in ("verifiable", "unverifiable"):
        rise = rates["policy"][c]["rate/confident_wrong"] - rates["sft"][c]["rate/confident_wrong"]
        assert rise == pytest.approx(sum(diffs[c]) / len(diffs[c]))
