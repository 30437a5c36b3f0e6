"""Measure a policy against its reference, wherever they were trained (`rlxf eval`, and the
pipeline's real-model eval): both sample the same held-out prompts, and each is measured --
proxy reward (reward sources), gold (a gold source), response length, distinct-n, entropy, the
probe battery -- with the policy's KL to the reference from exact per-token distributions
(eval/divergence.py). Every number is a mean over prompts with a 95% bootstrap interval over
prompts and n, and the policy − reference difference is paired by prompt (eval/paired.py).

A library: loaded models and tokenizer in, measurements out; no run directory, no CLI. Prompts
and their token ids follow `rlxf grpo` (rewards/encoding.py, models/chat.py) and sampling is its
rollout backend (models/rollout_backend.py); both models sample with the same seeds, so two
identical models give identical samples."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable

from ..models.chat import ChatFormat, chat_format
from ..models.rollout_backend import TransformersBackend
from ..rewards.batch import RewardBatch
from ..rewards.encoding import prompt_ids
from .divergence import response_stats
from .paired import compare, distinct_n, prompt_means
from .probe_runs import battery_difference, run_policy_battery, unconditional_rates

MODELS = ("policy", "reference")
KL_ESTIMATOR = ("Σ_t KL(π(·|s_t) ‖ π_ref(·|s_t)) over the full vocabulary along each policy "
                "sample (Rao–Blackwellised: unbiased for the sequence KL at temperature 1, never "
                "negative, 0 when the models are equal); kl/sampled is the Monte-Carlo "
                "Σ_t log π(y_t|s_t) − log π_ref(y_t|s_t) of the same samples")


@dataclass(frozen=True)
class EvalOptions:
    samples_per_prompt: int = 4
    temperature: float = 1.0
    max_new_tokens: int = 64
    top_p: float = 1.0
    seed: int = 0
    batch_size: int = 16   # prompts per sampling call; rows per log-prob forward
    probes: bool = True


@dataclass
class EvalResult:
    metrics: dict            # metrics.json (eval/metrics_contract.py)
    samples: list[dict]      # one row per sampled response of each model
    probes: dict | None      # the battery per model, its rates and their difference
    counts: dict


def context_room(model, max_new_tokens: int) -> int | None:
    """Prompt tokens that leave room for max_new_tokens in the model's context (None: no
    limit known)."""
    cfg = model.config
    limit = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None)
    return None if limit is None else limit - max_new_tokens


def _sample(backend, model, prompts: list[list[int]], k: int, opts: EvalOptions, seed: int):
    responses, truncated = [], []
    for c, b in enumerate(range(0, len(prompts), opts.batch_size)):
        s = backend.sample(model, prompts[b: b + opts.batch_size], k, seed=seed + 1009 * c)
        responses += s.responses
        truncated += s.truncated
    return responses, truncated


def _scores(sources, batch: RewardBatch) -> tuple[list, dict]:
    if sources is None:
        return [None] * len(batch), {}
    scored = sources(batch)
    return scored.total, scored.per_source


def generator(model, chat: ChatFormat, backend, room: int | None, opts: EvalOptions,
              clipped: list[int]) -> Callable[[list[list[dict]]], list[str]]:
    """The probes' `generate`: one sample per conversation at the eval's settings; a prompt
    longer than the model's context keeps its last tokens (counted in `clipped`)."""
    calls = [0]

    def generate(conversations: list[list[dict]]) -> list[str]:
        ids = []
        for c in conversations:
            p = chat.prompt_ids(c)
            if room is not None and len(p) > room:
                clipped[0] += 1
                p = p[-room:]
            ids.append(p)
        calls[0] += 1
        responses, _ = _sample(backend, model, ids, 1, opts, opts.seed + 7919 * calls[0])
        return [chat.decode(r) for r in responses]
    return generate


def reward_model_score(source) -> Callable[[list[str], list[str]], list[float]]:
    """The style-bias probe's `score` through a reward-model source."""
    def score(prompts: list[str], responses: list[str]) -> list[float]:
        n = len(prompts)
        return source(RewardBatch(list(prompts), list(responses), [[] for _ in range(n)],
                                  [{} for _ in range(n)], [f"style probe item {i}"
                                                           for i in range(n)]))
    return score


