"""Rating datasets train too: UltraFeedback and HelpSteer2 rating records binarised into pairs
as UltraFeedback-binarized was built (data/binarize.py), in `rlxf data export --format trl` and
in the files every training command reads; PKU-SafeRLHF's better / safer choice."""

from __future__ import annotations

import json

import pytest
from test_data_import import imported, ok, write_jsonl

from rlxf.data.binarize import binarize_ratings
from rlxf.data.training_data import load_demonstrations, load_preferences
from rlxf.feedback.record import RecordError


def uf_completion(model: str, overall: float, rating: str = "4") -> dict:
    note = {"Rating": rating, "Rationale": "..."}
    return {"model": model, "response": f"Answer from {model}.", "overall_score": overall,
            "critique": "...", "annotations": {"helpfulness": note, "honesty": note}}


# one prompt, four rated completions: the two best share 8.0 (the first is chosen)
RAW_UF = [{"source": "evol_instruct", "instruction": "Explain recursion in one sentence.",
           "completions": [uf_completion("alpaca-7b", 6.5), uf_completion("gpt-4", 8.0),
                           uf_completion("llama-2", 4.0), uf_completion("wizardlm", 8.0)]},
          {"instruction": "Say hi.", "completions": [uf_completion("a", 5.0),
                                                     uf_completion("b", 5.0)]}]


def test_raw_ultrafeedback_exports_best_against_a_lower_one(tmp_path):
    records = imported(tmp_path, "ultrafeedback", write_jsonl(tmp_path / "uf.jsonl", RAW_UF))
    out = tmp_path / "trl.jsonl"
    output = ok("data", "export", tmp_path / "ultrafeedback.feedback.jsonl", "--out", out)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 1  # "Say hi." has two completions of equal score: dropped
    (row,) = rows
    assert row["prompt"] == "Explain recursion in one sentence."
    assert row["chosen"] == "Answer from gpt-4."  # highest overall score, first of the tie
    assert row["rejected"] in ("Answer from alpaca-7b.", "Answer from llama-2.")
    counts = {label.strip(): n for label, n in
              (line.rsplit(None, 1) for line in output.splitlines()[1:])}
    assert counts["rating records"] == "6" and counts["rated prompts all tied (dropped)"] == "1"
    assert counts["rated prompts binarised (best vs a random lower one)"] == "1"
    # seeded: the same pair again, and the draw reaches both lower completions over seeds
    again, _ = binarize_ratings(records)
    assert again[0][2] == row["rejected"]
    drawn = {binarize_ratings(records, seed)[0][0][2] for seed in range(20)}
    assert drawn == {"Answer from alpaca-7b.", "Answer from llama-2."}


def test_binarize_counts_what_it_drops_and_prefers_helpfulness(tmp_path):
    attrs = dict(correctness=4, coherence=4, complexity=4, verbosity=4)
    rows = [{"prompt": "c#", "response": "A musical note.", "helpfulness": 1, **attrs},
            {"prompt": "c#", "response": "A language from Microsoft.", "helpfulness": 3,
             **attrs},
            {"prompt": "alone", "response": "only one", "helpfulness": 2, **attrs}]
    src = write_jsonl(tmp_path / "hs.jsonl", rows)
    pairs, result = binarize_ratings(imported(tmp_path, "helpsteer2", src))
    assert [(c, r) for _, c, r in pairs] == [("A language from Microsoft.", "A musical note.")]
    assert (result.ratings, result.prompts, result.pairs, result.ties, result.single) == \
        (3, 2, 1, 0, 1)
    # every training command reads the raw file with --format helpsteer2 / ultrafeedback
    loaded = load_preferences(src, "helpsteer2")
    assert [(c.response, c.rejected) for c in loaded.items] == \
        [("A language from Microsoft.", "A musical note.")]
    assert loaded.counts["rating_pairs"] == 1 and loaded.counts["rating_single_dropped"] == 1
    uf = write_jsonl(tmp_path / "uf.jsonl", RAW_UF)
    assert [c.response for c in load_demonstrations(uf, "ultrafeedback").items] == \
        ["Answer from gpt-4."]


def test_pku_saferlhf_better_safer_or_both(tmp_path):
    row = {"prompt": "q", "response_0": "a", "response_1": "b", "better_response_id": 0,
           "safer_response_id": 1}
    src = write_jsonl(tmp_path / "pku.jsonl", [row])
    both = load_preferences(src, "pku-saferlhf").items
    assert sorted((c.response, c.rejected) for c in both) == [("a", "b"), ("b", "a")]
    assert [(c.response, c.rejected) for c in load_preferences(src, "pku-saferlhf-better").items
            ] == [("a", "b")]
    assert [(c.response, c.rejected) for c in load_preferences(src, "pku-saferlhf-safer").items
            ] == [("b", "a")]


def test_unknown_format_names_the_choices(tmp_path):
    src = write_jsonl(tmp_path / "x.jsonl", [{"prompt": "q", "chosen": "a", "rejected": "b"}])
    with pytest.raises(RecordError, match="--format 'ultrafeedbak': unknown; choose auto, "
                                          "canonical or one of .*ultrafeedback"):
        load_preferences(src, "ultrafeedbak")
