import json

from rlxf.rundir import RunDir, hash_dir, read_jsonl, write_jsonl


def make_stage(run: RunDir, stage: str, fp: str, payload: str) -> dict:
    partial, _ = run.begin(stage, fp)
    (partial / "out.txt").write_text(payload)
    return run.commit(stage, {"stage": stage, "fingerprint": fp})


def test_commit_is_complete_only_for_same_fingerprint_and_untouched_outputs(tmp_path):
    run = RunDir(tmp_path)
    make_stage(run, "sft", "fp1", "hello")
    assert run.is_complete("sft", "fp1")
    assert not run.is_complete("sft", "fp2")
    (run.stage_dir("sft") / "out.txt").write_text("tampered")
    assert not run.is_complete("sft", "fp1")
    assert not run.partial_dir("sft").exists()


def test_recommit_replaces_stale_output_and_ledger_keeps_history(tmp_path):
    run = RunDir(tmp_path)
    make_stage(run, "sft", "fp1", "old")
    make_stage(run, "sft", "fp2", "new")
    assert (run.stage_dir("sft") / "out.txt").read_text() == "new"
    assert [r["fingerprint"] for r in run.ledger()] == ["fp1", "fp2"]
    assert list(run.latest()) == ["sft"] and run.latest()["sft"]["fingerprint"] == "fp2"


def test_checkpoints_survive_only_for_the_same_fingerprint(tmp_path):
    run = RunDir(tmp_path)
    _, ckpt = run.begin("reward", "fpA")
    (ckpt / "state.pt").write_text("x")
    _, ckpt = run.begin("reward", "fpA")
    assert (ckpt / "state.pt").exists()
    _, ckpt = run.begin("reward", "fpB")
    assert not (ckpt / "state.pt").exists()


def test_torn_ledger_line_is_ignored_and_restored_from_the_stage_record(tmp_path):
    run = RunDir(tmp_path)
    make_stage(run, "world", "fp1", "w")
    with open(run.ledger_path, "w") as fh:  # a crash mid-append left half a line
        fh.write('{"stage": "wor')
    assert run.ledger() == []
    run.ensure_ledgered("world")
    assert [r["stage"] for r in run.ledger()] == ["world"]


def test_jsonl_round_trip_and_errors_name_the_line(tmp_path):
    path = tmp_path / "x.jsonl"
    assert write_jsonl(path, [{"a": 1}, {"b": 2}]) == 2
    assert read_jsonl(path) == [{"a": 1}, {"b": 2}]
    path.write_text('{"a": 1}\n{oops\n')
    try:
        read_jsonl(path)
    except ValueError as e:
        assert "line 2" in str(e)
    else:
        raise AssertionError("malformed JSONL was accepted")
    assert not list(tmp_path.glob(".*.tmp"))
    assert json.loads('{"a": 1}') == {"a": 1}


def test_derived_docs_do_not_change_the_output_hash_but_other_files_do(tmp_path):
    run = RunDir(tmp_path)
    partial, _ = run.begin("sft", "fp1")
    (partial / "model").mkdir()
    (partial / "model" / "config.json").write_text("{}")
    rec = run.commit("sft", {"stage": "sft", "fingerprint": "fp1"})
    stage = run.stage_dir("sft")
    (stage / "model" / "README.md").write_text("---\ntags: [rlxf]\n---\n# card\n")
    (stage / "DATASHEET.md").write_text("# datasheet\n")
    assert hash_dir(stage) == rec["output_hash"] and run.is_complete("sft", "fp1")
    for extra in ("README.md", "model/DATASHEET.md", "model/sub/README.md"):  # not derived docs
        (stage / extra).parent.mkdir(parents=True, exist_ok=True)
        (stage / extra).write_text("x")
        assert not run.is_complete("sft", "fp1"), extra
        (stage / extra).unlink()
    assert run.is_complete("sft", "fp1")
