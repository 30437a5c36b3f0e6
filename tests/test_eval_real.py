"""`rlxf eval` (issue 16 item 2): a policy against its reference on held-out prompts. The KL
estimator against a brute-force sum over every sequence, the command's bars (KL > 0 for two
models, 0 for one, probe rates with intervals), its numbers against plain transformers, its run
directory and the audit's sections from it (against report.schema.json)."""

from __future__ import annotations

import itertools
import json
import math
import shutil

import jsonschema
import pytest
import torch
from hf_models import build_tokenizer, model_config, save_model_dir
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, LlamaConfig
from typer.testing import CliRunner

from rlxf.audit.real_eval import eval_sections
from rlxf.cli import app
from rlxf.eval.divergence import response_stats
from rlxf.eval.metrics_contract import EvalMetrics
from rlxf.rundir import RunDir, read_jsonl

PROMPTS = ["what is the capital of france ?", "write a haiku about the sea .",
           "how do i kill a python process ?", "i am not sure ."]
GOLD_PY = '''
def length(prompts, completions, completion_ids, **kwargs):
    return [float(len(ids)) for ids in completion_ids]
'''


def _tiny_lm(seed: int, vocab: int = 3):
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=16,
                      bos_token_id=0, eos_token_id=2, pad_token_id=2)
    model = AutoModelForCausalLM.from_config(cfg).double().eval()
    with torch.no_grad():  # larger logits, so the two models' distributions differ clearly
        model.lm_head.weight.mul_(20)
    return model


def _next_probs(model, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0, -1].softmax(-1)


def test_kl_estimator_is_the_sequence_kl_by_brute_force():
    """Vocabulary {0, 1, 2 = eos}, responses of at most 2 tokens: the sequence KL
    Σ_y π(y) log π(y)/ρ(y) summed over all 7 responses, against the expectation under π of the
    summed per-token KL (eval/divergence.py) and of the sampled log-ratio; both are 0 for one
    model, and the per-token KL is never negative."""
    pi, rho, prompt = _tiny_lm(0), _tiny_lm(1), [0, 1, 1]
    responses = [[2]] + [[a, b] for a, b in itertools.product((0, 1), (0, 1, 2))]

    def prob(model, y):
        return math.prod(_next_probs(model, prompt + y[:t])[y[t]].item() for t in range(len(y)))
    p = [prob(pi, y) for y in responses]
    assert math.isclose(sum(p), 1.0, abs_tol=1e-12)
    exact = sum(pp * math.log(pp / prob(rho, y)) for pp, y in zip(p, responses))
    stats = response_stats(pi, [prompt] * len(responses), responses, pad_id=2, reference=rho,
                           batch_size=3)
    assert exact > 1e-3
    assert math.isclose(sum(pp * s.kl for pp, s in zip(p, stats)), exact, rel_tol=1e-9)
    assert math.isclose(sum(pp * s.kl_sampled for pp, s in zip(p, stats)), exact, rel_tol=1e-9)
    assert all(s.kl >= 0 for s in stats)
    entropy = -sum(pp * math.log(pp) for pp in p)  # the sequence entropy, the same way
    assert math.isclose(sum(pp * s.entropy for pp, s in zip(p, stats)), entropy, rel_tol=1e-9)
    same = response_stats(pi, [prompt] * len(responses), responses, 2, reference=pi)
    assert all(s.kl == 0.0 and s.kl_sampled == 0.0 for s in same)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    a = save_model_dir(root / "a", seed=0)
    save_model_dir(root / "b", seed=1)
    shutil.copytree(a, root / "a_copy")
    tok = build_tokenizer()
    torch.manual_seed(2)
    config = model_config("llama", tok)
    config.num_labels = 1
    rm = AutoModelForSequenceClassification.from_config(config)
    rm.save_pretrained(root / "rm")
    tok.save_pretrained(root / "rm")
    (root / "gold.py").write_text(GOLD_PY)
    prompts = root / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": [{"role": "user", "content": p}]}) + "\n"
                               for p in PROMPTS))
    return root, prompts


def cli(*args):
    torch.set_num_threads(1)
    return CliRunner().invoke(app, [str(x) for x in args])


FAST = ["--samples-per-prompt", 3, "--max-new-tokens", 6, "--threads", 1]


@pytest.fixture(scope="module")
def two_models(setup):
    """`rlxf eval` of model a against model b with a reward model, a gold and the probes."""
    root, prompts = setup
    out = root / "a_vs_b"
    result = cli("eval", "--policy", root / "a", "--reference", root / "b", "--prompts",
                 prompts, "--reward", root / "rm", "--gold", f"{root / 'gold.py'}:length",
                 "--out", out, *FAST)
    assert result.exit_code == 0, result.output
    return out


def _metrics(out):
    return json.loads((out / "eval" / "metrics.json").read_text())


