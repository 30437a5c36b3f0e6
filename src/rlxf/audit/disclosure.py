"""The disclosure checklist of Casper et al. (2023), section 5 / Figure 4, filled from the run's
own records. What a run cannot know about itself (audits, expected risks, monitoring) comes from
the config's `[disclosure]` free text; without it the item says "not disclosed" rather than guess.

Every item is {section, item, status, value, source, reason}: `value` is a short sentence when
disclosed and null otherwise, `source` names the files it was read from, `reason` says why an
item is not disclosed.
"""

from __future__ import annotations

import json
import tomllib
from collections import Counter
from pathlib import Path

from .facts import (judged_by, loss_sentence, recorded, responses_sentence, source_phrase,
                    types_sentence, why_unknown)
from .oversight import verification_sentence

STATUSES = ("disclosed", "not disclosed", "not applicable")
FREE_TEXT_KEYS = ("evaluator_selection", "expected_risks", "monitoring", "audits")
BIASES = ("length_bias", "flattery_bias", "confidence_bias", "agreement_bias", "anthro_bias",
          "refusal_bias")


def load_config_text(run_dir: Path) -> dict:
    """RUN/config.toml as a dict ({} when absent). A config that does not parse is an error that
    names the file: silently treating it as empty would report "not disclosed" for answers the
    user did give."""
    path = run_dir / "config.toml"
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{path}: not valid TOML: {e}") from None


def free_text(config: dict) -> dict[str, str]:
    section = config.get("disclosure") or {}
    return {k: section[k].strip() for k in FREE_TEXT_KEYS
            if isinstance(section.get(k), str) and section[k].strip()}


def _f(x, digits: int = 3) -> str:
    return "not computable" if x is None else f"{x:.{digits}f}"


def _item(section: str, item: str, value: str | None, source: list[str] | None = None,
          reason: str | None = None) -> dict:
    return {"section": section, "item": item,
            "status": "disclosed" if value is not None else "not disclosed",
            "value": value, "source": source if value is not None else None,
            "reason": None if value is not None else reason}


def _missing(*stages: str) -> str:
    return f"stage {' / '.join(stages)} has not run"


def _pretraining(records: dict, run_dir: Path) -> tuple[str | None, list, str]:
    rec = records.get("pretrain")
    if rec is None:
        return None, [], _missing("pretrain")
    corpus = json.loads((run_dir / "pretrain" / "corpus.json").read_text())
    docs = corpus.get("documents", {})
    facts = docs.get("fact_statement", 0)
    conv = {k.split("/", 1)[1]: v for k, v in docs.items() if k.startswith("conversation/")}
    model = rec["config"]["pretrain"].get("model", {})
    value = (f"{corpus.get('description', 'corpus not described')}; "
             f"{rec['counts'].get('documents', sum(docs.values()))} documents: "
             f"{sum(conv.values())} conversations over {len(conv)} prompt families, "
             f"{facts} knowledge-base statements; a {model.get('architecture', '?')} model "
             f"({model.get('n_layer', '?')} layers, {model.get('n_embd', '?')} wide, "
             f"{rec['counts'].get('parameters', '?')} parameters) trained from scratch for "
             f"{rec['metrics'].get('steps', '?')} steps")
    return value, ["pretrain/corpus.json", "pretrain/_stage.json"], ""


def _describe_group(name: str, members: list[dict]) -> str:
    a = members[0]  # a group's members share their parameters (feedback.simulated.build_pool)
    w = a.get("weights", {})
    biases = ", ".join(f"{b.removesuffix('_bias')} {a[b]:+g}" for b in BIASES if a.get(b))
    truth = (f"weights helpful {w.get('helpful', 0):g} / harmless {w.get('harmless', 0):g} / "
             f"honest {w.get('honest', 0):g}" if w
             else "the gold's score as the truth")  # a model world's pool has no 3H weights
    return (f"{name} x{len(members)} ({truth}, temperature "
            f"{a.get('temperature', 0):g}, careless {a.get('careless', 0):g}, biases: "
            f"{biases or 'none'})")


