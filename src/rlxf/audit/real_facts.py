"""The disclosure checklist of a real-model run (`rlxf sft|reward|dpo|kto|grpo|rloo|ppo`), each
sentence built only from what the command recorded in its ledger record (tune/run_record.py):
the data file, its format and row shapes, counts, what the rows say about who judged and where
the responses came from, the options, the metrics, the reward sources. Where the record cannot
support a sentence the item is "not disclosed" with the reason; where the item cannot apply to
the command (DPO trains no reward model) it is "not applicable". Nothing here speaks of the lab
world: a real run has no simulated annotators and no gold judge.

METHOD (rlxf/model_card.py) is the one wording of what each command trains; the model cards the
commands write (tune/common.py, tune/rl_card.py) use it too.
"""

from __future__ import annotations

from ..model_card import ASPECTS_METHOD, METHOD
from .facts import TYPE_WORDS, _join

RL_COMMANDS = ("grpo", "rloo", "ppo")
PREFERENCE_COMMANDS = ("reward", "dpo", "kto")
FORMAT_WORDS = {
    "trl": "TRL preference format", "canonical": "rlxf's canonical feedback records",
    "trl-sft": "TRL SFT format", "trl-unpaired": "TRL unpaired (KTO) format",
    "prompts": "a prompt file (JSONL rows with `prompt`)",
}
SOURCE_WORDS = {"function": "reward function", "reward_model": "reward-model directory",
                "ai_judge": "AI judge", "gold": "lab gold judge"}
NOT_DISCLOSED, NOT_APPLICABLE = "not disclosed", "not applicable"


def is_rl(rec: dict) -> bool:
    return rec.get("stage") in RL_COMMANDS


def method(rec: dict) -> str:
    if rec.get("stage") == "reward" and rec.get("config", {}).get("aspects"):
        return ASPECTS_METHOD
    return METHOD.get(rec.get("stage"), f"`rlxf {rec.get('stage')}`")


def format_words(fmt: str | None) -> str:
    if not fmt:
        return "format not recorded"
    base, _, rest = fmt.partition(" ")  # KTO's "trl (pairs split)"
    words = FORMAT_WORDS.get(base, f"{base} format (rlxf data import)")
    return f"{words} {rest}".strip()


def _data(rec: dict) -> dict:
    return rec.get("inputs", {}).get("data") or {}


def _file_phrase(rec: dict) -> str:
    d = _data(rec)
    sha = d.get("sha256")
    return (f"{d.get('file', 'a file not recorded')}"
            + (f" (sha256 {sha[:12]}…, {format_words(d.get('format'))})" if sha else
               f" ({format_words(d.get('format'))})"))


SHAPE_WORDS = {"standard": "standard (prompt / chosen / rejected strings)",
               "conversational": "conversational (message lists)"}


def _shapes(facts: dict | None) -> str:
    shapes = (facts or {}).get("row_shapes") or {}
    return (_join([f"{n} {SHAPE_WORDS.get(shape, shape)}" for shape, n in shapes.items()])
            + " rows") if shapes else ""


def _is_trl(rec: dict) -> bool:
    return str(_data(rec).get("format") or "").startswith("trl")


def who_judged(rec: dict) -> str | None:
    """Who wrote the feedback, where the file says it; None where it does not (a TRL file
    names nobody: the importer's placeholder is not a fact about the data)."""
    facts = rec.get("data_facts") or {}
    judged = {s: n for s, n in (facts.get("judged_by") or {}).items() if n}
    if _is_trl(rec) or not judged:
        return None
    words = {"human": "people", "ai": "an AI judge", "simulated": "simulated annotators"}
    return _join([f"{words.get(s, s)} ({n} record{'' if n == 1 else 's'})"
                  for s, n in judged.items()])


def _who_unknown(rec: dict) -> str:
    what = "the demonstrations" if rec.get("stage") == "sft" else "the preferences"
    if _is_trl(rec):
        return (f"{_file_phrase(rec)} does not say who wrote {what} (TRL rows carry no "
                "annotator or source fields)")
    if rec.get("data_facts") is None:
        return f"the ledger record has no facts about the rows of {_file_phrase(rec)}"
    return f"no record of {_file_phrase(rec)} says who wrote {what}"


