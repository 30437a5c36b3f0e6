"""End to end through the real CLI on a tiny config: every stage, skip on rerun, and exact
resume after kill -9 in the middle of a training stage."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tiny_runs import ENV, TINY, copy_run, numbers, rlxf, rlxf_started

from rlxf.pipeline import STAGE_NAMES


@pytest.fixture
def finished(tiny_run) -> Path:
    """The session's shared tiny run (tests/conftest.py): read only."""
    return tiny_run


def assert_close(a, b, path="", tol=1e-6):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            assert_close(a[k], b[k], f"{path}/{k}", tol)
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_close(x, y, f"{path}[{i}]", tol)
    elif isinstance(a, float):
        assert abs(a - b) <= tol, f"{path}: {a} != {b}"
    else:
        assert a == b, path


def test_every_stage_writes_artifacts_ledger_and_report(finished):
    stages = ["world", "pretrain", "sft", "feedback", "reward", "policy", "eval", "process",
              "finetune"]  # the last two are off in tiny.toml: they record that they did nothing
    ledger = [json.loads(line) for line in (finished / "ledger.jsonl").read_text().splitlines()]
    assert [r["stage"] for r in ledger] == stages
    for r in ledger:
        assert {"config", "inputs", "output_hash", "counts", "metrics", "wall_s", "versions"} <= r.keys()
        assert (finished / r["stage"] / "_stage.json").exists()
    for model in ("pretrain", "sft", "reward", "policy"):
        assert (finished / model / "model" / "config.json").exists()
        assert (finished / model / "model" / "tokenizer.json").exists()
    for name in ("report.json", "report.md", "index.html"):
        assert (finished / "report" / name).stat().st_size > 0
    assert not (finished / ".partial" / "policy").exists()
    report = numbers(finished / "report" / "report.json")
    assert report["models"]["policy"]["metrics"]["gold/utility"] is not None


def test_rerun_skips_finished_stages(finished, tmp_path):
    out = copy_run(finished, tmp_path / "again")
    before = (out / "ledger.jsonl").read_text()
    proc = rlxf("run", TINY, "--out", out)
    assert proc.stderr.count("up to date, skipped") == 9
    assert (out / "ledger.jsonl").read_text() == before