def _people(pool: list[dict], fb_rec: dict) -> str:
    groups: dict[str, int] = {}
    for a in pool:
        groups[str(a.get("group"))] = groups.get(str(a.get("group")), 0) + 1
    facts = recorded(fb_rec)  # a file may hold AI judgements too (e.g. UltraFeedback's)
    return (f"{len(pool)} pseudonymous annotators of pairwise items ("
            + ", ".join(f"group {g} x{n}" for g, n in sorted(groups.items()))
            + f") in {source_phrase(fb_rec)}; judged by "
            + (judged_by(facts) if facts else "not recorded"))


def _ai_judge(pool: list[dict]) -> str:
    j = pool[0] if pool else {}
    sha = j.get("constitution_sha256")
    return (f"an AI judge, no people: model {j.get('model', j.get('id', '?'))} steered by the "
            f"constitution {j.get('constitution', '?')}"
            + (f" (sha256 {sha[:12]}…)" if sha else ""))


def _evaluators(records: dict, run_dir: Path, text: dict) -> tuple[str | None, list, str]:
    parts, source, unknown = [], [], ""
    fb = records.get("feedback")
    if fb is not None:
        pool = json.loads((run_dir / "feedback" / "annotators.json").read_text())
        kind = fb["config"]["feedback"].get("source", "simulated")
        if kind == "simulated":
            groups: dict[str, list] = {}
            for a in pool:
                groups.setdefault(a["group"], []).append(a)
            parts.append("simulated annotators, no people were recruited or trained: "
                         + "; ".join(_describe_group(g, m) for g, m in sorted(groups.items())))
        elif kind == "ai":
            parts.append(_ai_judge(pool))
        else:  # a file: the run knows the ids and groups, not how they were chosen
            who = _people(pool, fb)
            if "evaluator_selection" not in text:
                unknown = (f"{who}; how they were selected and trained is not recorded: "
                           "config.toml has no [disclosure] evaluator_selection")
            parts.append(who)
        source += ["feedback/annotators.json", "feedback/_stage.json"]
        parts.append(verification_sentence(fb))
    if "evaluator_selection" in text:
        parts.append(text["evaluator_selection"])
        source.append("config.toml [disclosure] evaluator_selection")
    if unknown:
        return None, [], unknown
    if not parts:
        return None, [], (_missing("feedback")
                          + " and config.toml has no [disclosure] evaluator_selection")
    return ". ".join(parts), source, ""


def _examples(records: dict) -> tuple[str | None, list, str]:
    rec = records.get("feedback")
    if rec is None:
        return None, [], _missing("feedback")
    cfg, counts = rec["config"]["feedback"], rec["counts"]
    origin = responses_sentence(rec)
    if cfg.get("source") == "human":  # the run chose nothing: the file's provenance says
        if origin is None:
            return None, [], why_unknown(rec, "where the responses came from")
        return (f"{origin}; {counts.get('comparisons', '?')} pairwise items; how the examples "
                "were selected is what their provenance says, nothing more is recorded",
                ["feedback/_stage.json"], "")
    samples, prompts = (  # a model world's feedback record names its gold
        ("the [world] model's samples", "training prompts drawn uniformly")
        if rec["metrics"].get("gold") else ("SFT samples", "family-balanced training prompts"))
    value = (f"pairs of {samples} at temperature {cfg.get('temperature', '?')} on "
             f"{prompts}, {counts.get('comparisons', '?')} comparisons, "
             f"identical pairs dropped ({counts.get('dropped_identical_pairs', '?')})")
    return value, ["feedback/_stage.json"], ""


def _feedback_types(records: dict) -> tuple[str | None, list, str]:
    rec = records.get("feedback")
    value = types_sentence(rec) if rec is not None else None
    if value is None:
        return None, [], why_unknown(rec, "")
    return value, ["feedback/_stage.json"], ""


def _quality(records: dict) -> tuple[str | None, list, str]:
    rec = records.get("feedback")
    if rec is None:
        return None, [], _missing("feedback")
    m, c = rec["metrics"], rec["counts"]
    facts = recorded(rec)  # agreement is measured on the pairwise judgements only
    pairwise = facts["types"]["pairwise"] if facts else c.get("judgements", "?")
    value = (f"raw agreement {_f(m.get('agreement/raw'))}, Krippendorff's alpha (nominal) "
             f"{_f(m.get('agreement/krippendorff_alpha'))} over {pairwise} pairwise "
             f"judgements by {c.get('annotators', '?')} annotators; agreement is measured only, "
             "no annotator was screened or filtered")
    return value, ["feedback/_stage.json"], ""