def responses_origin(rec: dict) -> str | None:
    """Where the judged responses came from, where the file's records say (a public dataset's
    importer names the dataset); None for TRL files and records without provenance."""
    origins = (rec.get("data_facts") or {}).get("responses_from") or {}
    known = {o: n for o, n in origins.items() if o != "unknown"}
    if _is_trl(rec) or not known:
        return None
    return _join([f"{o} ({n} records)" for o, n in known.items()])


def rewards_sentence(rec: dict) -> str | None:
    rewards = rec.get("inputs", {}).get("rewards")
    if not rewards:
        return None
    parts = [f"{r.get('spec') or r.get('name')} ({SOURCE_WORDS.get(r.get('kind'), r.get('kind'))}"
             f", weight {r.get('weight')}"
             + (f", file sha256 {r['sha256'][:12]}…" if r.get("sha256") else "") + ")"
             for r in rewards]
    return ("the weighted sum of " if len(parts) > 1 else "") + _join(parts)


def _n(rec: dict, key: str):
    value = rec.get("counts", {}).get(key)
    return "?" if value is None else value


# --- the items --------------------------------------------------------------------------------

def _pretraining(rec: dict):
    return None, (f"rlxf did not pretrain the base model {rec['inputs'].get('base_model')}; "
                  "its pretraining data is not recorded in this run (its publisher's card may "
                  "say)")


def _evaluators(rec: dict):
    if is_rl(rec):
        return (f"no people judged: every reward came from {rewards_sentence(rec)}"
                if rewards_sentence(rec) else None,
                "the ledger record names no reward sources")
    who = who_judged(rec)
    if who is None:
        return None, _who_unknown(rec) + "; how the evaluators were selected and trained is " \
                                         "not recorded"
    return None, (f"the records say they were written by {who}; how they were selected and "
                  "trained is not recorded")


def _examples(rec: dict):
    c, cfg = rec.get("counts", {}), rec.get("config", {})
    if is_rl(rec):
        return (f"{_n(rec, 'prompts')} prompts of {_file_phrase(rec)}: {_n(rec, 'train')} "
                f"trained on, {_n(rec, 'heldout')} held out for the eval points "
                f"(eval_fraction {cfg.get('eval_fraction', '?')}), "
                f"{_n(rec, 'skipped_too_long')} left out as too long; the completions are the "
                f"policy's own samples (temperature {cfg.get('temperature', '?')}, at most "
                f"{cfg.get('max_new_tokens', '?')} new tokens)"), ""
    shapes = _shapes(rec.get("data_facts"))
    read = (f"{c['records']} records" if "records" in c else
            f"{c['rows']} rows" if "rows" in c else shapes or "rows")
    origin = responses_origin(rec)
    return (f"every row of {_file_phrase(rec)}: {read}"
            + (f" ({shapes})" if shapes and read != shapes else "")
            + (f", {c['pairs']} preference pairs" if "pairs" in c else "")
            + f"; {_n(rec, 'examples')} examples trained on ({c.get('truncated', 0)} cut at "
              f"max_length {cfg.get('max_length', '?')}, {c.get('skipped_too_long', 0)} "
              "skipped as too long)"
            + (f"; no majority for {c['no_majority']} items" if c.get("no_majority") else "")
            + "; where the responses came from: "
            + (origin or "not recorded in the file")), ""


def _feedback_types(rec: dict):
    stage, c = rec.get("stage"), rec.get("counts", {})
    facts = rec.get("data_facts") or {}
    if is_rl(rec):
        return (f"no feedback data: scalar rewards computed on the policy's own samples by "
                f"{rewards_sentence(rec) or 'reward sources not recorded'}"), ""
    if stage == "kto" and "labels" in facts:
        lab = facts["labels"]
        return (f"binary good / bad labels: {lab['desirable']} desirable and "
                f"{lab['undesirable']} undesirable examples; no pairwise preferences, "
                "rankings or ratings"), ""
    types = facts.get("types")
    if stage == "sft" and not types:
        return (f"demonstrations: {_n(rec, 'examples')} prompt / response examples"
                + (f" ({_shapes(facts)})" if _shapes(facts) else "")
                + "; no preferences, rankings or ratings"), ""
    if not types:
        return None, f"the ledger record has no facts about the rows of {_file_phrase(rec)}"
    present = [f"{n} {TYPE_WORDS[t][1 if n != 1 else 0]}" for t, n in types.items() if n]
    text = _join(present) if present else "no records"
    if stage == "sft":
        text += f"; trained on the chosen response of {_n(rec, 'pairs')} pairs (demonstrations)"
    elif stage == "kto":
        text += (f"; each of the {_n(rec, 'pairs')} pairs split into a desirable (chosen) and "
                 "an undesirable (rejected) example")
    elif "pairs" in c:
        text += f", reduced to {c['pairs']} preference pairs by majority"
    who = who_judged(rec)
    return (text + "; who judged: "
            + (who or f"not disclosed ({_who_unknown(rec)})")), ""


