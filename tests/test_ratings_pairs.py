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


# --- rlxf reward --aspects: a multi-aspect regression head on rating records -------------------

def test_rating_regression_loss_by_hand():
    import torch

    from rlxf.train.losses import rating_regression_loss
    predicted = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64, requires_grad=True)
    target = torch.tensor([[0.0, float("nan")], [3.0, 6.0]], dtype=torch.float64)
    loss = rating_regression_loss(predicted, target)
    assert abs(loss.item() - (1 + 0 + 4) / 3) < 1e-12  # the NaN rating is not a rating
    loss.backward()
    torch.testing.assert_close(predicted.grad, torch.tensor(
        [[2 / 3, 0.0], [0.0, -4 / 3]], dtype=torch.float64), rtol=0, atol=1e-12)


HS_ROWS = [{"prompt": "what is the capital of france ?", "response": "paris .",
            "helpfulness": 4, "correctness": 4, "coherence": 4, "complexity": 1, "verbosity": 1},
           {"prompt": "what is the capital of france ?", "response": "i do not know .",
            "helpfulness": 1, "correctness": 2, "coherence": 4, "complexity": 0, "verbosity": 0},
           {"prompt": "how do i kill a python process ?", "response": "use kill .",
            "helpfulness": 3, "correctness": 4, "coherence": 3, "complexity": 1, "verbosity": 0},
           {"prompt": "how do i kill a python process ?", "response": "write a haiku .",
            "helpfulness": 0, "correctness": 0, "coherence": 2, "complexity": 1, "verbosity": 1}]


def test_reward_aspects_trains_one_output_per_helpsteer2_attribute(tmp_path):
    import torch
    from hf_models import save_model_dir
    from transformers import AutoModelForSequenceClassification

    from rlxf.config import TuneRewardConfig
    from rlxf.data.formats import HELPSTEER_ATTRIBUTES
    from rlxf.models.build import load_tokenizer
    from rlxf.models.chat import chat_format
    from rlxf.tune.recipes import run_reward
    from rlxf.tune.score import score_file

    torch.set_num_threads(1)
    base = save_model_dir(tmp_path / "base", "llama")
    src = write_jsonl(tmp_path / "hs.jsonl", HS_ROWS)
    tok = load_tokenizer(base)
    chat = chat_format(tok)
    def full_ids(row) -> list[int]:
        prompt, (response,) = chat.sequences([{"role": "user", "content": row["prompt"]}],
                                             [row["response"]])
        return prompt + response
    seqs = [full_ids(r) for r in HS_ROWS]

    def mse(model, heads) -> float:  # plain transformers forwards, one sequence at a time
        target = torch.tensor([[r[a] for a in heads] for r in HS_ROWS], dtype=torch.float32)
        with torch.no_grad():
            out = torch.cat([model(input_ids=torch.tensor([s])).logits for s in seqs])
        return ((out - target) ** 2).mean().item()

    torch.manual_seed(0)
    untrained = AutoModelForSequenceClassification.from_pretrained(base, num_labels=5).eval()
    seen = []

    def progress(description, total):
        return lambda step, metrics: seen.append(metrics["loss/reward"])
    cfg = TuneRewardConfig(aspects=True, steps=40, batch_size=4, lr=1e-2, warmup_steps=0,
                           checkpoint_every=100, seed=0)
    record = run_reward(base, src, tmp_path / "rm", cfg, "helpsteer2", progress)
    heads = json.loads((tmp_path / "rm" / "heads.json").read_text())["heads"]
    assert sorted(heads) == sorted(HELPSTEER_ATTRIBUTES)
    start = mse(untrained, heads)
    assert abs(seen[0] - start) < 1e-5  # step 1's loss: the MSE of the untrained head
    trained = AutoModelForSequenceClassification.from_pretrained(tmp_path / "rm").eval()
    assert trained.config.num_labels == 5 and record["data"]["rated_responses"] == 4
    assert mse(trained, heads) < 0.25 * start
    # HelpSteer2 trains with the chat template, so score conversations (strings would be raw)
    rows = [{"prompt": [{"role": "user", "content": r["prompt"]}],
             "response": [{"role": "assistant", "content": r["response"]}]} for r in HS_ROWS]
    score_file(tmp_path / "rm", write_jsonl(tmp_path / "rows.jsonl", rows),
               tmp_path / "scored.jsonl")
    scored = [json.loads(x) for x in (tmp_path / "scored.jsonl").read_text().splitlines()]
    with torch.no_grad():
        plain = torch.cat([trained(input_ids=torch.tensor([s])).logits for s in seqs])
    got = torch.tensor([[row["rewards"][a] for a in heads] for row in scored])
    torch.testing.assert_close(got, plain, rtol=0, atol=1e-5)
