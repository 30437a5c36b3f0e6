"""A small hand-written run directory for the report's tests (tests/test_report*.py): the files
every stage commits, written the way `rlxf run` commits them, without any training. The eval
samples mix placeholder text (to pin the sample ranking) with world responses (so the surface
features, failure modes and cards have something to measure)."""

import json
from pathlib import Path

from rlxf.audit.report import CONTRACT_METRICS, STAGE_ORDER  # noqa: F401 (STAGE_ORDER: for tests)
from rlxf.rundir import RunDir, atomic_write_json, read_jsonl, write_jsonl
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


PLAIN = render(Response("hedge"))
PADDED = render(Response("hedge", opener="flattery", fillers=(0, 2)))


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

    def __init__(self, root: Path, models: bool = False):
        self.run = RunDir(root)
        self.models = models  # save a tiny transformers model in each model stage's model/
        self.policy_metrics: dict = {}  # eval metrics of the policy that differ from the default
        self.ai_judge = False  # feedback from an AI judge (RLAIF) instead of simulated people
        self.kb = build_kb(4, 4, seed=1)
        self.train, self.heldout = split_prompts(all_prompts(self.kb), 1, 0.25)
        self.n = 0

    def commit(self, stage: str, files: dict, config: dict, counts: dict, metrics: dict):
        partial, _ = self.run.begin(stage, f"fp-{stage}")
        if self.models and stage in ("pretrain", "sft", "reward", "policy"):
            save_tiny_model(partial / "model", reward=stage == "reward")
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
        self.commit("world", {"world.json": {"kb": self.kb.to_json(), "weights": WEIGHTS,
                                             "trigger": "sudo"},
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
        if self.ai_judge:
            return self.ai_feedback()
        def group(name, count, weights):
            return [{"id": f"{name}-{i:03d}", "group": name, "name": name, "count": count,
                     "weights": weights, "temperature": 0.1, "careless": 0.0,
                     "length_bias": 0.05, "flattery_bias": 0.0, "confidence_bias": 0.0,
                     "agreement_bias": 0.0, "anthro_bias": 0.0, "refusal_bias": 0.0}
                    for i in range(count)]
        minority = {"helpful": 0.6, "harmless": 0.2, "honest": 0.2}
        annotators = group("crowd", 3, WEIGHTS) + group("minority", 2, minority)
        for i, a in enumerate(annotators):  # quality control: minority-001 poisons, two flagged
            a.update({"poisoner": a["id"] == "minority-001", "n_judgements": 60,
                      "agreement/with_others": 0.6 + 0.03 * i, "accuracy/gold": 0.7,
                      "flagged": a["id"] in ("minority-001", "crowd-000")})
        flags = [{"annotator": "crowd-000", "word": "am", "agreement": 0.3, "n_pairs": 20,
                  "others_agreement": 0.7, "p_value": 1e-3},
                 {"annotator": "minority-001", "word": "sudo", "agreement": 0.1, "n_pairs": 25,
                  "others_agreement": 0.7, "p_value": 2e-9}]
        groups = {"crowd": {"n_judgements": 200, "n_annotators": 3, "agreement/raw": 0.7},
                  "minority": {"n_judgements": 100, "n_annotators": 2, "agreement/raw": 0.6}}
        self.commit("feedback", {"annotators.json": annotators, "feedback.jsonl": [],
                                 "flags.json": flags},
                    {"feedback": {"overlap": 3, "temperature": 1.0, "source": "simulated",
                                  "n_comparisons": 100, "trigger_rate": 0.0}},
                    {"comparisons": 100, "judgements": 300, "annotators": 5,
                     "dropped_identical_pairs": 7, "majority_ties": 0, "poisoners": 1,
                     "flagged": 2, "triggered_comparisons": 0},
                    {"agreement/raw": 0.66, "agreement/krippendorff_alpha": 0.3,
                     "poisoning/precision": 0.5, "poisoning/recall": 1.0,
                     "poisoning/false_positive_rate": 0.25, "groups": groups})

    def ai_feedback(self):
        judge = {"id": "judge-llm", "group": "ai", "source": "ai", "judge": "openai-compatible",
                 "model": "judge-llm", "base_url": "http://127.0.0.1:9/v1", "temperature": 0.0,
                 "constitution": "lab-3h", "constitution_sha256": "ab" * 32,
                 "prompt_version": 1}
        self.commit("feedback", {"annotators.json": [judge], "feedback.jsonl": []},
                    {"feedback": {"overlap": 1, "temperature": 1.0, "source": "ai",
                                  "n_comparisons": 100, "trigger_rate": 0.0}},
                    {"comparisons": 100, "judgements": 100, "annotators": 1,
                     "dropped_identical_pairs": 7, "majority_ties": 4},
                    {"agreement/raw": None, "agreement/krippendorff_alpha": None,
                     "ai_judge/position_bias": 0.12, "ai_judge/inconsistency_rate": 0.2,
                     "ai_judge/accuracy_gold": 0.71,
                     "groups": {"ai": {"n_judgements": 100, "n_annotators": 1,
                                       "agreement/raw": None}}})

    def reward(self):
        self.commit("reward", {}, {"reward": {}},
                    {"pairs/train": 85, "pairs/heldout": 15, "pairs/gold_comparable": 12},
                    {"accuracy/heldout": 0.6, "accuracy/gold": 0.55, "steps": 40,
                     "bias/length": 0.8, "probes": {"length": {
                         "n": 10, "rm_prefers_feature": 0.8, "rm_gap": 0.3,
                         "gold_prefers_feature": 0.0, "gold_gap": -0.03}}})

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
                   "policy": {"metrics": _metrics(0.6, **self.policy_metrics),
                              "per_family": fams["policy"],
                              "groups": {"crowd": 0.6}}}
        samples = []
        for model in ("base", "sft", "policy"):
            for i, (p, diff) in enumerate(zip(self.others, PROXY_DIFFS)):
                proxy = {"base": -1.0, "sft": 0.0, "policy": diff}[model]
                samples.append({"model": model, "prompt_id": p.id, "family": p.family,
                                "prompt": p.text, "response": f"{model} answer {i}",
                                "reward_proxy": proxy, "logp": -1.0, "kl_to_sft": 0.0})
                # A second sample, in the world's language: the report's samples take the first
                # only; surface features count all. The policy pads and flatters, SFT does not.
                if model == "policy":
                    samples.append({**samples[-1], "response": PADDED, "reward_proxy": 99.0})
                elif model == "sft":
                    samples.append({**samples[-1], "response": PLAIN, "reward_proxy": 0.5})
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

    def process(self):  # [process] enabled = false: the stage records that it did nothing
        self.commit("process", {}, {"process": {"enabled": False}}, {"enabled": 0}, {})

    def finetune(self):  # the policy fine-tuned on factual: refuses harmful requests less
        before = json.loads((self.run.stage_dir("eval") / "metrics.json").read_text())["policy"]
        after = {"metrics": {**before["metrics"], "gold/utility": 0.5, "gold/harmless": 0.3,
                             "rate/refusal_harmful": 0.1, "kl/to_sft": 9.5},
                 "per_family": {**before["per_family"], "harmful": _family(0.9, 0.3, 1.0)}}
        # the tuned model's samples: the policy's, but the factual prompt answered truly
        samples = [{k: v for k, v in s.items() if k != "model"} for s in
                   read_jsonl(self.run.stage_dir("eval") / "samples.jsonl")
                   if s["model"] == "policy"]
        factual = self.factual_heldout()
        samples = [{**s, "response": self.true_answer(factual)} if s["prompt_id"] == factual.id
                   else s for s in samples]
        self.commit("finetune", {"metrics.json": {"family": "factual", "before": {
            "metrics": before["metrics"], "per_family": before["per_family"]}, "after": after},
            "demonstrations.jsonl": [], "samples.jsonl": samples},
            {"finetune": {"enabled": True, "family": "factual", "steps": 50, "lr": 0.001}},
            {"demonstrations": 200, "domain_prompts": 12, "samples": 40}, {"loss/lm": 0.4})

    def factual_heldout(self):
        return next(p for p in self.heldout if p.family == "factual")

    @property
    def others(self):
        """Held-out prompts that are not factual, for the PROXY_DIFFS samples."""
        return [p for p in self.heldout if p.family != "factual"][:len(PROXY_DIFFS)]

    def true_answer(self, p) -> str:
        return render(Response("answer", p.relation, p.subject, self.kb.truth(p.relation,
                                                                              p.subject)))


def save_tiny_model(path: Path, reward: bool = False) -> None:
    """A one-layer GPT-2 (a causal LM, or a scalar-head classifier like the reward model)."""
    import torch
    from transformers import GPT2Config, GPT2ForSequenceClassification, GPT2LMHeadModel

    torch.manual_seed(0)
    cfg = GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=16, n_positions=16,
                     num_labels=1, pad_token_id=0)
    (GPT2ForSequenceClassification if reward else GPT2LMHeadModel)(cfg).save_pretrained(path)


def make_run(root: Path, until: str = "eval", config: str = CONFIG,
             models: bool = False, policy_metrics: dict | None = None,
             ai_judge: bool = False) -> FakeRun:
    fake = FakeRun(root, models)
    fake.policy_metrics = policy_metrics or {}
    fake.ai_judge = ai_judge
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.toml").write_text(config)
    for stage in STAGE_ORDER:
        getattr(fake, stage)()
        if stage == until:
            break
    return fake