def _quality(rec: dict):
    if is_rl(rec):
        return None, "no feedback was collected: rewards are computed, so no agreement exists"
    return None, (f"`rlxf {rec.get('stage')}` trains on the file as given: it measured no "
                  "agreement between annotators and screened no rows")


def _rm_loss(rec: dict):
    stage, cfg, m = rec.get("stage"), rec.get("config", {}), rec.get("metrics", {})
    if is_rl(rec):
        return (f"no reward model trained here; the policy was optimised against "
                f"{rewards_sentence(rec)}" if rewards_sentence(rec) else None,
                "the ledger record names no reward sources")
    if stage != "reward":
        return NOT_APPLICABLE, f"`rlxf {stage}` trains no reward model"
    if cfg.get("aspects"):
        return (f"{ASPECTS_METHOD} (mean squared error per aspect) over "
                f"{rec['inputs'].get('base_model')} on {_n(rec, 'examples')} rated responses, "
                f"{m.get('steps', cfg.get('steps', '?'))} steps"), ""
    centre = cfg.get("center_coefficient")
    return (f"Bradley–Terry pairwise loss on a scalar head over "
            f"{rec['inputs'].get('base_model')}, trained on {_n(rec, 'examples')} preference "
            f"pairs (each item's majority label), {m.get('steps', cfg.get('steps', '?'))} steps"
            + (f", reward centring {centre}" if centre else "")), ""


def _rm_eval(rec: dict):
    stage = rec.get("stage")
    if is_rl(rec):
        return None, "the reward sources were not evaluated by this run"
    if stage != "reward":
        return NOT_APPLICABLE, f"`rlxf {stage}` trains no reward model"
    acc = rec.get("metrics", {}).get("accuracy/train", rec.get("metrics", {}).get("accuracy"))
    return None, ("`rlxf reward` evaluates on no held-out pairs"
                  + (f" (training accuracy {acc:.3f} only)" if isinstance(acc, float) else "")
                  + "; no red teaming")


def _point(h: dict | None, key: str) -> str:
    v = (h or {}).get(key)
    return "not measured" if v is None else f"{v:.4g}"


def _policy_eval(rec: dict):
    stage = rec.get("stage")
    if stage == "reward":
        return NOT_APPLICABLE, "`rlxf reward` trains a reward model, not a policy"
    history = rec.get("history") or []
    if is_rl(rec) and history:
        first, last, cfg = history[0], history[-1], rec.get("config", {})
        return (f"at {len(history)} eval points (steps {first.get('step')}–{last.get('step')}) on "
                f"{_n(rec, 'heldout')} held-out prompts × {cfg.get('eval_samples', '?')} samples: "
                f"reward {_point(first, 'reward/mean')} → {_point(last, 'reward/mean')}, KL to "
                f"the reference {_point(first, 'kl/to_reference')} → "
                f"{_point(last, 'kl/to_reference')} nats; measured with the reward the policy "
                "was trained on, so it shows the optimisation worked, not that the model is "
                "better; no red teaming"), ""
    return None, (f"`rlxf {stage}` measured nothing on held-out prompts"
                  + (" (no prompts were held out)" if is_rl(rec) else "")
                  + "; `rlxf eval` measures a policy against its reference")


def _lora(cfg: dict) -> str:
    lora = cfg.get("lora")
    if not lora:
        return "full fine-tuning (no LoRA)"
    return (f"LoRA r={lora.get('r')}, alpha={lora.get('alpha')} on "
            f"{', '.join(lora.get('targets') or [])}"
            + (", merged into the saved model" if cfg.get("merge") else ", adapter saved"))


