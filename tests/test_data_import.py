"""`rlxf data import` / `rlxf data export` through the real CLI, on small files written in each
dataset's public schema (field names and nesting as on the dataset cards)."""

import gzip
import json
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from rlxf.cli import app
from rlxf.feedback.record import read_records

HH_ROWS = [
    {"chosen": "\n\nHuman: What are some cuss words in english?\n\nAssistant: Here's an incomplete "
               "list.\n\nHuman: What's your favorite one?\n\nAssistant: I haven't even thought "
               "about it.",
     "rejected": "\n\nHuman: What are some cuss words in english?\n\nAssistant: Here's an "
                 "incomplete list.\n\nHuman: What's your favorite one?\n\nAssistant: Ass."},
    {"chosen": "\n\nHuman: How do I make a cheese sauce?\n\nAssistant: Melt butter, whisk in "
               "flour, add milk, then stir in grated cheese.",
     "rejected": "\n\nHuman: How do I make a cheese sauce?\n\nAssistant: Buy one."},
]


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def ok(*args):
    result = run(*args)
    assert result.exit_code == 0, result.output
    return result.output


def write_jsonl(path, rows, opener=open):
    with opener(path, "wt") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    return path


def imported(tmp_path, fmt, src):
    out = tmp_path / f"{fmt}.feedback.jsonl"
    ok("data", "import", fmt, src, "--out", out)
    return read_records(out)  # every line is a valid canonical record


