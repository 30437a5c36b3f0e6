"""What every model card rlxf writes is made of: YAML front matter, Markdown tables, and METHOD,
the one wording of what each real command trains. Shared by `rlxf audit`'s cards
(audit/cards.py, audit/real_facts.py) and the cards the commands write (tune/common.py,
tune/rl_card.py), so tune/ need not import audit/. Imports nothing from rlxf."""

from __future__ import annotations

import json

NULL = "—"  # a value that is not there (audit/fmt.py prints it too)

METHOD = {
    "sft": "supervised fine-tuning (loss on the response tokens)",
    "reward": "a Bradley-Terry reward model (scalar head read where "
              "AutoModelForSequenceClassification reads)",
    "dpo": "Direct Preference Optimisation against the base as reference",
    "kto": "KTO (desirable / undesirable examples) against the base as reference",
    "grpo": "GRPO-family RL (group-relative advantages, clipped surrogate)",
    "rloo": "RLOO (REINFORCE with a leave-one-out baseline)",
    "ppo": "PPO (value head, per-token KL penalty to the reference, GAE; the value head "
           "is not saved)",
}
ASPECTS_METHOD = "a multi-aspect regression reward model (one output per rating aspect)"


def _scalar(v) -> str:
    # JSON scalars are valid YAML; strings are always quoted so "1e-3" or "no" stay strings.
    return json.dumps(v, ensure_ascii=False)


def _yaml(obj, indent: int = 0) -> list[str]:
    pad = " " * indent
    lines = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, (dict, list)) and v:
                lines.append(f"{pad}{k}:")
                lines += _yaml(v, indent + 2)
            else:  # a scalar, or an empty container in flow style
                lines.append(f"{pad}{k}: {_scalar(v)}")
    else:
        for v in obj:
            if isinstance(v, dict) and v:
                sub = _yaml(v, indent + 2)
                lines.append(f"{pad}- {sub[0].lstrip()}")
                lines += sub[1:]
            else:
                lines.append(f"{pad}- {_scalar(v)}")
    return lines


def front_matter(meta: dict) -> str:
    return "---\n" + "\n".join(_yaml(meta)) + "\n---\n"


def _md(text) -> str:
    return str(text).replace("\n", " ").replace("|", "\\|")


def markdown_table(header: list[str], rows: list[list]) -> list[str]:
    if not rows:
        return [f"_{NULL} nothing to show_", ""]
    return (["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(_md(c) for c in r) + " |" for r in rows] + [""])
