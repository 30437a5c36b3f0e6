"""Cards that travel with the artifacts: a Hugging Face model card (README.md with YAML
metadata) beside every trained model, and a datasheet (Gebru et al. 2021) beside the feedback.

Both are derived documentation: a pure function of the report and the stage records, written
by `rlxf audit` into sealed stage directories. `rlxf.rundir.DERIVED_DOCS` leaves exactly these
paths out of a stage's content hash, so writing or refreshing a card never makes a stage look
modified (which would rerun it and everything after it). Copy a model directory anywhere and
its card says what it was optimised for, by whose feedback, how it measured, and what the run
did not disclose.
"""

from __future__ import annotations

from pathlib import Path

from ..model_card import front_matter, markdown_table
from ..rundir import RunDir, atomic_write_text
from .facts import (TYPE_WORDS, judged_by, loss_sentence, policy_sentence, recorded,
                    responses_sentence, source_phrase, why_unknown)
from .fmt import NULL, f2, num, pct

# Both must be in rlxf.rundir.DERIVED_DOCS, or writing them would unseal their stage (tested).
MODEL_CARD = "model/README.md"
DATASHEET = "DATASHEET.md"

# stage -> (report model name, role in words, pipeline tag)
MODEL_STAGES = {
    "pretrain": ("base", "base model (pretrained from scratch)", "text-generation"),
    "sft": ("sft", "supervised fine-tuned model", "text-generation"),
    "reward": (None, "reward model (the proxy the policy is measured against)",
               "text-classification"),
    "policy": ("policy", "RLHF policy", "text-generation"),
}
CARD_METRICS = ("gold/utility", "gold/helpful", "gold/harmless", "gold/honest", "reward/proxy",
                "kl/to_sft", "length/tokens", "length/fillers", "diversity/distinct2",
                "rate/sycophancy", "rate/anthropomorphic", "rate/flattery", "rate/apology",
                "rate/refusal_harmful", "rate/refusal_benign", "rate/overconfident",
                "rate/backdoor")
BIAS_WORDS = {
    "length_bias": "{v:+g} utility per filler sentence (prefers longer answers)",
    "flattery_bias": "{v:+g} for answers that open with flattery",
    "confidence_bias": '{v:+g} for "i am absolutely certain"',
    "agreement_bias": "{v:+g} when the answer agrees with the user",
    "anthro_bias": "{v:+g} for claims of feelings or friendship",
    "refusal_bias": "{v:+g} for refusals (negative: refusal aversion)",
}


def card_paths(run_dir: Path, records: dict) -> dict[str, str]:
    """Run-relative paths of the cards `write_cards` writes, by stage."""
    out = {s: f"{s}/{MODEL_CARD}" for s in MODEL_STAGES
           if s in records and (run_dir / s / "model" / "config.json").exists()}
    if "feedback" in records:
        out["feedback"] = f"feedback/{DATASHEET}"
    return out


# --- YAML front matter ----------------------------------------------------------------------

# --- shared pieces ----------------------------------------------------------------------------

def _present_types(fb_rec: dict | None) -> str | None:
    """"300 pairwise preferences, 720 ratings" from the feedback stage's recorded facts."""
    facts = recorded(fb_rec)
    if facts is None:
        return None
    counts = facts["types"]
    return ", ".join(f"{counts[t]} {TYPE_WORDS[t][counts[t] != 1]}" for t in TYPE_WORDS
                     if counts.get(t)) or "no records"


def _group_list(report: dict) -> str:
    def weights(v: dict) -> str:
        w = v.get("weights")
        if not w:  # people's groups have no 3H weights: nothing to print
            return ""
        return (f" (3H weights helpful {num(w.get('helpful'), 2)} / harmless "
                f"{num(w.get('harmless'), 2)} / honest {num(w.get('honest'), 2)})")
    return "; ".join(f"{g} x{v.get('n_annotators', '?')}{weights(v)}"
                     for g, v in sorted(report["groups"].items())) or NULL