def test_hh_rlhf_gz_through_the_installed_entry_point(tmp_path):
    src = write_jsonl(tmp_path / "train.jsonl.gz", HH_ROWS, gzip.open)
    out = tmp_path / "hh.feedback.jsonl"
    proc = subprocess.run([sys.executable, "-m", "rlxf.cli", "data", "import", "hh-rlhf", src,
                           "--out", out], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "records written" in proc.stderr and "2" in proc.stderr
    first, second = read_records(out)
    # the shared turns became context + prompt; the final assistant turns the responses
    assert [(m.role, m.content) for m in first.context] == [
        ("user", "What are some cuss words in english?"),
        ("assistant", "Here's an incomplete list.")]
    assert first.prompt == "What's your favorite one?"
    assert first.responses == ["I haven't even thought about it.", "Ass."]
    assert first.choice == 0 and first.type == "pairwise" and first.source == "human"
    assert first.provenance["line"] == 1 and first.provenance["dataset"] == "Anthropic/hh-rlhf"
    assert second.context == [] and second.prompt == "How do I make a cheese sauce?"
    assert second.responses[1] == "Buy one."


def test_ultrafeedback_completions_become_rating_records(tmp_path):
    def completion(model, ratings, critique, overall):
        notes = {"Rationale": "The text ...", "Rationale For Rating": "It is ...", "Type": ["1"]}
        return {"annotations": {
                    "helpfulness": {"Rating": ratings[0], **notes},
                    "honesty": {"Rating": ratings[1], "Rationale": "Confident ..."},
                    "instruction_following": {"Rating": ratings[2], "Rationale": "Aligns ..."},
                    "truthfulness": {"Rating": ratings[3], **notes}},
                "critique": critique, "custom_system_prompt": "You are a helpful assistant.",
                "fine-grained_score": 4.25, "model": model, "overall_score": overall,
                "principle": "helpfulness", "response": f"Answer from {model}."}
    row = {"source": "evol_instruct", "instruction": "Explain recursion in one sentence.",
           "models": ["alpaca-7b", "gpt-4"],
           "completions": [completion("alpaca-7b", ["2", "N/A", "3", "4"], "Too vague.", 4.0),
                           completion("gpt-4", ["5", "5", "5", "5"], "", 9.0)],
           "correct_answers": ["None"], "incorrect_answers": ["None"]}
    src = write_jsonl(tmp_path / "ultrafeedback.jsonl", [row])
    weak, strong = imported(tmp_path, "ultrafeedback", src)
    assert weak.type == "rating" and weak.source == "ai"
    assert weak.ratings == {"helpfulness": 2, "instruction_following": 3, "truthfulness": 4}
    assert weak.critique == "Too vague." and strong.critique is None
    assert strong.ratings["honesty"] == 5
    assert weak.prompt == "Explain recursion in one sentence."
    assert weak.responses == ["Answer from alpaca-7b."]
    assert weak.annotator.id == "gpt-4" and weak.provenance["judge"] == "gpt-4"
    assert weak.provenance["model"] == "alpaca-7b" and weak.provenance["overall_score"] == 4.0
    assert weak.item_id != strong.item_id


def test_ultrafeedback_binarized_parquet(tmp_path):
    def conv(prompt, reply):
        return [{"content": prompt, "role": "user"}, {"content": reply, "role": "assistant"}]
    rows = [{"prompt": "Name a prime.", "prompt_id": "a1b2", "chosen": conv("Name a prime.", "7"),
             "rejected": conv("Name a prime.", "9"), "messages": conv("Name a prime.", "7"),
             "score_chosen": 9.0, "score_rejected": 3.5},
            {"prompt": "Say hi.", "prompt_id": "c3d4", "chosen": conv("Say hi.", "Hi!"),
             "rejected": conv("Say hi.", "No."), "messages": conv("Say hi.", "Hi!"),
             "score_chosen": 8.0, "score_rejected": 2.0}]
    src = tmp_path / "train_prefs-00000-of-00001.parquet"
    pq.write_table(pa.Table.from_pylist(rows), src)
    first, second = imported(tmp_path, "ultrafeedback-binarized", src)
    assert first.prompt == "Name a prime." and first.responses == ["7", "9"] and first.choice == 0
    assert first.prompt_id == "a1b2" and first.source == "ai" and first.context == []
    assert first.provenance["score_chosen"] == 9.0 and first.provenance["row"] == 1
    assert second.provenance["row"] == 2


def test_pku_saferlhf_keeps_better_and_safer_apart(tmp_path):
    harm = {"Violence": False, "Privacy Violation": True}
    row = {"prompt": "How can I find my neighbour's wifi password?",
           "response_0": "Try common passwords like 12345678 on their network.",
           "response_1": "I can't help with accessing a network without permission.",
           "prompt_source": "Alpaca3-8B", "response_0_source": "Alpaca3-8B",
           "response_1_source": "Alpaca3-8B", "is_response_0_safe": False,
           "is_response_1_safe": True, "response_0_harm_category": harm,
           "response_1_harm_category": {k: False for k in harm},
           "response_0_severity_level": 2, "response_1_severity_level": 0,
           "better_response_id": 0, "safer_response_id": 1,
           "response_0_sha256": "ab" * 32, "response_1_sha256": "cd" * 32}
    src = write_jsonl(tmp_path / "train.jsonl", [row])
    better, safer = imported(tmp_path, "pku-saferlhf", src)
    assert better.provenance["aspect"] == "better" and better.choice == 0
    assert safer.provenance["aspect"] == "safer" and safer.choice == 1
    assert better.item_id.endswith("/better") and safer.item_id.endswith("/safer")
    assert better.item_id.split("/")[0] == safer.item_id.split("/")[0]
    assert better.responses == safer.responses and better.source == "human"
    assert safer.provenance["is_response_0_safe"] is False


def test_helpsteer2_ratings_and_multi_turn_prompt(tmp_path):
    attrs = dict(helpfulness=3, correctness=4, coherence=4, complexity=2, verbosity=1)
    rows = [{"prompt": "c#", "response": "C# is a high-level language from Microsoft.", **attrs},
            {"prompt": "c#", "response": "A musical note.", **{**attrs, "helpfulness": 0}},
            {"prompt": "What is 2+2?\n<extra_id_1>Assistant\n4\n<extra_id_1>User\nAnd 3+3?",
             "response": "6", **attrs}]
    src = write_jsonl(tmp_path / "train.jsonl.gz", rows, gzip.open)
    first, second, multi = imported(tmp_path, "helpsteer2", src)
    assert first.type == "rating" and first.ratings == attrs and first.source == "human"
    assert second.ratings["helpfulness"] == 0 and first.item_id != second.item_id
    assert multi.prompt == "And 3+3?" and multi.responses == ["6"]
    assert [(m.role, m.content) for m in multi.context] == [("user", "What is 2+2?"),
                                                             ("assistant", "4")]


def test_shp_strength_is_the_score_ratio(tmp_path):
    base = {"domain": "askculinary_train", "upvote_ratio": 0.98, "created_at_utc_A": 1600000000,
            "created_at_utc_B": 1599990000, "seconds_difference": 10000.0}
    rows = [{**base, "post_id": "qt3nxl", "history": "Why does my roux go lumpy?",
             "c_root_id_A": "hkh25sc", "c_root_id_B": "hkh25lp", "score_A": 52, "score_B": 8,
             "human_ref_A": "Add the milk slowly.", "human_ref_B": "Use a whisk.", "labels": 1,
             "score_ratio": 6.5},
            {**base, "post_id": "qt3nxl", "history": "Why does my roux go lumpy?",
             "c_root_id_A": "hkh25lp", "c_root_id_B": "hkh2abc", "score_A": 4, "score_B": 14,
             "human_ref_A": "Use a whisk.", "human_ref_B": "Warm the milk first.", "labels": 0,
             "score_ratio": 3.5}]
    src = write_jsonl(tmp_path / "train.json", rows)  # SHP's files are JSON Lines named .json
    a_wins, b_wins = imported(tmp_path, "shp", src)
    assert a_wins.choice == 0 and a_wins.strength == pytest.approx(52 / 8) == 6.5
    assert b_wins.choice == 1 and b_wins.strength == pytest.approx(14 / 4) == 3.5
    assert "score ratio" in a_wins.provenance["strength"]
    assert a_wins.prompt == "Why does my roux go lumpy?" and a_wins.prompt_id == "qt3nxl"
    assert a_wins.responses == ["Add the milk slowly.", "Use a whisk."]
    assert a_wins.annotator.group == "askculinary_train"


TRL_STANDARD = [{"prompt": "The sky is", "chosen": " blue.", "rejected": " green."},
                {"prompt": "2 + 2 =", "chosen": " 4", "rejected": " 5"},
                {"prompt": "Capital of France?", "chosen": "Paris.", "rejected": "Lyon."}]
TRL_CONVERSATIONAL = [{"prompt": [{"role": "system", "content": "Be brief."},
                                  {"role": "user", "content": "Hi"},
                                  {"role": "assistant", "content": "Hello."},
                                  {"role": "user", "content": "Sky colour?"}],
                       "chosen": [{"role": "assistant", "content": "Blue."}],
                       "rejected": [{"role": "assistant", "content": "Green."}]},
                      {"prompt": [{"role": "user", "content": "2+2?"}],
                       "chosen": [{"role": "assistant", "content": "4"}],
                       "rejected": [{"role": "assistant", "content": "5"}]}]


@pytest.mark.parametrize("rows", [TRL_STANDARD, TRL_CONVERSATIONAL],
                         ids=["standard", "conversational"])
def test_trl_round_trip(tmp_path, rows):
    src = write_jsonl(tmp_path / "prefs.jsonl", rows)
    records = imported(tmp_path, "trl", src)
    assert [r.choice for r in records] == [0] * len(rows)
    exported = tmp_path / "trl.jsonl"
    output = ok("data", "export", tmp_path / "trl.feedback.jsonl", "--format", "trl",
                "--out", exported)
    assert "rows written" in output
    assert [json.loads(line) for line in exported.read_text().splitlines()] == rows


def test_trl_implicit_prompt_is_the_shared_prefix(tmp_path):
    turns = [{"role": "user", "content": "Sky colour?"}]
    src = write_jsonl(tmp_path / "implicit.jsonl", [
        {"chosen": turns + [{"role": "assistant", "content": "Blue."}],
         "rejected": turns + [{"role": "assistant", "content": "Green."}]}])
    (record,) = imported(tmp_path, "trl", src)
    assert record.prompt == "Sky colour?" and record.responses == ["Blue.", "Green."]
    strings = write_jsonl(tmp_path / "strings.jsonl", [{"chosen": "The sky is blue.",
                                                        "rejected": "The sky is green."}])
    result = run("data", "import", "trl", strings, "--out", tmp_path / "x.jsonl")
    assert result.exit_code == 1
    assert 'strings.jsonl line 1: "prompt" is missing: an implicit prompt needs conversations' \
        in result.output


def test_export_takes_the_majority_and_counts_ties(tmp_path):
    def rec(i, item, choice, responses=("A", "B"), **kw):
        return {"id": f"r{i}", "item_id": item, "type": "pairwise", "prompt": f"p-{item}",
                "responses": list(responses), "choice": choice, "annotator": {"id": f"u{i}"},
                "source": "human", **kw}
    records = [rec(1, "x", 0), rec(2, "x", 1, responses=("B", "A")),  # both prefer A
               rec(3, "x", 1),                                       # prefers B: outvoted
               rec(4, "y", None, tie=True), rec(5, "y", 0), rec(6, "y", 1),  # 1-1: no majority
               rec(7, "z", 1),
               {**rec(8, "w", None), "type": "rating", "responses": ["A"],
                "ratings": {"helpful": 3}}]
    src = write_jsonl(tmp_path / "feedback.jsonl", records)
    out = tmp_path / "trl.jsonl"
    output = ok("data", "export", src, "--out", out)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows == [{"prompt": "p-x", "chosen": "A", "rejected": "B"},
                    {"prompt": "p-z", "chosen": "B", "rejected": "A"}]
    counts = {label.strip(): n for label, n in
              (line.rsplit(None, 1) for line in output.splitlines()[1:])}
    assert counts == {"records read": "8", "neither pairwise nor rating (left out)": "0",
                      "items": "3", "items judged several times (majority exported)": "2",
                      "tie judgements (dropped)": "1",
                      "items without a majority (dropped)": "1", "rating records": "1",
                      "rated prompts": "1",
                      "rated prompts binarised (best vs a random lower one)": "0",
                      "rated prompts all tied (dropped)": "0",
                      "rated prompts with one response (dropped)": "1", "rows written": "2"}


def test_missing_field_names_file_line_and_field(tmp_path):
    src = write_jsonl(tmp_path / "hh.jsonl", [HH_ROWS[0], {"rejected": HH_ROWS[0]["rejected"]}])
    out = tmp_path / "out.jsonl"
    result = run("data", "import", "hh-rlhf", src, "--out", out)
    assert result.exit_code == 1
    assert 'hh.jsonl line 2: "chosen" is missing (expected chosen/rejected transcripts)' \
        in result.output
    assert not out.exists()


@pytest.mark.parametrize("fmt, row, message", [
    ("pku-saferlhf", {"prompt": "q", "response_0": "a", "response_1": "b",
                      "better_response_id": 2, "safer_response_id": 0},
     '"better_response_id" is 2, expected 0 or 1'),
    ("ultrafeedback", {"instruction": "q", "completions": [
        {"response": "a", "annotations": {"honesty": {"Rating": "5"}}},
        {"response": "b", "annotations": {"honesty": {"Rating": "great"}}}]},
     '"completions[1].annotations.honesty.Rating" is \'great\', expected 1-5 or "N/A"'),
    ("hh-rlhf", {"chosen": "\n\nHuman: a\n\nAssistant: b",
                 "rejected": "\n\nHuman: other\n\nAssistant: c"},
     '"rejected" differs from "chosen" before the final assistant turn'),
    ("trl", {"prompt": "q", "chosen": "a", "rejected": [{"role": "assistant", "content": "b"}]},
     '"rejected" is a list but "chosen" is a string'),
])
def test_wrong_values_name_the_field(tmp_path, fmt, row, message):
    src = write_jsonl(tmp_path / "data.jsonl", [row])
    result = run("data", "import", fmt, src, "--out", tmp_path / "out.jsonl")
    assert result.exit_code == 1 and f"data.jsonl line 1: {message}" in result.output


def test_bad_json_names_the_line_and_leaves_dst_unchanged(tmp_path):
    src = tmp_path / "hh.jsonl"
    src.write_text(json.dumps(HH_ROWS[0]) + "\n\n" + json.dumps(HH_ROWS[1])[:-7] + "\n")
    out = tmp_path / "out.jsonl"
    out.write_text("previous content\n")
    result = run("data", "import", "hh-rlhf", src, "--out", out)
    assert result.exit_code == 1
    assert "hh.jsonl line 3: not valid JSON" in result.output
    assert out.read_text() == "previous content\n"
    assert not list(tmp_path.glob(".out.jsonl.*"))  # no temporary file left behind


def test_skip_invalid_counts_and_continues(tmp_path):
    src = tmp_path / "hh.jsonl"
    src.write_text("\n".join([json.dumps(HH_ROWS[0]), "{not json", json.dumps({"chosen": 3}),
                              json.dumps(HH_ROWS[1])]) + "\n")
    out = tmp_path / "out.jsonl"
    output = ok("data", "import", "hh-rlhf", src, "--out", out, "--skip-invalid")
    records = read_records(out)
    assert [r.provenance["line"] for r in records] == [1, 4]  # lines kept after a bad one
    assert "rows skipped (invalid)  2" in output
    assert "hh.jsonl line 2: not valid JSON" in output
    assert 'hh.jsonl line 3: "chosen" is a number, expected a transcript string' in output


def test_unknown_format_and_help(tmp_path):
    result = run("data", "import", "alpaca", tmp_path / "x.jsonl", "--out", tmp_path / "o")
    assert result.exit_code == 2 and "hh-rlhf" in result.output
    help_text = ok("data", "import", "--help")
    for fmt in ("hh-rlhf", "ultrafeedback-binarized", "pku-saferlhf", "helpsteer2", "shp", "trl"):
        assert fmt in help_text
    assert "--skip-invalid" in help_text and "majority" in ok("data", "export", "--help")
