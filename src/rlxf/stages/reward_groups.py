"""The reward stage's group-conditioned (pluralistic) model ([reward] group_conditioned = true):
one head per annotator group on the SFT backbone, each trained with Bradley-Terry on its own
group's majority label of each comparison -- so a minority's preferences get a reward of their
own instead of being averaged away (Casper et al. 3.2.1: one reward cannot represent a diverse
society). Saved as reward/groups (`load_group_model`, `score(..., group=g)`).

It reports (1) each group's held-out accuracy under its own head and under the single
(unconditioned) reward model, against that group's labels and against the gold utility with
that group's weights; (2) best-of-n on held-out prompts: the SFT sample each head picks, the
sample the average of the heads picks, and the one the worst-off group's head likes best
(max-min), with every group's gold utility of each choice."""

from __future__ import annotations

import json
import random
from statistics import mean, pstdev

from ..feedback.quality import items_of, majority
from ..feedback.record import read_records
from ..models.build import load_causal_lm
from ..models.sampling import sample_responses
from ..models.reward_heads import GROUPS_DIR, GroupRewardModel
from ..models.reward_scores import score as scalar_score
from ..models.tokenizer import prompt_ids, response_ids
from ..train.reward import head_pair_batch, train_or_load
from ..train.reward_data import is_heldout
from ..world.corpus import sample_family_balanced
from ..world.judge import score as gold_score
from .context import StageContext
from .hparams import train_hparams

UNKNOWN = "?"


def group_labels(records) -> dict[str, dict[str, str]]:
    """{item_id: {group: 'a' | 'b'}}: each group's own majority on each pairwise item (a group
    whose annotators split evenly on an item has no label there)."""
    out: dict[str, dict[str, str]] = {}
    for item_id, judgements in items_of(records).items():
        by_group: dict[str, list[dict]] = {}
        for j in judgements:
            by_group.setdefault(j["group"] or UNKNOWN, []).append(j)
        labels = {g: majority(js) for g, js in by_group.items()}
        out[item_id] = {g: w for g, w in labels.items() if w is not None}
    return out


def zscores(xs: list[float]) -> list[float]:
    """Standardised rewards: each head's Bradley-Terry offset and scale are arbitrary, so heads
    are compared (averaged, minimised) only after standardising over the same candidates."""
    m, s = mean(xs), pstdev(xs) or 1.0
    return [(x - m) / s for x in xs]


def best_of_n_choices(per_group: dict[str, list[float]], n: int) -> dict[str, list[int]]:
    """Index (into the flat candidate list, n per prompt) of the candidate each target picks:
    one target per group (its own head), "average" (mean standardised reward over groups) and
    "worst_off" (max over candidates of the min over groups)."""
    z = {g: zscores(v) for g, v in per_group.items()}
    groups = sorted(z)
    total = len(next(iter(z.values())))
    targets = {g: z[g] for g in groups}
    targets["average"] = [mean(z[g][i] for g in groups) for i in range(total)]
    targets["worst_off"] = [min(z[g][i] for g in groups) for i in range(total)]
    return {t: [max(range(b, b + n), key=lambda i: v[i]) for b in range(0, total, n)]
            for t, v in targets.items()}


def _rate(hits: list[bool]) -> float | None:
    return sum(hits) / len(hits) if hits else None


def group_weights(ctx: StageContext) -> dict[str, dict[str, float]]:
    """Each group's 3H weights from feedback/annotators.json (simulated groups have them;
    people's groups do not)."""
    path = ctx.run.stage_dir("feedback") / "annotators.json"
    rows = json.loads(path.read_text()) if path.exists() else []
    return {str(a["group"]): a["weights"] for a in rows if a.get("weights")}


def run_groups(ctx: StageContext, world, scalar_model) -> dict:
    cfg, tok = ctx.config.reward, world.tokenizer
    pad = tok.pad_token_id
    records = read_records(ctx.run.stage_dir("feedback") / "feedback.jsonl")
    first = {}
    for r in records:  # the pairwise record of each item (another type may share its id)
        if r.type == "pairwise":
            first.setdefault(r.item_id, r)
    labels = group_labels(records)
    groups = sorted({g for by in labels.values() for g in by})
    train, held = [], []
    for item_id, by in labels.items():
        rec = first[item_id]
        for g, winner in by.items():
            chosen, rejected = rec.responses if winner == "a" else rec.responses[::-1]
            ex = (groups.index(g), prompt_ids(tok, rec.prompt), response_ids(tok, chosen),
                  response_ids(tok, rejected))
            split = held if is_heldout(item_id, ctx.seed, cfg.heldout_fraction) else train
            split.append((g, rec, chosen, rejected, ex))
    if not train:
        raise ValueError("reward: [reward] group_conditioned = true, but no pairwise item has a "
                         "group majority to train on")
    model, result = train_or_load(ctx.model_dir("sft"), ctx.ckpt / "groups",
                                  [ex for *_, ex in train], train_hparams(cfg), pad,
                                  ctx.seed + 11, ctx.progress, "reward groups",
                                  num_labels=len(groups), batch_loss=head_pair_batch)
    conditioned = GroupRewardModel(model, groups)
    conditioned.save(ctx.out / GROUPS_DIR, tok)
    weights = group_weights(ctx)
    out = {"groups": groups, "loss/reward": result.get("loss/reward"),
           "accuracy": _accuracy(conditioned, scalar_model, held, world, weights, pad),
           "best_of_n": _best_of_n(ctx, world, conditioned, scalar_model, weights)}
    return out