def evaluate(policy, reference, tokenizer, prompts: list, *, rewards=None, gold=None,
             options: EvalOptions = EvalOptions(),
             progress: Callable[[str], None] | None = None) -> EvalResult:
    """`prompts`: prompt-file rows (`tune.prompts.PromptRow`: prompt, fields, where); `rewards`
    and `gold`: `rewards.combine.RewardSources` or None. Prompts too long for max_new_tokens
    are left out and counted."""
    say = progress or (lambda _: None)
    opts, k = options, options.samples_per_prompt
    chat = chat_format(tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else \
        tokenizer.eos_token_id
    room = context_room(policy, opts.max_new_tokens)
    encoded = [(r, prompt_ids(chat, r.prompt)) for r in prompts]
    kept = [(r, ids) for r, ids in encoded if room is None or len(ids) <= room]
    if not kept:
        raise ValueError(f"no prompt leaves room for max_new_tokens ({opts.max_new_tokens}) in "
                         f"the model's context ({room + opts.max_new_tokens} tokens)")
    rows, ids = [r for r, _ in kept], [i for _, i in kept]
    backend = TransformersBackend(opts.max_new_tokens, opts.temperature, opts.top_p, pad,
                                  tuple(chat.stop_ids))
    samples, per_prompt = [], {}
    for name, model in zip(MODELS, (policy, reference)):
        per_prompt[name], rows_out = _measure(
            name, model, reference if name == "policy" else None, chat, backend, rows, ids,
            rewards, gold, opts, pad, say)
        samples += rows_out
    measured = compare(per_prompt, opts.seed)
    probes = None
    if opts.probes:
        probes = _probes(policy, reference, chat, backend, room, opts, rewards, say)
    counts = {"prompts": len(prompts), "evaluated": len(rows),
              "skipped_too_long": len(prompts) - len(rows), "samples_per_prompt": k,
              "samples": len(samples)}
    metrics = {"schema": "rlxf.eval.metrics/1", "counts": counts,
               "options": asdict(opts),
               "kl_estimator": KL_ESTIMATOR,
               "sources": {"reward": rewards.describe() if rewards is not None else [],
                           "gold": gold.describe() if gold is not None else []},
               **measured}
    return EvalResult(metrics, samples, probes, counts)


def _measure(name: str, model, reference, chat: ChatFormat, backend, rows: list, ids: list,
             rewards, gold, opts: EvalOptions, pad: int, say) -> tuple[dict, list[dict]]:
    """One model sampled on the prompts and measured: ({metric: one value per prompt}, one
    sample row per response); the KL metrics when `reference` is given."""
    k = opts.samples_per_prompt
    repeated_rows = [r for r in rows for _ in range(k)]
    say(f"sampling the {name} ({len(ids)} prompts x {k})")
    responses, truncated = _sample(backend, model, ids, k, opts, opts.seed)
    texts = [chat.decode(r) for r in responses]
    batch = RewardBatch([r.prompt for r in repeated_rows], texts, responses,
                        [r.fields for r in repeated_rows], [r.where for r in repeated_rows],
                        truncated)
    say(f"scoring the {name}'s samples")
    proxy, proxy_parts = _scores(rewards, batch)
    gold_total, _ = _scores(gold, batch)
    say(f"log-probabilities of the {name}'s samples")
    stats = response_stats(model, [i for i in ids for _ in range(k)], responses, pad,
                           reference=reference, batch_size=opts.batch_size)
    values: dict[str, list] = {
        "length/tokens": [s.tokens for s in stats],
        "length/truncated": [float(t) for t in truncated],
        "entropy/per_token": [s.entropy / s.tokens for s in stats],
        "entropy/per_response": [s.entropy for s in stats],
    }
    if rewards is not None:
        values["reward/proxy"] = proxy
        if len(proxy_parts) > 1:
            values.update({f"reward/{n}": v for n, v in proxy_parts.items()})
    if gold is not None:
        values["gold/score"] = gold_total
    if reference is not None:
        values["kl/to_reference"] = [s.kl for s in stats]
        values["kl/sampled"] = [s.kl_sampled for s in stats]
    per_prompt = {m: prompt_means(v, k) for m, v in values.items()}
    for n in (1, 2):
        per_prompt[f"distinct/{n}"] = [distinct_n(texts[i: i + k], n)
                                       for i in range(0, len(texts), k)]
    samples = [{
        "model": name, "prompt_index": j // k, "where": row.where, "prompt": row.prompt,
        **({"prompt_id": row.fields["prompt_id"]} if "prompt_id" in row.fields else {}),
        "response": texts[j], "response_ids": responses[j], "tokens": s.tokens,
        "truncated": truncated[j], "reward": _finite(proxy[j]),
        "rewards": {n: v[j] for n, v in proxy_parts.items()}, "gold": _finite(gold_total[j]),
        "logp": s.logp, "entropy": s.entropy, "kl": s.kl, "kl_sampled": s.kl_sampled}
        for j, (row, s) in enumerate(zip(repeated_rows, stats))]
    return per_prompt, samples


def _finite(v):
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


def _probes(policy, reference, chat, backend, room, opts, rewards, say) -> dict:
    runs, clipped = {}, [0]
    for name, model in zip(MODELS, (policy, reference)):
        say(f"probe battery on the {name}")
        runs[name] = run_policy_battery(generator(model, chat, backend, room, opts, clipped),
                                        opts.seed)
    out: dict = {name: battery for name, (battery, _) in runs.items()}
    out["rates"] = {name: unconditional_rates(b, seen, opts.seed)
                    for name, (b, seen) in runs.items()}
    out["difference"] = battery_difference(runs["policy"], runs["reference"], opts.seed)
    out["clipped_prompts"] = clipped[0]
    out["reward_models"] = {}
    if rewards is not None:
        from ..probes.battery import reward_battery
        for name, source in zip(rewards.names, rewards.sources):
            if source.kind == "reward_model":
                say(f"style-bias probe on {name}")
                out["reward_models"][name] = reward_battery(reward_model_score(source),
                                                            seed=opts.seed)
    return out
