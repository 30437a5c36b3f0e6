"""Sampling a policy that is SFT + best-of-n against the proxy reward, and its KL to SFT.

Best-of-n has no log-probs of its own, so its KL is computed from the base's: for each prompt
the distinct responses among `kl_draws` SFT samples, with their exact SFT probabilities
renormalised over that observed support and their proxy rewards, give the exact best-of-n
distribution of that discrete base (train.bon.bon_kl_exact, ties to the first drawn). Where
responses repeat, the result is below log n - (n-1)/n, which is an upper bound for a discrete
base (Beirami et al. 2024); the analytic value is reported beside it."""

from __future__ import annotations

import torch

from ..models.sampling import sample_responses
from ..models.tokenizer import prompt_ids, response_ids
from ..train.bon import best_of_n, bon_kl_exact


def best_of_n_responses(model, tokenizer, prompts: list[str], reward_model, n: int, *,
                        temperature: float, max_new_tokens: int, seed: int, kl_draws: int = 32,
                        logprobs_fn) -> tuple[list[str], list[float]]:
    """(texts, kl): one best-of-n response per prompt, and per prompt the KL(best-of-n || SFT)
    estimate above. `logprobs_fn(prompts, texts)` gives SFT's summed response log-probs."""
    draws = max(n, kl_draws)
    unique = list(dict.fromkeys(prompts))
    # draws per distinct prompt: the first n of each row of a repeated prompt are its candidates
    repeats = {p: prompts.count(p) for p in unique}
    asked = [p for p in unique for _ in range(max(draws, repeats[p] * n))]
    texts = sample_responses(model, tokenizer, asked, temperature=temperature,
                             max_new_tokens=max_new_tokens, seed=seed)
    pad = tokenizer.pad_token_id
    rewards = reward_model.score([prompt_ids(tokenizer, p) for p in asked],
                                 [response_ids(tokenizer, t) for t in texts], pad)[0]
    pool: dict[str, list[tuple[str, float]]] = {}
    for p, t, r in zip(asked, texts, rewards):
        pool.setdefault(p, []).append((t, r))
    kl_of = {p: _plugin_kl(p, pool[p][:draws], n, logprobs_fn) for p in unique}
    used = dict.fromkeys(unique, 0)
    out_texts, out_kl = [], []
    for p in prompts:
        cands = pool[p][used[p] * n: (used[p] + 1) * n]
        used[p] += 1
        best = best_of_n(torch.tensor([[r for _, r in cands]], dtype=torch.float64))[0]
        out_texts.append(cands[int(best)][0])
        out_kl.append(kl_of[p])
    return out_texts, out_kl


def _plugin_kl(prompt: str, draws: list[tuple[str, float]], n: int, logprobs_fn) -> float:
    distinct = dict(draws)  # one reward per text (the reward model is deterministic)
    texts = list(distinct)
    logp = torch.tensor(logprobs_fn([prompt] * len(texts), texts), dtype=torch.float64)
    p = torch.softmax(logp, 0)  # exact SFT probabilities, renormalised over the seen support
    return bon_kl_exact(p, torch.tensor([distinct[t] for t in texts], dtype=torch.float64), n)
