"""rlxf's side: the pipeline's own training functions (train_lm, train_reward_model,
reference_logprobs + train_dpo), called exactly as the stages call them, timed per step through
their on_step callback."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from rlxf.config import PolicyConfig, TrainConfig
from rlxf.train.dpo import reference_logprobs, train_dpo
from rlxf.train.lm import train_lm
from rlxf.train.loop import BatchOrder, Checkpointer
from rlxf.train.reward import train_reward_model

from .measure import StepClock
from .workload import Workload, even_token_reward

NEVER = 10**9  # checkpoint interval: the benchmark times training, not disk writes


def batch_order(n_items: int, steps: int, batch: int, seed: int) -> list[int]:
    """The item indices rlxf trains on, step after step (the peer is fed the same stream)."""
    order = BatchOrder(n_items, batch, seed)
    return [i for s in range(steps) for i in order.indices(s)]


def _callback(clock: StepClock, key: str):
    def on_step(step: int, metrics: dict) -> None:
        clock.tick()
        if step == 1:  # the EMA after one step is the first step's loss itself
            clock.first_loss = metrics[key]
    return on_step


def _train_config(steps: int, batch: int, lr: float, engine: dict | None = None) -> dict:
    """`engine`: the training engine's options ({"device": "cuda", "precision": "bf16"}, as
    `rlxf sft --device --precision` set them; bench/gpu_check.py); CPU fp32 by default."""
    return dict(steps=steps, batch_size=batch, lr=lr, warmup_steps=1, checkpoint_every=NEVER,
                **(engine or {}))


def run_sft(w: Workload, steps: int, batch: int, lr: float, warmup: int, seed: int,
            engine: dict | None = None) -> StepClock:
    examples = [(p + c, len(p)) for p, c in zip(w.prompts, w.chosen)]
    clock = StepClock(warmup)
    with tempfile.TemporaryDirectory() as d:
        train_lm(w.causal_lm(), examples, TrainConfig(**_train_config(steps, batch, lr, engine)),
                 w.pad_id, seed, Checkpointer(Path(d), NEVER), _callback(clock, "loss/lm"))
    return clock


def run_reward(w: Workload, steps: int, batch: int, lr: float, warmup: int, seed: int,
               head_seed: int, engine: dict | None = None) -> StepClock:
    pairs = list(zip(w.prompts, w.chosen, w.rejected))
    clock = StepClock(warmup)
    with tempfile.TemporaryDirectory() as d:
        train_reward_model(w.reward_model(head_seed), pairs,
                           TrainConfig(**_train_config(steps, batch, lr, engine)), w.pad_id, seed,
                           Checkpointer(Path(d), NEVER), _callback(clock, "loss/reward"))
    return clock


def run_dpo(w: Workload, steps: int, batch: int, lr: float, warmup: int, seed: int,
            beta: float, engine: dict | None = None) -> tuple[StepClock, float]:
    """(clock, seconds of the one-time reference pass over the whole data set; on the engine's
    device when it is a GPU)."""
    pairs = list(zip(w.prompts, w.chosen, w.rejected))
    t = time.perf_counter()
    reference = w.causal_lm().to((engine or {}).get("device", "cpu"))
    ref_chosen, ref_rejected = reference_logprobs(reference, pairs, w.pad_id)
    del reference
    ref_seconds = time.perf_counter() - t
    cfg = PolicyConfig(**_train_config(steps, batch, lr, engine), beta=beta, eval_every=NEVER)
    clock = StepClock(warmup)
    with tempfile.TemporaryDirectory() as d:
        train_dpo(w.causal_lm(), pairs, ref_chosen, ref_rejected, cfg, w.pad_id, seed,
                  Checkpointer(Path(d), NEVER), _callback(clock, "loss/dpo"))
    return clock, ref_seconds


def run_grpo(w: Workload, steps: int, prompts_per_step: int, group: int, max_new_tokens: int,
             lr: float, warmup: int, seed: int, beta: float,
             engine: dict | None = None) -> StepClock:
    """rlxf's GRPO recipe (train/group_rl.py) as the policy stage calls it, with a frozen
    reference (β > 0) and the shared reward function. Completion lengths go to
    `clock.completion_lengths`."""
    from rlxf.train.group_rl import train_group_rl

    cfg = PolicyConfig(**_train_config(steps, prompts_per_step, lr, engine), algorithm="grpo",
                       group={"group_size": group, "kl_coef": beta}, eval_every=NEVER)

    clock = StepClock(warmup)

    def reward_fn(_prompts, responses):
        clock.completion_lengths += [len(r) for r in responses]
        return [even_token_reward(r) for r in responses]
    with tempfile.TemporaryDirectory() as d:
        train_group_rl(w.causal_lm(), w.causal_lm(), w.prompts, reward_fn, cfg, w.pad_id,
                       w.eos_id, max_new_tokens, seed, Checkpointer(Path(d), NEVER),
                       _callback(clock, "loss/grpo"))
    return clock


REWARD_SPEC = f"{Path(__file__).resolve().parent / 'grpo_reward.py'}:even_tokens"


def prompt_words(w: Workload, i: int) -> str:
    """Prompt i as a prompt-file string: its words without <bos> <user> ... <assistant>, which
    the lab format adds back (rewards/encoding.py), so `rlxf grpo` trains on w.prompts[i]."""
    return w.text(w.prompts[i][2:-1])


def run_grpo_files(w: Workload, steps: int, prompts_per_step: int, group: int,
                   max_new_tokens: int, lr: float, warmup: int, seed: int,
                   beta: float) -> StepClock:
    """The `rlxf grpo MODEL PROMPTS --reward bench/grpo_reward.py:even_tokens` code path
    (tune/rl.py's session: prompt file, reward function loaded from its file, the engine,
    TensorBoard, checkpoint), on a model directory and a prompt file written here. Every
    prompt is for training (no held-out eval points: the benchmark times training steps). One
    step more than `steps` runs, untimed: the command's last step also writes the final
    checkpoint, which TRL's side (save_strategy "no") does not."""
    from rlxf.config import TuneGroupRLConfig
    from rlxf.tune.rl import run_group_rl

    clock = StepClock(warmup)

    def progress(command: str, total: int):
        def on_step(step: int, metrics: dict) -> None:
            if step <= steps:
                clock.tick()
            if step == 1:
                clock.first_loss = metrics["loss/grpo"]
        return on_step
    cfg = TuneGroupRLConfig(steps=steps + 1, batch_size=prompts_per_step, group_size=group,
                            max_new_tokens=max_new_tokens, lr=lr, warmup_steps=1,
                            temperature=1.0, top_p=1.0, beta=beta, loss_type="grpo",
                            scale_rewards="group", eval_fraction=0, eval_every=NEVER,
                            checkpoint_every=NEVER, seed=seed, precision="fp32", device="cpu")
    with tempfile.TemporaryDirectory() as d:
        model_dir, prompts = Path(d) / "model", Path(d) / "prompts.jsonl"
        w.causal_lm().save_pretrained(model_dir)
        w.tokenizer.save_pretrained(model_dir)
        prompts.write_text("".join(json.dumps({"prompt": prompt_words(w, i)}) + "\n"
                                   for i in range(len(w.prompts))))
        run_group_rl("grpo", model_dir, prompts, Path(d) / "out", cfg, [REWARD_SPEC],
                     progress=progress)
    return clock