def _training(rec: dict):
    cfg, m, out = rec.get("config", {}), rec.get("metrics", {}), rec.get("output", {})
    knobs = [f"{m.get('steps', cfg.get('steps', '?'))} steps",
             f"batch {cfg.get('batch_size', '?')} × {cfg.get('grad_accum', 1)} accumulated",
             f"lr {cfg.get('lr', '?')} (warm-up {cfg.get('warmup_steps', '?')} steps, cosine)"]
    if "beta" in cfg:
        knobs.append(f"beta {cfg['beta']}")
    if rec.get("stage") in ("grpo", "rloo"):
        knobs.append(f"group size {cfg.get('group_size', '?')}")
    if rec.get("stage") == "grpo":
        knobs.append(f"loss_type {cfg.get('loss_type', '?')}")
    if rec.get("stage") == "ppo":
        knobs.append(f"KL coefficient {cfg.get('ppo', {}).get('kl_coef', '?')}")
    resolved = rec.get("resolved") or {}
    knobs += [f"precision {cfg.get('precision', '?')}"
              + (f" (ran as {resolved['precision']} on {resolved.get('device', '?')}, "
                 f"{resolved.get('processes', '?')} process"
                 f"{'' if resolved.get('processes') == 1 else 'es'})" if resolved else ""),
              f"max_length {cfg.get('max_length', '?')}", f"seed {cfg.get('seed', '?')}"]
    params = (f"; {m['parameters/trainable']} of {m['parameters/total']} parameters trained"
              if "parameters/trainable" in m and "parameters/total" in m else "")
    return (f"`rlxf {rec.get('stage')}`: {method(rec)}, from the base model "
            f"{rec['inputs'].get('base_model')}; {_lora(cfg)}; {', '.join(knobs)}{params}; "
            f"saved: {out.get('saved', '?')}{_value_head(out)}; "
            f"chat format: {out.get('chat_format', '?')}"), ""


def _value_head(out: dict) -> str:
    head = out.get("value_head")  # rlxf ppo's critic (tune/value_head.py)
    if not head:
        return ""
    init = head["initialised_from"]
    return (f" and its value head {head['file']} ({head['module']} on the last hidden state, "
            f"initialised from {'zeros' if init == 'zeros' else init['file']})")


def _unasked(rec: dict):
    return None, f"`rlxf {rec.get('stage')}` takes no disclosure answers and its record does not say"


HF, RM, POL, SAFETY = "Human feedback", "Reward model", "Policy", "Systemic safety"
ITEMS = (  # Casper et al.'s checklist in the paper's order, plus the training procedure
    (HF, "pretraining", _pretraining),
    (HF, "evaluator selection and training", _evaluators),
    (HF, "example selection", _examples),
    (HF, "feedback types", _feedback_types),
    (HF, "quality assurance and inter-annotator agreement", _quality),
    (RM, "loss function and disagreement modelling", _rm_loss),
    (RM, "reward model evaluation and red teaming", _rm_eval),
    (POL, "training procedure", _training),
    (POL, "policy evaluation and red teaming", _policy_eval),
    (SAFETY, "internal and external audits", _unasked),
    (SAFETY, "expected risks and failure modes", _unasked),
    (SAFETY, "monitoring and correcting failures", _unasked),
)


def _entry(section: str, item: str, value: str | None, reason: str, source: list[str]) -> dict:
    status = ("not applicable" if value == NOT_APPLICABLE else
              "disclosed" if value is not None else NOT_DISCLOSED)
    disclosed = status == "disclosed"
    return {"section": section, "item": item, "status": status,
            "value": value if disclosed else None, "source": source if disclosed else None,
            "reason": None if disclosed else reason}


def real_disclosure(rec: dict) -> list[dict]:
    """The checklist for one training record (its ledger line)."""
    source = [f"ledger.jsonl ({rec.get('stage')})"]
    return [_entry(section, item, *fn(rec), source) for section, item, fn in ITEMS]


def missing_record_disclosure(reason: str) -> list[dict]:
    """The checklist when no training record is in the ledger: every item not disclosed."""
    return [_entry(section, item, None, reason, []) for section, item, _ in ITEMS]