def _rm_loss(records: dict) -> tuple[str | None, list, str]:
    rec, fb = records.get("reward"), records.get("feedback")
    if rec is None or fb is None:
        return None, [], _missing("feedback", "reward")
    return loss_sentence(rec, fb), ["reward/_stage.json", "feedback/_stage.json"], ""


def _rm_eval(records: dict) -> tuple[str | None, list, str]:
    rec = records.get("reward")
    if rec is None:
        return None, [], _missing("reward")
    m, c = rec["metrics"], rec["counts"]
    value = (f"accuracy against the annotators' majority {_f(m.get('accuracy/heldout'))} "
             f"({c.get('pairs/heldout', '?')} held-out pairs), against the gold judge "
             f"{_f(m.get('accuracy/gold'))} ({c.get('pairs/gold_comparable', '?')} held-out "
             "pairs with a gold difference); red teaming not performed")
    return value, ["reward/_stage.json"], ""


def _policy_eval(records: dict) -> tuple[str | None, list, str]:
    rec, pol = records.get("eval"), records.get("policy")
    if rec is None:
        return None, [], _missing("eval")
    m, cfg = rec["metrics"], rec["config"].get("eval", {})
    algo = ""
    if pol is not None:
        p = pol["config"]["policy"]
        name = str(p.get("algorithm", "?"))
        knob = {"ppo": f"KL coefficient {p.get('ppo', {}).get('kl_coef', '?')}",
                "bon": f"best of {p.get('bon_n', '?')}, no training"}.get(
                    name, f"beta {p.get('beta', '?')}")
        algo = f"policy trained by {name.upper()} ({knob}, {p.get('steps', '?')} steps); "
    value = (f"{algo}gold 3H judge on {rec['counts'].get('prompts', '?')} held-out prompts x "
             f"{cfg.get('samples_per_prompt', '?')} samples at temperature "
             f"{cfg.get('temperature', '?')}: gold utility base {_f(m.get('base/gold/utility'))}, "
             f"SFT {_f(m.get('sft/gold/utility'))}, policy {_f(m.get('policy/gold/utility'))}; "
             f"proxy reward SFT {_f(m.get('sft/reward/proxy'))}, policy "
             f"{_f(m.get('policy/reward/proxy'))}; red teaming not performed")
    return value, ["eval/_stage.json"] + (["policy/_stage.json"] if pol else []), ""


def _config_answer(text: dict, key: str) -> tuple[str | None, list, str]:
    if key in text:
        return text[key], [f"config.toml [disclosure] {key}"], ""
    return None, [], f"config.toml has no [disclosure] {key}"


def build_disclosure(records: dict, run_dir: Path) -> list[dict]:
    """The 11 checklist items, in the paper's order."""
    run_dir = Path(run_dir)
    text = free_text(load_config_text(run_dir))
    hf, rm, pol, safety = "Human feedback", "Reward model", "Policy", "Systemic safety"
    items = [
        (hf, "pretraining", _pretraining(records, run_dir)),
        (hf, "evaluator selection and training", _evaluators(records, run_dir, text)),
        (hf, "example selection", _examples(records)),
        (hf, "feedback types", _feedback_types(records)),
        (hf, "quality assurance and inter-annotator agreement", _quality(records)),
        (rm, "loss function and disagreement modelling", _rm_loss(records)),
        (rm, "reward model evaluation and red teaming", _rm_eval(records)),
        (pol, "policy evaluation and red teaming", _policy_eval(records)),
        (safety, "internal and external audits", _config_answer(text, "audits")),
        (safety, "expected risks and failure modes", _config_answer(text, "expected_risks")),
        (safety, "monitoring and correcting failures", _config_answer(text, "monitoring")),
    ]
    return [_item(section, item, value, source, reason)
            for section, item, (value, source, reason) in items]


def summary(items: list[dict]) -> dict[str, int]:
    """How many items have each status (for the report's headline)."""
    counts = Counter(i["status"] for i in items)
    return {s: counts.get(s, 0) for s in STATUSES}
