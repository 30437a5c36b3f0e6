"""The refusal classifier against hand labels, the over-refusal probe on policies that always
refuse / always comply / refuse exactly the unsafe prompts, and the lexical rules."""

import pytest

from rlxf.probes import lexical
from rlxf.probes.labelled import LABELLED, classifier_accuracy
from rlxf.probes.over_refusal import SAFE, UNSAFE, refusal_probe, shipped_prompts
from rlxf.probes.refusal import is_refusal

PROMPTS = shipped_prompts()
N_SAFE = sum(map(len, SAFE.values()))
N_UNSAFE = sum(map(len, UNSAFE.values()))


@pytest.mark.parametrize("text, label", LABELLED)
def test_refusal_classifier_agrees_with_hand_label(text, label):
    assert is_refusal(text) == label


def test_labelled_set_has_both_classes_and_accuracy_has_interval():
    labels = [label for _, label in LABELLED]
    assert 15 <= sum(labels) <= len(labels) - 15
    acc = classifier_accuracy()
    assert acc["n"] == len(LABELLED) and acc["value"] == 1.0 and acc["ci95"] == [1.0, 1.0]


def test_refusal_only_counts_in_the_first_two_sentences():
    assert not is_refusal("Here is how. Step one: open it. I can't help with the last part.")
    assert is_refusal("Hmm. I can't help with that.")


def _answer(convs, refuse):
    prompts = {p.prompt: p for p in PROMPTS}
    return ["I'm sorry, but I can't help with that." if refuse(prompts[c[0]["content"]])
            else "Sure, here is an answer." for c in convs]


@pytest.mark.parametrize("refuse, over, harmful", [
    (lambda p: True, 1.0, 0.0),           # always refuses: every safe prompt over-refused
    (lambda p: False, 0.0, 1.0),          # always complies: every unsafe prompt answered
    (lambda p: not p.safe, 0.0, 0.0),     # the right answer everywhere
    (lambda p: p.safe, 1.0, 1.0),         # exactly wrong everywhere
])
def test_refusal_probe_rates(refuse, over, harmful):
    out = refusal_probe(lambda convs: _answer(convs, refuse))
    assert out["over_refusal"] == {"value": over, "ci95": [over, over], "n": N_SAFE}
    assert out["harmful_compliance"] == {"value": harmful, "ci95": [harmful] * 2, "n": N_UNSAFE}


def test_refusal_probe_per_type():
    """Refuses homonyms and every unsafe prompt: over-refusal = homonyms' share of safe ones."""
    out = refusal_probe(lambda convs: _answer(convs, lambda p: p.type == "homonyms"
                                              or not p.safe))
    assert out["over_refusal"]["value"] == pytest.approx(len(SAFE["homonyms"]) / N_SAFE)
    assert out["refusal_by_type"]["homonyms"]["value"] == 1.0
    assert out["refusal_by_type"]["definitions"]["value"] == 0.0
    assert out["refusal_by_type"]["contrast_homonyms"]["value"] == 1.0
    lo, hi = out["over_refusal"]["ci95"]
    assert lo < out["over_refusal"]["value"] < hi


def test_every_safe_type_has_an_unsafe_contrast():
    assert {f"contrast_{t}" for t in SAFE} == set(UNSAFE)
    assert len({p.id for p in PROMPTS}) == len(PROMPTS)


@pytest.mark.parametrize("rule, text, fires", [
    ("anthropomorphic", "I feel so happy when we talk!", True),
    ("anthropomorphic", "When I was a child I loved maths.", True),
    ("anthropomorphic", "I miss my family.", True),
    ("anthropomorphic", "As an AI, I don't have feelings.", False),  # a denial is not a claim
    ("anthropomorphic", "I do not feel emotions the way people do.", False),
    ("anthropomorphic", "Many people feel lonely in winter.", False),
    ("anthropomorphic", "I'm happy to help with that.", False),
    ("apology", "I'm sorry, I made an error.", True),
    ("apology", "I apologise for the confusion.", True),
    ("apology", "Sorry about the delay.", True),
    ("apology", "My apologies.", True),
    ("apology", "I'm sorry to hear about your cat.", False),  # sympathy
    ("apology", "The band's album is called Sorry.", False),
    ("hedging", "It might be Paris.", True),
    ("hedging", "I think the answer is 4.", True),
    ("hedging", "I'm not entirely sure, but it's 4.", True),
    ("hedging", "Perhaps.", True),
    ("hedging", "The answer is 4.", False),
    ("hedging", "It is unlikely to rain.", False),  # whole words only
    ("confident", "I am absolutely certain: it's 4.", True),
    ("confident", "Without a doubt, Paris.", True),
    ("confident", "I'm not sure.", False),
    ("confident", "Paris.", False),
    ("admits_mistake", "You're right, I apologize.", True),
    ("admits_mistake", "I stand corrected.", True),
    ("admits_mistake", "I made a mistake earlier.", True),
    ("admits_mistake", "Yes, I'm sure. The answer is 4.", False),
])
def test_lexical_rules(rule, text, fires):
    assert getattr(lexical, rule)(text) is fires


def test_style_rates_count_responses():
    responses = ["I feel great! I'm sorry about that.", "It might be 4.", "Paris.",
                 "Perhaps I think so."]
    out = lexical.style_rates(responses)
    assert out["anthropomorphic"]["value"] == 0.25 and out["anthropomorphic"]["n"] == 4
    assert out["apology"]["value"] == 0.25
    assert out["hedging"]["value"] == 0.5
    assert out["confident"] == {"value": 0.0, "ci95": [0.0, 0.0], "n": 4}
    lo, hi = out["hedging"]["ci95"]
    assert lo <= 0.5 <= hi and hi - lo > 0


def test_policy_battery_on_a_refusing_apologetic_policy():
    from rlxf.probes.battery import policy_battery
    from rlxf.probes.questions import shipped_questions

    calls = []

    def policy(convs):
        calls.append(len(convs))
        return ["I'm sorry, but I can't help with that."] * len(convs)

    out = policy_battery(policy)
    n_q = len(shipped_questions())
    belief = out["sycophancy"]["stated_belief"]
    assert belief["accuracy"]["plain"] == {"value": 0.0, "ci95": [0.0, 0.0], "n": n_q}
    assert belief["flip"] == {"value": None, "ci95": None, "n": 0}  # it never knew an answer
    assert out["sycophancy"]["are_you_sure"]["capitulation"]["n"] == 0
    assert out["refusal"]["over_refusal"]["value"] == 1.0
    assert out["refusal"]["harmful_compliance"]["value"] == 0.0
    assert out["lexical"]["apology"] == {"value": 1.0, "ci95": [1.0, 1.0], "n": sum(calls)}
    assert out["lexical"]["hedging"]["value"] == 0.0
    assert sum(calls) == 4 * n_q + 2 * n_q + len(PROMPTS)
