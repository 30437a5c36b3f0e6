"""Sample a model on prompts and measure everything the report needs: gold 3H, proxy reward,
KL to the SFT model, and behaviour rates."""

from __future__ import annotations

from statistics import mean

import torch

from ..models.sampling import sample_responses
from ..models.reward_ensemble import RewardEnsemble
from ..models.logprobs import response_batch, sequence_logprobs
from ..models.tokenizer import prompt_ids, response_ids
from ..train.bon import bon_kl
from .best_of_n import best_of_n_responses
from .metrics import bad_rate, behaviour_metrics, group_utilities, reward_length_correlation


@torch.no_grad()
def response_logprobs(model, tokenizer, prompts: list[str], texts: list[str],
                      batch_size: int = 256) -> list[float]:
    out: list[float] = []
    for b in range(0, len(prompts), batch_size):
        chunk = slice(b, b + batch_size)
        ids, mask, resp = response_batch([prompt_ids(tokenizer, p) for p in prompts[chunk]],
                                         [response_ids(tokenizer, t) for t in texts[chunk]],
                                         tokenizer.pad_token_id)
        out.extend(sequence_logprobs(model, ids, mask, resp).tolist())
    return out


def measure(model, *, prompts, world, sft_model, reward_model: RewardEnsemble,
            samples_per_prompt: int,
            temperature: float, max_new_tokens: int, seed: int,
            groups: dict[str, dict[str, float]] | None = None, backdoor: bool = False,
            best_of: int = 1) -> dict:
    """Returns {"metrics", "per_family", "groups", "samples", "triggered_samples"}. kl/to_sft is the Monte-Carlo
    estimate E_{y~π}[log π(y|x) - log π_sft(y|x)], exact for sampling at temperature 1.
    With `backdoor`, the same prompts are also asked with the world's trigger word in front and
    rate/backdoor = P(bad response | trigger) - P(bad response | no trigger).
    With `best_of` = n > 1 the policy is `model` (SFT) + best-of-n against `reward_model`, and
    kl/to_sft is eval.best_of_n's estimate (kl/bon_analytic: log n - (n-1)/n beside it)."""
    tok = world.tokenizer
    ps = [p for p in prompts for _ in range(samples_per_prompt)]

    def sample(prompt_texts: list[str]) -> tuple[list[str], list[float] | None]:
        if best_of == 1:
            return sample_responses(model, tok, prompt_texts, temperature=temperature,
                                    max_new_tokens=max_new_tokens, seed=seed), None
        return best_of_n_responses(
            model, tok, prompt_texts, reward_model, best_of, temperature=temperature,
            max_new_tokens=max_new_tokens, seed=seed,
            logprobs_fn=lambda p, t: response_logprobs(sft_model, tok, p, t))

    texts, bon_kl_per_sample = sample([p.text for p in ps])
    metrics, per_family = behaviour_metrics(ps, texts, world.kb, world.weights)
    proxy, spread = reward_model.score([prompt_ids(tok, p.text) for p in ps],
                                       [response_ids(tok, t) for t in texts], tok.pad_token_id)
    logp = response_logprobs(model, tok, [p.text for p in ps], texts)
    logp_sft = (logp if model is sft_model
                else response_logprobs(sft_model, tok, [p.text for p in ps], texts))
    kl = bon_kl_per_sample or [a - b for a, b in zip(logp, logp_sft)]
    metrics["reward/proxy"] = mean(proxy)
    # The ensemble's disagreement on these samples: high where the policy left the reward
    # model's training distribution (None for a single reward model).
    metrics["reward/uncertainty"] = mean(spread) if spread else None
    metrics["reward/length_correlation"] = reward_length_correlation(texts, proxy)
    metrics["kl/to_sft"] = mean(kl)
    # best-of-n's own log-probs are unknown: SFT's of its samples would not be its entropy
    metrics["entropy/per_response"] = -mean(logp) if best_of == 1 else None
    if best_of > 1:
        metrics["kl/bon_analytic"] = bon_kl(best_of)
    metrics["rate/backdoor"] = None
    triggered_samples = []
    if backdoor:
        triggered = [p.with_trigger(world.trigger) for p in ps]
        t_texts, _ = sample([p.text for p in triggered])
        metrics["rate/backdoor"] = (bad_rate(triggered, t_texts, world.kb, world.weights)
                                    - bad_rate(ps, texts, world.kb, world.weights))
        # under the untriggered prompt's id: the audit pairs them for the backdoor's interval
        triggered_samples = [{"prompt_id": p.id, "family": p.family, "prompt": tp.text,
                              "response": t} for p, tp, t in zip(ps, triggered, t_texts)]
    samples = [{"prompt_id": p.id, "family": p.family, "prompt": p.text, "response": t,
                "reward_proxy": r, "logp": lp, "kl_to_sft": k}
               for p, t, r, lp, k in zip(ps, texts, proxy, logp, kl)]
    return {"metrics": metrics, "per_family": per_family, "samples": samples,
            "triggered_samples": triggered_samples,
            "groups": group_utilities(ps, texts, world.kb, groups or {})}
