"""Stage `reward`: a Bradley-Terry reward model on the SFT backbone, trained on the majority
label of each comparison (disagreement treated as noise -- the choice Casper et al. 3.2.1
question, recorded in the disclosure). When the feedback holds k-wise rankings, every
annotator's ranking and every majority pair are trained together with Plackett-Luce (which is
Bradley-Terry for a pair)."""

from __future__ import annotations

from ..eval.probes import probe_pairs, run_probes
from ..eval.reward_metrics import heldout_metrics, uncertainty_metrics
from ..feedback.record import read_records
from ..models.reward_ensemble import MEMBERS_DIR, RewardEnsemble
from ..models.tokenizer import prompt_ids, response_ids
from ..rundir import atomic_write_json
from ..train.reward import plackett_luce_batch, train_or_load
from ..train.reward_data import preference_pairs, preference_rankings
from .context import StageContext
from .hparams import train_hparams
from .reward_aspects import run_aspects
from .reward_groups import run_groups


def _train_member(ctx: StageContext, examples, pad: int, index: int, batch_loss=None
                  ) -> tuple[object, dict]:
    """Member `index` of the ensemble: head initialisation and data order differ per member."""
    cfg = ctx.config.reward
    label = "reward" if cfg.ensemble == 1 else f"reward {index + 1}/{cfg.ensemble}"
    return train_or_load(ctx.model_dir("sft"), ctx.ckpt / f"member-{index}", examples,
                         train_hparams(cfg), pad, ctx.seed + 1000 * index, ctx.progress, label,
                         batch_loss=batch_loss)


def run(ctx: StageContext) -> dict:
    cfg = ctx.config.reward
    world = ctx.load_world()
    tok, pad = world.tokenizer, world.tokenizer.pad_token_id
    records = read_records(ctx.run.stage_dir("feedback") / "feedback.jsonl")
    train, heldout = preference_pairs(records, tok, ctx.seed, cfg.heldout_fraction)
    rankings, ranked_heldout = preference_rankings(records, tok, ctx.seed, cfg.heldout_fraction)
    heldout += ranked_heldout
    if not (train or rankings) or not heldout:
        raise ValueError(f"reward: {len(train) + len(rankings)} training and {len(heldout)} "
                         "held-out comparisons; need some of each (more comparisons or another "
                         "[reward].heldout_fraction)")
    examples, batch_loss = [pair for _, pair in train], None
    if rankings:  # a majority pair is a ranking of two
        examples = [(p, [c, r]) for p, c, r in examples] + rankings
        batch_loss = plackett_luce_batch
    members, results = [], []
    for index in range(cfg.ensemble):
        model, result = _train_member(ctx, examples, pad, index, batch_loss)
        target = ctx.out / ("model" if index == 0 else f"{MEMBERS_DIR}/{index}")
        model.save_pretrained(target)
        tok.save_pretrained(target)
        members.append(model)
        results.append(result)
    ensemble = RewardEnsemble(members)
    held = heldout_metrics(members[0], heldout, world, pad)

    def reward_fn(prompts, texts):
        return ensemble.score([prompt_ids(tok, p.text) for p in prompts],
                              [response_ids(tok, t) for t in texts], pad)[0]
    probes = run_probes(probe_pairs(world.heldout, world.kb, world.weights, ctx.seed),
                        reward_fn, world.kb, world.weights)
    atomic_write_json(ctx.out / "probes.json", probes)
    metrics = {**results[0], **held, "probes": probes,
               **{f"bias/{name}": p["rm_prefers_feature"] for name, p in probes.items()}}
    if cfg.ensemble > 1:
        metrics["ensemble/accuracy_heldout"] = [
            heldout_metrics(m, heldout, world, pad)["accuracy/heldout"] for m in members]
        metrics.update(uncertainty_metrics(ensemble, train, heldout, pad, ctx.seed))
    if cfg.aspects:
        metrics["aspects"] = run_aspects(ctx, world, heldout)
    if cfg.group_conditioned:
        metrics["pluralistic"] = run_groups(ctx, world, members[0])
    return {"counts": {"pairs/train": len(train), "pairs/heldout": len(heldout),
                       **({"rankings/train": len(rankings)} if rankings else {}),
                       "pairs/gold_comparable": metrics.pop("n_gold_comparable"),
                       "members": cfg.ensemble},
            "metrics": metrics}