def _accuracy(conditioned, scalar_model, held, world, weights, pad) -> dict:
    """Per group, on held-out items that group labelled: agreement of its own head and of the
    single reward model with the group's majority, and with the gold utility under the group's
    weights (null for a group without known weights)."""
    if not held:
        return {}
    prompts = [ex[1] for *_, ex in held]
    chosen_ids, rejected_ids = [ex[2] for *_, ex in held], [ex[3] for *_, ex in held]
    own_c = conditioned.score_heads(prompts, chosen_ids, pad)
    own_r = conditioned.score_heads(prompts, rejected_ids, pad)
    one_c = scalar_score(scalar_model, prompts, chosen_ids, pad)
    one_r = scalar_score(scalar_model, prompts, rejected_ids, pad)
    acc: dict[str, dict[str, list[bool]]] = {}
    for i, (g, rec, chosen, rejected, _) in enumerate(held):
        a = acc.setdefault(g, {k: [] for k in ("c_lab", "u_lab", "c_gold", "u_gold")})
        c_right, u_right = own_c[g][i] > own_r[g][i], one_c[i] > one_r[i]
        a["c_lab"].append(c_right)
        a["u_lab"].append(u_right)
        prompt = world.find_prompt(rec.prompt_id)
        if prompt is None or g not in weights:
            continue
        gc = gold_score(prompt, chosen, world.kb).utility(weights[g])
        gr = gold_score(prompt, rejected, world.kb).utility(weights[g])
        if abs(gc - gr) > 1e-9:
            a["c_gold"].append(c_right == (gc > gr))
            a["u_gold"].append(u_right == (gc > gr))
    return {g: {"n_heldout": len(a["c_lab"]), "n_gold_comparable": len(a["c_gold"]),
                "conditioned/accuracy_heldout": _rate(a["c_lab"]),
                "unconditioned/accuracy_heldout": _rate(a["u_lab"]),
                "conditioned/accuracy_gold": _rate(a["c_gold"]),
                "unconditioned/accuracy_gold": _rate(a["u_gold"])}
            for g, a in sorted(acc.items())}


def _best_of_n(ctx: StageContext, world, conditioned, scalar_model, weights) -> dict:
    """n SFT samples on held-out prompts; each target's pick scored by every group's gold
    utility (mean over prompts), with the mean and the minimum over groups."""
    cfg, tok = ctx.config.reward, world.tokenizer
    pad, n = tok.pad_token_id, cfg.best_of_n
    prompts = sample_family_balanced(world.heldout, cfg.best_of_n_prompts,
                                     random.Random(f"{ctx.seed}:pluralistic"))
    texts = sample_responses(load_causal_lm(ctx.model_dir("sft")), tok,
                             [p.text for p in prompts for _ in range(n)],
                             temperature=ctx.config.feedback.temperature,
                             max_new_tokens=ctx.config.eval.max_new_tokens, seed=ctx.seed + 13)
    flat_prompts = [p for p in prompts for _ in range(n)]
    p_ids = [prompt_ids(tok, p.text) for p in flat_prompts]
    r_ids = [response_ids(tok, t) for t in texts]
    choices = best_of_n_choices(conditioned.score_heads(p_ids, r_ids, pad), n)
    one = scalar_score(scalar_model, p_ids, r_ids, pad)
    choices["unconditioned"] = [max(range(b, b + n), key=lambda i: one[i])
                                for b in range(0, len(one), n)]
    judged = sorted(g for g in conditioned.heads if g in weights)
    utility = {g: [gold_score(p, t, world.kb).utility(weights[g])
                   for p, t in zip(flat_prompts, texts)] for g in judged}
    rows = {}
    for target, picks in choices.items():
        per = {g: mean(utility[g][i] for i in picks) for g in judged}
        rows[target] = {"gold/utility": per, "mean": mean(per.values()) if per else None,
                        "min": min(per.values()) if per else None}
    heads = conditioned.heads
    differ = [len({texts[choices[g][k]] for g in heads}) > 1 for k in range(len(prompts))]
    return {"n": n, "n_prompts": len(prompts), "rows": rows,
            "disagreement": _rate(differ) if len(heads) > 1 else None,
            "notes": {} if judged else {"gold/utility": "no group has known 3H weights (only "
                                                        "simulated groups do)"}}