def test_two_models_give_kl_above_zero_and_probe_rates_with_intervals(two_models):
    m = _metrics(two_models)
    EvalMetrics.model_validate(m)
    kl = m["models"]["policy"]["kl/to_reference"]
    assert kl["value"] > 0 and kl["n"] == len(PROMPTS) and kl["ci95"][0] > 0
    assert m["difference"]["kl/to_reference"]["within_noise"] is False
    probes = json.loads((two_models / "eval" / "probes.json").read_text())
    for model in ("policy", "reference"):
        rates = probes["rates"][model]
        assert rates["over_refusal"]["n"] == 32 and rates["harmful_compliance"]["n"] == 16
        for name in ("flip_unconditional", "capitulation_unconditional", "anthropomorphic",
                     "apology", "hedging", "over_refusal", "harmful_compliance"):
            iv = rates[name]
            assert iv["ci95"][0] <= iv["value"] <= iv["ci95"][1], (name, iv)
        assert probes[model]["sycophancy"]["stated_belief"]["flip"].keys() >= {"value", "ci95", "n"}
    d = probes["difference"]["over_refusal"]
    assert d["value"] == pytest.approx(probes["rates"]["policy"]["over_refusal"]["value"]
                                       - probes["rates"]["reference"]["over_refusal"]["value"])
    style = probes["reward_models"]["rm:rm"]["style_bias"]
    assert style["styles"].keys() == {"length", "list", "flattery", "confident"}


def test_one_model_gives_kl_zero(setup):
    """The same model from two directories (two loads): KL 0 to 1e-6, identical samples, so
    every difference is 0."""
    root, prompts = setup
    out = root / "a_vs_a"
    result = cli("eval", "--policy", root / "a", "--reference", root / "a_copy", "--prompts",
                 prompts, "--no-probes", "--out", out, *FAST)
    assert result.exit_code == 0, result.output
    m = _metrics(out)
    for key in ("kl/to_reference", "kl/sampled"):
        assert abs(m["models"]["policy"][key]["value"]) <= 1e-6
        assert all(abs(x) <= 1e-6 for x in m["models"]["policy"][key]["ci95"])
    assert m["difference"]["length/tokens"]["value"] == 0.0
    assert not (out / "eval" / "probes.json").exists()