def test_an_up_to_date_run_loads_no_stage_code(finished, tmp_path):
    # what a --seeds member checked again does, in a fresh process (the suite's CLI processes
    # fork from one that has imported everything): no stage runs, so no torch or transformers
    out = copy_run(finished, tmp_path / "again")
    code = ("import sys\nfrom rlxf.cli import app\n"
            "try:\n    app(sys.argv[1:], prog_name='rlxf')\n"
            "except SystemExit as e:\n    assert not e.code, e.code\n"
            "print('loaded:', [m for m in ('torch', 'transformers') if m in sys.modules])")
    proc = subprocess.run([sys.executable, "-c", code, "run", str(TINY), "--out", str(out),
                           "--threads", "1", "--no-report"], env=ENV, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr.count("up to date, skipped") == 9
    assert proc.stdout.strip().splitlines()[-1] == "loaded: []"


def test_kill_9_mid_stage_then_resume_gives_the_same_numbers(finished, tmp_path):
    # The finished run without reward and everything after it: the upstream stages are
    # skipped; reward is killed at its first checkpoint, the rerun resumes it and is killed at
    # policy's first checkpoint, and the last run resumes policy and recomputes every later
    # stage from the resumed ones. (Each command runs in a process of its own, forked from
    # tests/cli_zygote.py, and dies of SIGKILL as `kill -9` would kill it.)
    out = copy_run(finished, tmp_path / "killed",
                   drop=STAGE_NAMES[STAGE_NAMES.index("reward"):] + ("report",))
    for stage in ("reward", "policy"):
        with rlxf_started("run", TINY, "--out", out) as proc:
            ckpt = out / ".ckpt" / stage
            deadline = time.time() + 300
            while not any(ckpt.glob("**/state.pt")) and proc.running() and time.time() < deadline:
                time.sleep(0.01)
            assert proc.running(), f"the run ended before a {stage} checkpoint appeared"
            assert proc.kill().returncode == -signal.SIGKILL
        assert not (out / stage / "_stage.json").exists()  # the stage had not completed

    rlxf("run", TINY, "--out", out)
    for stage in ("reward", "policy"):
        record = numbers(out / stage / "_stage.json")
        assert record["metrics"]["resumed_from_step"] > 0, stage
    assert_close(numbers(out / "eval" / "metrics.json"), numbers(finished / "eval" / "metrics.json"))
    assert_close(numbers(out / "policy" / "history.json"),
                 numbers(finished / "policy" / "history.json"))


def test_changed_config_reruns_only_downstream_stages(finished, tmp_path):
    out = copy_run(finished, tmp_path / "changed")
    changed = tmp_path / "changed.toml"
    changed.write_text(TINY.read_text().replace("eval_prompts = 16", "eval_prompts = 12"))
    proc = rlxf("run", changed, "--out", out)
    assert proc.stderr.count("up to date, skipped") == 6  # world..reward, process
    assert numbers(out / "policy" / "_stage.json")["counts"]["eval_prompts"] == 12


FINETUNE = """
[finetune]
enabled = true
family = "factual"
n_demonstrations = 60
steps = 12
batch_size = 8
warmup_steps = 2
checkpoint_every = 6
"""


def test_finetune_tunes_the_policy_on_one_family_and_measures_it_again(finished, tmp_path):
    out = copy_run(finished, tmp_path / "tuned")
    config = tmp_path / "finetune.toml"
    config.write_text(TINY.read_text() + FINETUNE)
    proc = rlxf("run", config, "--out", out)
    assert proc.stderr.count("up to date, skipped") == 8  # only finetune runs
    rec = numbers(out / "finetune" / "_stage.json")
    assert rec["counts"]["demonstrations"] == 60 and rec["metrics"]["steps"] == 12
    prompts = {json.loads(line)["prompt"]["id"]: json.loads(line)
               for line in (out / "world" / "prompts.jsonl").read_text().splitlines()}
    demos = [json.loads(line) for line in
             (out / "finetune" / "demonstrations.jsonl").read_text().splitlines()]
    assert {prompts[d["prompt_id"]]["prompt"]["family"] for d in demos} == {"factual"}
    assert {prompts[d["prompt_id"]]["split"] for d in demos} == {"train"}
    # every weight was trained: the tuned model is not the policy
    tuned = (out / "finetune" / "model" / "model.safetensors").read_bytes()
    assert tuned != (out / "policy" / "model" / "model.safetensors").read_bytes()
    data = numbers(out / "finetune" / "metrics.json")
    policy = numbers(out / "eval" / "metrics.json")["policy"]
    assert data["before"] == {"metrics": policy["metrics"], "per_family": policy["per_family"]}
    assert data["after"]["per_family"].keys() == policy["per_family"].keys()
    samples = (out / "finetune" / "samples.jsonl").read_text().splitlines()
    assert len(samples) == numbers(out / "eval" / "_stage.json")["counts"]["samples"] // 3
    tax = numbers(out / "report" / "report.json")["alignment_tax"]
    assert tax["family"] == "factual" and tax["per_family"]["factual"]["tuned_on"]
    for k, v in tax["overall"].items():
        assert v["before"] == pytest.approx(policy["metrics"][k], rel=1e-5), k
        assert v["after"] == pytest.approx(data["after"]["metrics"][k], rel=1e-5), k
    assert tax["overall"]["kl/to_sft"]["delta"] != 0
    # the pooled deltas (one seed here), from the samples rescored by the gold judge, are the
    # eval metrics' deltas; the tuned family and the rest split the prompts between them
    for ax, metric in (("utility", "gold/utility"), ("helpful", "gold/helpful"),
                       ("harmless", "gold/harmless"), ("honest", "gold/honest")):
        iv = tax["intervals"]["overall"][ax]
        assert iv["value"] == pytest.approx(tax["overall"][metric]["delta"], abs=1e-5), ax
        assert iv["within_noise"] == (iv["ci95"][0] <= 0 <= iv["ci95"][1]), ax
    n = {s: tax["intervals"][s]["utility"]["n"] for s in ("overall", "tuned", "others")}
    assert n["overall"]["prompts"] == n["tuned"]["prompts"] + n["others"]["prompts"]
    assert n["overall"]["samples"] == len(samples) and n["overall"]["seeds"] == 1
    assert tax["intervals"]["tuned"]["utility"]["value"] == pytest.approx(
        tax["per_family"]["factual"]["utility"]["delta"], abs=1e-5)


def test_bad_config_fails_before_any_work(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[policy]\nalgorithm = 'ppo2'\n")
    proc = rlxf("run", bad, "--out", tmp_path / "never", check=False)
    assert proc.returncode == 2
    assert "policy.algorithm" in proc.stderr and "'ppo2'" in proc.stderr
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize("args", [[], ["run"], ["audit"]])
def test_help_explains_every_command(args):
    proc = rlxf(*args, "--help")
    assert "Usage" in proc.stdout and len(proc.stdout) > 200


def test_audit_regenerates_report_from_run_dir(finished, tmp_path):
    out = copy_run(finished, tmp_path / finished.name)  # the report names the run by its folder
    report = out / "report" / "report.json"
    before = report.read_bytes()
    report.unlink()
    rlxf("audit", out)
    assert report.read_bytes() == before
    proc = rlxf("audit", tmp_path, check=False)
    assert proc.returncode == 2 and "not a run directory" in proc.stderr


def test_rlaif_run_with_an_ai_judge_behind_a_real_http_endpoint(finished, tmp_path):
    from fake_chat_server import FakeChatServer

    def prefers_shorter(body, n):  # a consistent judge: no position bias
        user = body["messages"][-1]["content"]
        a = user.split("<response_a>\n")[1].split("\n</response_a>")[0]
        b = user.split("<response_b>\n")[1].split("\n</response_b>")[0]
        verdict = "A" if len(a) < len(b) else "B" if len(b) < len(a) else "TIE"
        return 200, f"The shorter one is clearer.\nVERDICT: {verdict}", {}

    server = FakeChatServer(prefers_shorter)
    try:
        config = tmp_path / "rlaif.toml"
        constitution = Path(__file__).parents[1] / "examples" / "constitution.toml"
        config.write_text(TINY.read_text().replace(
            "[feedback]\n", f'[feedback]\nsource = "ai"\nai = {{ model = "fake-judge", '
            f'base_url = "{server.url}", constitution = "{constitution}" }}\n'))
        out = copy_run(finished, tmp_path / "run")  # world..sft are skipped
        rlxf("run", config, "--out", out)
        record = numbers(out / "feedback" / "_stage.json")
        assert record["metrics"]["ai_judge/position_bias"] == 0.0
        assert record["counts"]["ai_requests"] == 2 * record["counts"]["comparisons"]
        assert "constitution_sha256" in record["config"]
        first = json.loads((out / "feedback" / "feedback.jsonl").read_text().splitlines()[0])
        assert first["source"] == "ai" and first["annotator"]["id"] == "fake-judge"
        report = numbers(out / "report" / "report.json")
        assert report["feedback"]["source"] == "ai"
        requests = server.n_requests
        # Rerunning the stage asks the judge nothing: every answer comes from the cache.
        subprocess.run(["rm", "-rf", str(out / "feedback")], check=True)
        rlxf("run", config, "--out", out, "--until", "feedback")
        assert server.n_requests == requests
    finally:
        server.close()


def test_missing_constitution_fails_before_any_work(tmp_path):
    config = tmp_path / "rlaif.toml"
    config.write_text(TINY.read_text().replace(
        "[feedback]\n", '[feedback]\nsource = "ai"\nai = { constitution = "nope.toml" }\n'))
    proc = rlxf("run", config, "--out", tmp_path / "never", check=False)
    assert proc.returncode == 2 and "nope.toml: no such file" in proc.stderr
    assert not (tmp_path / "never").exists()


def test_rlaif_offline_with_a_local_judge_model(finished, tmp_path):
    from rlxf.feedback.constitution import load_constitution
    from test_ai_judge import _bpe_judge_dir

    constitution = Path(__file__).parents[1] / "examples" / "constitution.toml"
    judge_dir = _bpe_judge_dir(tmp_path / "judge", load_constitution(constitution))
    config = tmp_path / "offline.toml"
    config.write_text(TINY.read_text().replace(
        "[feedback]\n", f'[feedback]\nsource = "ai"\nai = {{ local_model = "{judge_dir}", '
        f'constitution = "{constitution}" }}\n').replace("n_comparisons = 120",
                                                        "n_comparisons = 40"))
    out = copy_run(finished, tmp_path / "run")  # world..sft are skipped
    rlxf("run", config, "--out", out, "--until", "feedback")
    record = numbers(out / "feedback" / "_stage.json")
    assert record["counts"]["judgements"] > 0 and "local_model_sha256" in record["config"]
    first = json.loads((out / "feedback" / "feedback.jsonl").read_text().splitlines()[0])
    assert first["source"] == "ai" and first["provenance"]["judge"] == "local-lm"


def test_human_feedback_records_feed_the_pipeline(finished, tmp_path):
    # Records in the canonical format, as `rlxf annotate export` writes them; here the tiny run's
    # own judgements stand in for people's.
    records = tmp_path / "human.jsonl"
    lines = (finished / "feedback" / "feedback.jsonl").read_text().splitlines()
    records.write_text("".join(line.replace('"simulated"', '"human"') + "\n" for line in lines))
    config = tmp_path / "human.toml"
    config.write_text(TINY.read_text().replace(
        "[feedback]\n", f'[feedback]\nsource = "human"\nrecords = "{records}"\n'))
    out = copy_run(finished, tmp_path / "run")
    rlxf("run", config, "--out", out, "--until", "reward")
    fb = numbers(out / "feedback" / "_stage.json")
    simulated = numbers(finished / "feedback" / "_stage.json")
    assert fb["counts"]["comparisons"] == simulated["counts"]["comparisons"]
    assert fb["counts"]["judgements"] == len(lines)
    assert fb["metrics"]["agreement/raw"] is not None and "records_sha256" in fb["config"]
    assert numbers(out / "reward" / "_stage.json")["counts"]["pairs/train"] > 0

    bad = lines[0].replace('"choice": 0', '"choice": 5').replace('"choice": 1', '"choice": 5')
    records.write_text(bad + "\n")
    proc = rlxf("run", config, "--out", tmp_path / "never", check=False)
    assert proc.returncode == 2 and "line 1" in proc.stderr and "choice" in proc.stderr
    assert not (tmp_path / "never").exists()


def test_ppo_run_and_best_of_n_sweep_share_the_upstream_stages(finished, tmp_path):
    # PPO as the run's policy, then a best-of-n sweep whose members link world..reward to the
    # run's (skipped, not recomputed) and are fitted in the report.
    out = copy_run(finished, tmp_path / "sweep")
    config = tmp_path / "ppo.toml"
    config.write_text(TINY.read_text().replace("[policy]\nsteps = 40", '[policy]\nsteps = 4')
                      .replace("eval_every = 20", "eval_every = 2")
                      .replace("[policy]", '[policy]\nalgorithm = "ppo"')
                      + "\n[sweep]\nbon_n = [2, 4, 8]\n")
    proc = rlxf("sweep", config, "--out", out)
    assert proc.stderr.count("up to date, skipped") == 6 + 3 * 5  # run: world..reward, process; members: world..reward
    assert [h["step"] for h in numbers(out / "policy" / "history.json")] == [0, 2, 4]
    assert list((out / "tb" / "policy-ppo").glob("events.out.tfevents.*"))  # TensorBoard
    member = out / "sweep" / "bon_n=4"
    assert (member / "reward").is_symlink() and (member / "policy" / "bon.json").exists()
    report = numbers(out / "report" / "report.json")["overoptimisation"]
    assert [p["value"] for p in report["sweep"]["points"]] == [None, 2, 4, 8]
    assert report["fit"]["sweep"]["form"] == "bon" and report["fit"]["sweep"]["n_points"] == 3
    assert {c["n"] for c in report["sweep"]["bon_kl_check"]} == {2, 4, 8}
    # per prompt, SFT's and best-of-n's eval samples: pooled (one seed), they give the sweep's
    # own points, now with intervals
    samples = [json.loads(line) for line in
               (member / "policy" / "bon_samples.jsonl").read_text().splitlines()]
    assert {s["step"] for s in samples} == {0, 1} and {s["best_of"] for s in samples} == {1, 4}
    iv = report["sweep"]["intervals"]
    assert [p["n"] for p in iv["points"]] == [2, 4, 8] and iv["largest"]["n"] == 8
    sft_gold = report["sweep"]["points"][0]["reward_gold"]
    checks = {c["n"]: c for c in report["sweep"]["bon_kl_check"]}
    for point, p in zip(report["sweep"]["points"][1:], iv["points"]):
        assert p["gold_change"]["value"] == pytest.approx(point["reward_gold"] - sft_gold,
                                                          abs=1e-5)
        assert p["kl_measured"]["value"] == pytest.approx(checks[p["n"]]["kl_measured"],
                                                          rel=1e-4)
        assert p["gold_change"]["n"]["prompts"] == len({s["prompt_id"] for s in samples})
        assert p["gold_change"]["n"]["seeds"] == 1