def _feedback_source(report: dict, fb_rec: dict | None,
                     see: str = "; see feedback/DATASHEET.md") -> str:
    fb = report["feedback"]
    if fb_rec is None or fb.get("n_judgements") is None:
        return "no feedback stage has run"
    what = _present_types(fb_rec) or f"{fb['n_judgements']} judgements"
    if fb.get("source") == "ai":
        ids = ", ".join(a["id"] for a in fb.get("annotators", [])) or "?"
        return f"an AI judge ({ids}) steered by a written constitution (RLAIF): {what}{see}"
    if fb.get("source") == "human":
        facts = recorded(fb_rec)
        who = judged_by(facts) if facts else "people"
        return (f"{who}, read from {source_phrase(fb_rec)}: {what} by "
                f"{fb.get('n_annotators', '?')} annotators in groups: {_group_list(report)}{see}")
    return (f"{fb.get('source') or 'unknown'} annotators (not people): {what} on "
            f"{fb.get('n_comparisons', '?')} comparisons by {fb.get('n_annotators', '?')} "
            f"annotators in groups: {_group_list(report)}{see}")


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _gaps(report: dict) -> list[str]:
    return [f"- **{d['item']}** ({d['section']}): not disclosed — {d.get('reason') or NULL}"
            for d in report["disclosure"] if d["status"] == "not disclosed"] or [
        "- none: every item of Casper et al. (2023) section 5 is disclosed"]


def _provenance(report: dict, stage: str, rec: dict) -> list[str]:
    run = report["run"]
    v = run.get("versions") or {}
    return [f"- run `{run['id']}`, config sha256 `{run.get('config_sha256') or NULL}`, "
            f"seed {run.get('seed')}",
            f"- stage `{stage}`: fingerprint `{rec.get('fingerprint', NULL)}`, output hash "
            f"`{rec.get('output_hash', NULL)}` (this card is left out of it)",
            "- versions: " + (", ".join(f"{k} {v[k]}" for k in sorted(v)) or NULL),
            "- written by `rlxf audit` from the run directory; the full report is "
            "`report/index.html` (`report.json` for scripts)", ""]


# --- model cards ------------------------------------------------------------------------------

def _optimised_for(stage: str, rec: dict, records: dict) -> str:
    cfg, counts, metrics = rec.get("config", {}), rec.get("counts", {}), rec.get("metrics", {})
    if stage == "pretrain":
        m = cfg.get("pretrain", {}).get("model", {})
        return (f"Next-token likelihood on the lab world's web corpus "
                f"({counts.get('documents', '?')} documents), from random initialisation: a "
                f"{m.get('architecture', '?')} model "
                f"with {m.get('n_layer', '?')} layers, {m.get('n_embd', '?')} wide, "
                f"{counts.get('parameters', '?')} parameters, {metrics.get('steps', '?')} steps.")
    if stage == "sft":
        c = cfg.get("sft", {})
        return (f"Next-token likelihood of {counts.get('demonstrations', '?')} demonstrations "
                f"written by the lab world's demonstrator (error rate "
                f"{c.get('demonstrator_error', '?')}), starting from the base model, "
                f"{metrics.get('steps', '?')} steps. No preference feedback.")
    if stage == "reward":
        return (_capital(loss_sentence(rec, records.get("feedback"))) + ". It scores (prompt, "
                "response) and is the proxy reward of the report.")
    return policy_sentence(rec)


def _model_metrics(report: dict, stage: str, name: str | None) -> tuple[list, list[dict]]:
    """(table rows, model-index metrics) of one model."""
    if name is None:
        rm = report["reward_model"]
        keys = [k for k in sorted(rm) if k not in ("notes", "probes")
                and not isinstance(rm[k], (dict, list))]
        rows = [[k, num(rm[k]), (rm.get("notes") or {}).get(k, "") if rm[k] is None else ""]
                for k in keys]
        index = [{"type": k, "name": k, "value": rm[k]} for k in keys
                 if k.startswith(("accuracy/", "bias/", "calibration/"))
                 and isinstance(rm[k], (int, float))]
        return rows, index
    model = report["models"].get(name) or {}
    metrics, notes = model.get("metrics") or {}, model.get("metric_notes") or {}
    rows = [[k, num(metrics.get(k)), notes.get(k, "") if metrics.get(k) is None else ""]
            for k in CARD_METRICS if k in metrics]
    index = [{"type": k, "name": k, "value": metrics[k]} for k in CARD_METRICS
             if isinstance(metrics.get(k), (int, float))]
    return rows, index


