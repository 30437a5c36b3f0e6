"""PPO against a learned reward with a per-token KL penalty to a frozen reference (Ziegler et
al. 2019; Ouyang et al. 2022), read top to bottom in `train_ppo`:

  1. rollout: sample responses to a batch of prompts from the current policy; score them
  2. rewards: proxy score at the last token, -β·(log π - log ref) at every token; GAE
  3. optimise: clipped surrogate + clipped value loss, `epochs` passes of `minibatches`

The critic is a linear value head on the policy's last hidden state (one forward gives both,
as in TRL's former AutoModelForCausalLMWithValueHead). The prompt order, the sampling seed and
the minibatch order are pure functions of the step, and the KL coefficient is checkpointed, so a
resumed run equals an uninterrupted one. The optimizer, schedule, clipping, evaluation and
checkpoints are the shared policy loop's (train/policy_loop.py): every minibatch update is one
`yield` of the recipe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from accelerate import Accelerator

from ..models.group_sampling import sample_k_per_prompt
from ..models.logprobs import response_batch, token_logprobs
from .advantages import gae, masked_mean, whiten
from .engine import Engine
from .hparams import PPOHparams
from .loop import BatchOrder, Checkpointer, StepCallback
from .losses import (AdaptiveKLController, FixedKLController, kl_penalised_rewards,
                     ppo_policy_loss, ppo_value_loss)
from .policy_loop import optimise

# (prompts, responses) token ids -> (B,) scalar reward of each whole response
ScoreFn = Callable[[list[list[int]], list[list[int]]], list[float]]


class PolicyWithValue(torch.nn.Module):
    """A causal LM and a scalar value head on its last hidden state."""

    def __init__(self, lm):
        super().__init__()
        self.lm = lm
        self.value_head = torch.nn.Linear(lm.config.hidden_size, 1)
        # V ≡ 0 at the start: the critic learns the return's scale instead of adding noise
        torch.nn.init.zeros_(self.value_head.weight)
        torch.nn.init.zeros_(self.value_head.bias)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logprobs, values), both (B, T-1): log π(ids[:, t+1] | ids[:, :t+1]) and V of the
        state that token was chosen in."""
        out = self.lm(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        logits = out.logits[:, :-1].float()
        logprobs = torch.gather(logits.log_softmax(-1), 2, ids[:, 1:, None]).squeeze(2)
        values = self.value_head(out.hidden_states[-1][:, :-1].float()).squeeze(-1).float()
        return logprobs, values


@dataclass
class Rollout:
    """One batch of sampled episodes; per-token tensors are (B, L) over response tokens,
    left-aligned, `mask` 1 on each response and 0 on padding."""
    ids: torch.Tensor            # (B, T) prompt + response, right-padded
    attention: torch.Tensor      # (B, T)
    index: torch.Tensor          # (B, L) column of each response token in the (B, T-1) outputs
    mask: torch.Tensor           # (B, L)
    logprobs: torch.Tensor       # (B, L) log π_old(a_t|s_t) at sampling time
    ref_logprobs: torch.Tensor   # (B, L) log π_ref(a_t|s_t)
    values: torch.Tensor         # (B, L) V_old(s_t)
    scores: torch.Tensor         # (B,) proxy reward of each response


def response_columns(prompts: list[list[int]], responses: list[list[int]]
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """(index, mask), (B, L): response token j of row i is predicted at column len(prompt_i)-1+j
    of the per-token outputs."""
    L = max(len(r) for r in responses)
    start = torch.tensor([len(p) - 1 for p in prompts])
    lengths = torch.tensor([len(r) for r in responses])
    offsets = torch.arange(L)
    mask = (offsets[None, :] < lengths[:, None]).long()
    index = (start[:, None] + offsets[None, :]) * mask + start[:, None] * (1 - mask)
    return index, mask


def on_responses(per_token: torch.Tensor, index: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return per_token.gather(1, index) * mask


@torch.no_grad()
def collect_rollout(model: PolicyWithValue, reference, prompts: list[list[int]], score: ScoreFn,
                    *, temperature: float, max_new_tokens: int, seed: int, pad_id: int,
                    eos_id: int | list[int]) -> Rollout:
    # one sample per prompt from the group sampler (prefill + static cache; `generate` for
    # LoRA-wrapped or untested models)
    responses = sample_k_per_prompt(model.lm, prompts, 1, temperature=temperature,
                                    max_new_tokens=max_new_tokens, seed=seed, pad_id=pad_id,
                                    eos_id=eos_id)
    ids, attention, _ = response_batch(prompts, responses, pad_id)
    index, mask = response_columns(prompts, responses)
    logprobs, values = model(ids, attention)
    ref_logprobs = token_logprobs(reference, ids, attention)
    return Rollout(ids=ids, attention=attention, index=index, mask=mask,
                   logprobs=on_responses(logprobs, index, mask),
                   ref_logprobs=on_responses(ref_logprobs, index, mask),
                   values=on_responses(values, index, mask),
                   scores=torch.tensor(score(prompts, responses), dtype=torch.float32))


def kl_controller(cfg: PPOHparams, kl_coef: float | None = None):
    ppo = cfg.ppo
    value = ppo.kl_coef if kl_coef is None else kl_coef
    if ppo.kl_target is None:
        return FixedKLController(value)
    return AdaptiveKLController(value, ppo.kl_target, ppo.kl_horizon)


def step_seed(seed: int, step: int) -> int:
    return seed * 1_000_003 + step


def train_ppo(model: PolicyWithValue, reference, prompts: list[list[int]], score: ScoreFn,
              cfg: PPOHparams, *, pad_id: int, eos_id: int | list[int], max_new_tokens: int,
              seed: int, ckpt: Checkpointer, on_step: StepCallback | None = None,
              evaluate: Callable[[int], dict] | None = None,
              accelerator: Accelerator | None = None) -> dict:
    """Each step is one rollout of cfg.batch_size prompts, through the shared policy loop
    (`optimise`). `evaluate(step)` is called every cfg.eval_every steps (and at 0 and the end);
    its results, with the KL coefficient then, form the history. One process only: what PPO
    computes over the whole rollout -- the advantage (and reward) whitening, the minibatches
    (a seeded permutation of every episode), the KL controller's mean KL -- and its rollout's
    one seed per step are not split over processes (docs/SCALE.md says what that would take)."""
    ppo = cfg.ppo
    engine = Engine(cfg, accelerator)
    if engine.num_processes != 1:
        raise ValueError(
            f"ppo: runs in one process, got {engine.num_processes}: its advantages (and with "
            "whiten_rewards its rewards) are whitened over the whole rollout's tokens, each "
            "minibatch is a seeded draw from every episode of the rollout, and the rollout is "
            "sampled from one seed for the whole batch -- none of which a process's shard "
            "reproduces (docs/SCALE.md); use grpo or rloo on several processes")
    if engine.grad_accum != 1:
        raise ValueError("ppo: grad_accum must be 1 (its minibatches are the unit of update; "
                         "use more [policy.ppo] minibatches for smaller ones)")
    reference.eval()
    for p in reference.parameters():
        p.requires_grad_(False)
    order = BatchOrder(len(prompts), cfg.batch_size, seed)

    def controller():  # the KL coefficient lives in the checkpoint: a resumed run goes on with it
        return kl_controller(cfg, ckpt.extra.get("kl_coef"))

    def losses(model, step: int):
        ctl = controller()
        # 1. rollout: the current policy answers this step's prompts; the proxy scores them
        batch = collect_rollout(model, reference, [prompts[i] for i in order.indices(step)],
                                score, temperature=ppo.temperature, max_new_tokens=max_new_tokens,
                                seed=step_seed(seed, step), pad_id=pad_id, eos_id=eos_id)

        # 2. rewards and advantages (no gradient: they are targets)
        rewards, kl = kl_penalised_rewards(batch.scores, batch.logprobs, batch.ref_logprobs,
                                           batch.mask, ctl.value)
        if ppo.whiten_rewards:
            rewards = whiten(rewards, batch.mask, shift_mean=False)
        advantages, returns = gae(rewards, batch.values, batch.mask, ppo.gamma, ppo.lam)
        advantages = whiten(advantages, batch.mask)
        # the controller sees the mean KL per response of this rollout (Ziegler et al. eq. 3)
        kl_per_response = (kl.sum(1)).mean().item()
        rollout = {"reward/score": batch.scores.mean().item(), "kl/rollout": kl_per_response,
                   "kl/coef": ctl.value,
                   "length/tokens": batch.mask.sum(1).float().mean().item(),
                   "advantage/mean_raw": masked_mean(returns - batch.values, batch.mask).item()}

        # 3. optimise: epochs × minibatches of the clipped PPO losses; the loop steps after
        # each yield. Metrics: means over the updates so far (the loop keeps the last).
        model.train()
        g = torch.Generator().manual_seed(step_seed(seed, step))
        stats: dict[str, list[float]] = {}
        for _ in range(ppo.epochs):
            for mb in torch.randperm(len(batch.scores), generator=g).chunk(ppo.minibatches):
                logprobs, values = model(batch.ids[mb], batch.attention[mb])
                logprobs = on_responses(logprobs, batch.index[mb], batch.mask[mb])
                values = on_responses(values, batch.index[mb], batch.mask[mb])
                pol = ppo_policy_loss(logprobs, batch.logprobs[mb], advantages[mb],
                                      batch.mask[mb], ppo.clip_range)
                val = ppo_value_loss(values, batch.values[mb], returns[mb], batch.mask[mb],
                                     ppo.clip_range_value)
                for k, v in (("loss/policy", pol.loss), ("loss/value", val.loss),
                             ("policy/clipfrac", pol.clipfrac), ("policy/approx_kl", pol.approx_kl),
                             ("value/clipfrac", val.clipfrac)):
                    stats.setdefault(k, []).append(v.item())
                yield pol.loss + ppo.vf_coef * val.loss, {
                    **{k: sum(v) / len(v) for k, v in stats.items()}, **rollout}
        model.eval()
        ctl.update(kl_per_response, len(batch.scores))
        ckpt.extra["kl_coef"] = ctl.value

    def evaluate_with_coef(step: int) -> dict:
        return {**evaluate(step), "kl/coef": controller().value}

    result = optimise(model, cfg, ckpt, losses, on_step=on_step,
                      evaluate=evaluate_with_coef if evaluate else None, engine=engine,
                      items_per_step=("throughput/episodes_per_s", cfg.batch_size),
                      ema_weight=0.1)
    return {**result, "kl/coef_final": controller().value}