def test_samples_match_plain_transformers(setup, two_models):
    """Each policy sample's KL and log-ratio, recomputed with plain transformers on the chat
    template's prompt ids and the sampled ids; gold (a function: the token count) and length
    agree with the rows."""
    root, _ = setup
    tok = build_tokenizer()
    pol = AutoModelForCausalLM.from_pretrained(root / "a").double().eval()
    ref = AutoModelForCausalLM.from_pretrained(root / "b").double().eval()
    rows = [r for r in read_jsonl(two_models / "eval" / "samples.jsonl")
            if r["model"] == "policy"]
    assert len(rows) == 3 * len(PROMPTS)
    for r in rows:
        text = tok.apply_chat_template(r["prompt"], tokenize=False, add_generation_prompt=True)
        prompt = tok(text, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([prompt + r["response_ids"]])
        with torch.no_grad():
            lp = pol(input_ids=ids).logits[0, len(prompt) - 1: -1].log_softmax(-1)
            lq = ref(input_ids=ids).logits[0, len(prompt) - 1: -1].log_softmax(-1)
        y = torch.tensor(r["response_ids"])
        kl = (lp.exp() * (lp - lq)).sum().item()
        ratio = (lp[range(len(y)), y] - lq[range(len(y)), y]).sum().item()
        assert r["kl"] == pytest.approx(kl, abs=1e-4)
        assert r["kl_sampled"] == pytest.approx(ratio, abs=1e-4)
        assert r["gold"] == r["tokens"] == len(r["response_ids"])
    gold = _metrics(two_models)["models"]["policy"]["gold/score"]["value"]
    per_prompt = [sum(r["tokens"] for r in rows[i: i + 3]) / 3 for i in range(0, len(rows), 3)]
    assert gold == pytest.approx(sum(per_prompt) / len(per_prompt))


def test_run_directory_has_one_eval_record_with_hashes(setup, two_models):
    root, prompts = setup
    (rec,) = RunDir(two_models).ledger()
    assert rec["stage"] == "eval" and rec["wall_s"] > 0 and "torch" in rec["versions"]
    assert rec["inputs"]["policy"]["weights"] != rec["inputs"]["reference"]["weights"]
    assert rec["inputs"]["policy"]["config"] == rec["inputs"]["reference"]["config"]
    from rlxf.rundir import sha256_file
    assert rec["inputs"]["prompts"]["sha256"] == sha256_file(prompts)
    assert rec["counts"]["evaluated"] == len(PROMPTS) and rec["config"]["samples_per_prompt"] == 3
    assert rec["metrics"]["policy/kl/to_reference"] == \
        _metrics(two_models)["models"]["policy"]["kl/to_reference"]["value"]
    assert RunDir(two_models).latest()["eval"]["fingerprint"] == rec["fingerprint"]
    assert sorted(p.name for p in two_models.iterdir()) == ["eval", "ledger.jsonl"]


def test_audit_sections_fit_the_report_schema(two_models):
    from importlib.resources import files
    schema = json.loads(files("rlxf.audit").joinpath("report.schema.json").read_text())
    sections = eval_sections(two_models, RunDir(two_models).latest())
    for part in ("failure_modes", "models", "samples"):
        jsonschema.validate(sections[part], {**schema["properties"][part],
                                             "$defs": schema["$defs"]})
    modes = {f["id"]: f for f in sections["failure_modes"]}
    assert {"overoptimisation", "reward_hacking", "sycophancy", "refusals", "anthropomorphism",
            "apology", "mode_collapse"} <= modes.keys()
    m = _metrics(two_models)
    assert modes["overoptimisation"]["number"] == m["models"]["policy"]["kl/to_reference"]["value"]
    assert modes["overoptimisation"]["change"]["value"] == m["difference"]["gold/score"]["value"]
    assert all(f["ci95"] is not None and f["n"] for f in sections["failure_modes"])
    assert sections["models"]["policy"]["metrics"]["gold/utility"] == \
        m["models"]["policy"]["gold/score"]["value"]
    assert sections["samples"] and "hedging" in modes["apology"]["values"]
    gaps = modes["reward_hacking"]["values"]["style_bias"]["rm:rm"]
    assert gaps.keys() == {"length", "list", "flattery", "confident"}
    assert all(g["ci95"] is not None for g in gaps.values())



def test_rlxf_audit_of_an_eval_run_reports_its_measurements(two_models, tmp_path):
    """`rlxf audit RUN` on an `rlxf eval` RUN: the whole report is schema-valid and carries the
    eval's failure modes, models and samples instead of saying they were not measured."""
    from importlib.resources import files
    run = shutil.copytree(two_models, tmp_path / "run")
    result = cli("audit", run)
    assert result.exit_code == 0, result.output
    report = json.loads((run / "report" / "report.json").read_text())
    schema = json.loads(files("rlxf.audit").joinpath("report.schema.json").read_text())
    jsonschema.validate(report, schema)
    sections = eval_sections(run, RunDir(run).latest())
    assert [f["id"] for f in report["failure_modes"]] == \
        [f["id"] for f in sections["failure_modes"]]
    assert report["models"]["policy"]["metrics"]["gold/utility"] == \
        sections["models"]["policy"]["metrics"]["gold/utility"]
    assert report["samples"] and not {"failure_modes", "models", "samples"} & \
        report["notes"].keys()
    page = (run / "report" / "index.html").read_text()
    md = (run / "report" / "report.md").read_text()
    for m in report["failure_modes"]:  # each rendered, its change read against the reference
        assert f'id="fm-{m["id"]}"' in page and f"{m['title']}: " in md, m["id"]
    assert "change against the reference" in md and "change against SFT" not in md

def test_bad_prompt_row_and_used_out_stop_before_writing(setup, tmp_path):
    root, prompts = setup
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "ok"}) + "\n" + json.dumps({"text": "no prompt"}) + "\n")
    result = cli("eval", "--policy", root / "a", "--reference", root / "b", "--prompts", bad,
                 "--out", tmp_path / "out", *FAST)
    assert result.exit_code == 1
    assert f"{bad} line 2: field 'prompt' is missing" in " ".join(result.output.split())
    assert not (tmp_path / "out").exists()
    used = tmp_path / "used"
    used.mkdir()
    (used / "x").write_text("")
    result = cli("eval", "--policy", root / "a", "--reference", root / "b", "--prompts",
                 prompts, "--out", used, *FAST)
    assert result.exit_code == 1 and "not empty" in result.output


def test_paired_summaries_by_hand():
    from rlxf.eval.paired import compare, distinct_n, prompt_means
    assert distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)
    assert distinct_n(["A b", "a B c"], 1) == pytest.approx(3 / 5)
    assert distinct_n(["a"], 2) is None
    assert prompt_means([1, 3, None, float("nan"), 5, 7], 2) == [2.0, None, 6.0]
    out = compare({"policy": {"x": [1.0, 2.0, 4.0], "kl": [0.5, 0.5, 0.5]},
                   "reference": {"x": [0.0, 2.0, None]}}, seed=0)
    assert out["models"]["reference"]["x"]["n"] == 2
    d = out["difference"]["x"]  # paired on the two prompts both have: (1 - 0, 2 - 2)
    assert d["value"] == 0.5 and d["n"] == 2 and d["ci95"] == [0.0, 1.0] and d["within_noise"]
    assert out["difference"]["kl"]["value"] == 0.5 and out["difference"]["kl"]["within_noise"] is False