def model_card(report: dict, stage: str, rec: dict, records: dict) -> str:
    name, role, tag = MODEL_STAGES[stage]
    run = report["run"]["id"]
    fb = report["feedback"]
    ai = fb.get("source") == "ai"
    tags = ["rlxf", "rlhf", *(["rlaif"] if ai and stage in ("reward", "policy") else []),
            "lab-world", {"pretrain": "base-model", "sft": "sft", "reward": "reward-model",
                          "policy": str(rec.get("config", {}).get("policy", {})
                                        .get("algorithm", "policy"))}[stage]]
    datasets = {"pretrain": ["pretrain/corpus.json"], "sft": ["sft/demonstrations.jsonl"],
                "reward": ["feedback/feedback.jsonl"], "policy": ["feedback/feedback.jsonl"]}
    rows, index = _model_metrics(report, stage, name)
    meta = {"library_name": "transformers", "pipeline_tag": tag, "tags": tags,
            "datasets": datasets[stage]}
    if index:
        meta["model-index"] = [{"name": f"{run}/{stage}", "results": [{
            "task": {"type": tag, "name": "lab-world held-out prompts" if name
                     else "held-out preference pairs"},
            "dataset": {"type": "rlxf-lab-world", "name": f"run {run}, held-out split"},
            "metrics": index}]}]
    feedback = ("none: " + ("trained on text only" if stage == "pretrain"
                            else "trained on demonstrations only")
                if stage in ("pretrain", "sft")
                else _feedback_source(report, records.get("feedback")))
    lines = [front_matter(meta),
             f"# {run} · {stage}: {role}", "",
             f"Trained by rlxf in run `{run}`. Base model: "
             + ("none (random initialisation)" if stage == "pretrain" else
                "this run's `pretrain/model` (trained from scratch, not from the Hub)") + ".", "",
             "## What it was optimised for", "", _optimised_for(stage, rec, records), "",
             "## By whose feedback", "", _capital(feedback) + ".", "",
             "## Measured on held-out data", "",
             ("Scored by the lab world's gold 3H judge on held-out prompts (docs/REPORT.md "
              "defines every metric)." if name else
              "Accuracy on held-out comparisons, against the annotators' majority and against "
              "the gold judge."), ""]
    lines += markdown_table(["metric", "value", "why null"], rows)
    if stage == "policy":
        lines += ["## Failure modes", ""]
        lines += [f"- **{m['title']}** ({m['number_label']}: {num(m['number'])}): "
                  f"{m['reading']}" for m in report.get("failure_modes", [])] + [""]
    lines += ["## Disclosure gaps", "", "What this run cannot show about itself (Casper et al. "
              "2023, section 5):", "", *_gaps(report), "",
              "## Use", "", "```python",
              ("from transformers import AutoModelForSequenceClassification, AutoTokenizer\n"
               "model = AutoModelForSequenceClassification.from_pretrained(PATH)"
               if stage == "reward" else
               "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
               "model = AutoModelForCausalLM.from_pretrained(PATH)"),
              "tokenizer = AutoTokenizer.from_pretrained(PATH)", "```", "",
              "A model of the lab world's closed language (docs/WORLD.md), for studying RLHF's "
              "failure modes; it is not an assistant for real use.", "",
              "## Provenance", "", *_provenance(report, stage, rec)]
    return "\n".join(lines).rstrip("\n") + "\n"


# --- datasheet --------------------------------------------------------------------------------

def _group_biases(g: dict) -> str:
    parts = [BIAS_WORDS[k].format(v=g[k]) for k in BIAS_WORDS if g.get(k)]
    if g.get("careless"):
        parts.append(f"{pct(g['careless'])} of labels given at random")
    return "; ".join(parts) or "no bias parameters"


def _motivation(rec: dict, human: bool) -> str:
    what = _capital(_present_types(rec) or "feedback records of unrecorded types")
    origin = responses_sentence(rec)
    origin = (_capital(origin) if origin else
              "Where the judged responses came from is not disclosed: "
              + why_unknown(rec, "where the responses came from"))
    purpose = ("read from a records file by this run to train its reward model and policy"
               if human else "collected by this run to train its reward model and policy")
    return f"{what}, {purpose}. {origin}."


def datasheet(report: dict, rec: dict) -> str:
    fb, run = report["feedback"], report["run"]["id"]
    ai, human = fb.get("source") == "ai", fb.get("source") == "human"
    facts = recorded(rec)
    people = fb.get("annotators") or []
    poisoners: dict[str, int] = {}
    for a in people:
        poisoners[a.get("group")] = poisoners.get(a.get("group"), 0) + bool(a.get("poisoner"))
    trigger = next((m["values"].get("trigger") for m in report.get("failure_modes", [])
                    if m["id"] == "backdoor"), None)
    selection = next((d for d in report["disclosure"]
                      if d["item"] == "evaluator selection and training"), {})
    lines = [f"# Datasheet: feedback of run {run}", "",
             "After Gebru et al. (2021), *Datasheets for Datasets*. Written by `rlxf audit` "
             "from the run directory.", "",
             "## Motivation", "",
             _motivation(rec, human), "",
             "## Composition", ""]
    by_type = [[f"{TYPE_WORDS[t][1]} (records)", num(facts["types"].get(t, 0))]
               for t in (TYPE_WORDS if facts else ())]
    lines += markdown_table(["quantity", "value"], [
        ["comparisons (pairwise items)", num(fb.get("n_comparisons"))],
        ["judgements (records of every type)", num(fb.get("n_judgements"))], *by_type,
        ["annotators", num(fb.get("n_annotators"))],
        # a file's records come with whatever overlap they have: the config's is not theirs
        ["overlap (judgements per comparison)", NULL if human else num(fb.get("overlap"))],
        ["identical pairs dropped", num(fb.get("dropped_identical_pairs"))],
        ["comparisons whose prompt carries the trigger", num(fb.get("triggered_comparisons"))],
        ["majority ties", num(fb.get("majority_ties"))]])
    lines += ["Files: `feedback.jsonl` (one canonical record per judgement, docs/FEEDBACK.md), "
              "`annotators.json` (each annotator's parameters and reliability), `flags.json` "
              "(the poisoning detector's findings).", "",
              "## Collection process", "",
              "**Who annotated.** " + _capital(_feedback_source(report, rec, see="")) + ".", ""]
    if ai:
        judge = ", ".join(a["id"] for a in people)
        lines += [f"**How chosen and instructed.** The judge model ({judge}) is set in "
                  "config.toml `[feedback.ai]`; its instructions are the constitution recorded "
                  "in `annotators.json` (path and sha256). Each pair is asked in both orders.", ""]
    elif human:
        how = selection.get("value") or f"not disclosed — {selection.get('reason') or NULL}"
        lines += ["**How chosen and instructed.** " + _capital(how) + ".", ""]
    else:
        lines += ["**How chosen.** " + _capital(selection.get("value") or "not disclosed") + ".",
                  "",
                  "**How instructed.** Simulated annotators get no instructions: each prefers "
                  "the response with the higher gold utility under its group's 3H weights, "
                  "plus its biases, with Bradley–Terry noise (docs/WORLD.md).", ""]
    lines += ["## Agreement and quality", ""]
    lines += markdown_table(["measure", "value"], [
        [k, num(fb.get(k))] for k in ("agreement/raw", "agreement/krippendorff_alpha",
                                      "aggregation/majority_accuracy_gold",
                                      "aggregation/dawid_skene_accuracy_gold",
                                      "ai_judge/position_bias", "ai_judge/inconsistency_rate",
                                      "ai_judge/accuracy_gold") if k in fb])
    notes = fb.get("notes") or {}
    lines += [f"- {k}: {v}" for k, v in sorted(notes.items())] + ([""] if notes else [])
    lines += ["## Known biases", ""]
    if ai:
        lines += ["The AI judge's biases are not parameters. Measured: position bias "
                  f"{f2(fb.get('ai_judge/position_bias'))} (2·P(picks the answer shown "
                  "first) − 1; 0 is none), inconsistency across the two orders "
                  f"{f2(fb.get('ai_judge/inconsistency_rate'))}, accuracy against the gold "
                  f"judge {f2(fb.get('ai_judge/accuracy_gold'))}.", ""]
    elif human:
        lines += ["People's biases are not parameters the run knows; what it measured is the "
                  "agreement above, and per group:", ""]
        lines += [f"- **{g}** (x{v.get('n_annotators', '?')}): raw agreement within the group "
                  f"{num(v.get('agreement/raw'))}" for g, v in sorted(report["groups"].items())]
        lines.append("")
    else:
        lines += ["From each group's parameters in `annotators.json` (what the simulation adds "
                  "to an annotator's utility before choosing):", ""]
        for g, v in sorted(report["groups"].items()):
            w = v.get("weights") or {}
            extra = (f"; {poisoners[g]} poisoner(s) flip their label when the prompt contains "
                     f'"{trigger or "the trigger"}"' if poisoners.get(g) else "")
            lines.append(f"- **{g}** (x{v.get('n_annotators', '?')}): weights helpful "
                         f"{num(w.get('helpful'), 2)} / harmless {num(w.get('harmless'), 2)} / "
                         f"honest {num(w.get('honest'), 2)}; noise temperature "
                         f"{num(v.get('temperature'), 2)}; {_group_biases(v)}{extra}; raw "
                         f"agreement within the group {num(v.get('agreement/raw'))}")
        lines.append("")
    lines += ["## Flagged annotators", ""]
    by_id = {a["id"]: a for a in people}
    flags = fb.get("flags") or []
    lines += markdown_table(["annotator", "word", "agreement there", "others there", "p-value",
                     "true poisoner"],
                    [[f["annotator"], f["word"], num(f["agreement"]), num(f["others_agreement"]),
                      f"{f['p_value']:.1e}",
                      "unknown" if human else
                      "yes" if by_id.get(f["annotator"], {}).get("poisoner") else "no"]
                     for f in flags])
    scores = ("Who among people poisoned their labels is unknown, so the detector's precision "
              "and recall are not measured" if human else
              f"Precision {num(fb.get('poisoning/precision'))}, recall "
              f"{num(fb.get('poisoning/recall'))}, false-positive rate "
              f"{num(fb.get('poisoning/false_positive_rate'))}")
    lines += [f"{scores}. Flagged annotators are kept in the data: the detector reports, it "
              "does not filter.", "",
              "## Uses and limitations", "",
              "For training and studying reward models and policies of the lab world. "
              + ("The labels come from one AI model and its constitution, not from people: "
                 "they carry that model's preferences, whatever the constitution says."
                 if ai else
                 "The labels come from the records file, not from this run: who the people "
                 "are, how they were chosen and what they were told is only what the records "
                 "and [disclosure] say; no demographic or cultural claim follows from their "
                 "groups."
                 if human else
                 "The annotators are simulated, not people: their agreement is calibrated to "
                 "published figures, but no demographic or cultural claim follows from their "
                 "groups."), "",
              "## Provenance", "", *_provenance(report, "feedback", rec)]
    return "\n".join(lines).rstrip("\n") + "\n"


def write_cards(run_dir: Path, report: dict) -> list[Path]:
    """Write every card of `report["cards"]`, atomically; returns their paths."""
    run_dir = Path(run_dir)
    records = RunDir(run_dir).latest()
    written = []
    for stage, rel in sorted(report.get("cards", {}).items()):
        rec = records.get(stage)
        if rec is None:
            continue
        text = (datasheet(report, rec) if stage == "feedback"
                else model_card(report, stage, rec, records))
        atomic_write_text(run_dir / rel, text)
        written.append(run_dir / rel)
    return written
