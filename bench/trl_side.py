"""The peer: TRL's SFTTrainer, RewardTrainer and DPOTrainer on the workload, timed per step.

Each trainer sees the examples in exactly rlxf's order (the dataset is laid out in that order and
read sequentially), so both sides take identical batches and their step-0 losses must agree.
Two configurations: "fair" (bf16=False, gradient_checkpointing=False: what a knowledgeable user
picks on a CPU without native bf16 and with memory to spare) and TRL's "defaults" (bf16 autocast and
gradient checkpointing on)."""

from __future__ import annotations

import tempfile

import torch
from datasets import Dataset
from transformers import TrainerCallback

from .measure import StepClock
from .workload import Workload, even_token_reward

# TRL 1.16's own defaults differ from transformers' here (see trl/trainer/*_config.py).
FAIR = {"bf16": False, "gradient_checkpointing": False}
# Run once per task, shorter: TRL's own defaults, and bf16 without checkpointing, because this
# machine's CPU has native bf16 matmuls (avx512_bf16), where bf16 is a choice a user could make.
SINGLE = {"trl_defaults": {}, "trl_bf16_no_gc": {"bf16": True, "gradient_checkpointing": False}}


class _Clock(TrainerCallback):
    def __init__(self, clock: StepClock):
        self.clock = clock

    def on_step_end(self, args, state, control, **kw):
        self.clock.tick()

    def on_log(self, args, state, control, logs=None, **kw):
        if self.clock.first_loss is None and logs and "loss" in logs:
            self.clock.first_loss = float(logs["loss"])


def _in_order(cls):
    """The trainer with a sequential sampler: the dataset is already in rlxf's batch order."""
    class InOrder(cls):
        def _get_train_sampler(self, *args, **kwargs):
            return torch.utils.data.SequentialSampler(self.train_dataset)
    return InOrder


def _common(out: str, steps: int, batch: int, lr: float, extra: dict) -> dict:
    # `extra` may override use_cpu (bench/gpu_check.py trains on the GPU)
    return {**dict(output_dir=out, max_steps=steps, per_device_train_batch_size=batch,
                   learning_rate=lr, weight_decay=0.0, max_grad_norm=1.0, report_to="none",
                   save_strategy="no", logging_steps=10, logging_first_step=True,
                   disable_tqdm=True, use_cpu=True, dataloader_num_workers=0, seed=0), **extra}


def _texts(w: Workload, order: list[int]) -> dict[str, list[str]]:
    """TRL appends the EOS itself, so completions are passed without it."""
    return {"prompt": [w.text(w.prompts[i]) for i in order],
            "chosen": [" " + w.text(w.chosen[i][:-1]) for i in order],
            "rejected": [" " + w.text(w.rejected[i][:-1]) for i in order]}


def _train(trainer_cls, config_cls, model, data: Dataset, steps: int, batch: int, lr: float,
           warmup: int, extra: dict, check, ref_model=None, **config) -> StepClock:
    """Build the trainer, check via `check(first prepared row)` that TRL tokenized exactly what
    rlxf trains on, train, and return the step clock."""
    clock = StepClock(warmup)
    with tempfile.TemporaryDirectory() as out:
        args = config_cls(**_common(out, steps, batch, lr, extra), max_length=None, **config)
        kwargs = {"ref_model": ref_model} if ref_model is not None else {}
        trainer = _in_order(trainer_cls)(model=model, args=args, train_dataset=data,
                                         processing_class=check.tokenizer,
                                         callbacks=[_Clock(clock)], **kwargs)
        check(trainer.train_dataset[0])
        trainer.train()
    return clock


class _Expect:
    """Asserts that TRL's prepared first row holds rlxf's token ids under the given keys."""

    def __init__(self, w: Workload, **expected: list[int]):
        self.tokenizer, self.expected = w.tokenizer, expected

    def __call__(self, row: dict) -> None:
        for key, ids in self.expected.items():
            assert row[key] == ids, f"TRL tokenized {key}={row[key]}, rlxf trains on {ids}"


def run_sft(w: Workload, order: list[int], steps: int, batch: int, lr: float, warmup: int,
            extra: dict) -> StepClock:
    from trl import SFTConfig, SFTTrainer

    t, i = _texts(w, order), order[0]
    data = Dataset.from_dict({"prompt": t["prompt"], "completion": t["chosen"]})
    return _train(SFTTrainer, SFTConfig, w.causal_lm(), data, steps, batch, lr, warmup, extra,
                  _Expect(w, input_ids=w.prompts[i] + w.chosen[i]))


def run_reward(w: Workload, order: list[int], steps: int, batch: int, lr: float, warmup: int,
               extra: dict, head_seed: int) -> StepClock:
    from trl import RewardConfig, RewardTrainer

    i = order[0]
    return _train(RewardTrainer, RewardConfig, w.reward_model(head_seed),
                  Dataset.from_dict(_texts(w, order)), steps, batch, lr, warmup, extra,
                  _Expect(w, chosen_ids=w.prompts[i] + w.chosen[i],
                          rejected_ids=w.prompts[i] + w.rejected[i]))


def run_dpo(w: Workload, order: list[int], steps: int, batch: int, lr: float, warmup: int,
            extra: dict, beta: float) -> StepClock:
    from trl import DPOConfig, DPOTrainer

    i = order[0]
    # The frozen reference is passed as a model object, as a user with a local model does.
    return _train(DPOTrainer, DPOConfig, w.causal_lm(), Dataset.from_dict(_texts(w, order)),
                  steps, batch, lr, warmup, extra,
                  _Expect(w, prompt_ids=w.prompts[i], chosen_ids=w.chosen[i],
                          rejected_ids=w.rejected[i]),
                  ref_model=w.causal_lm(), beta=beta)


def run_grpo(w: Workload, prompt_order: list[int], steps: int, prompts_per_step: int,
             group: int, max_new_tokens: int, lr: float, warmup: int, extra: dict,
             beta: float, reward_func=None) -> StepClock:
    """TRL's GRPOTrainer (no vLLM: transformers generate) with the same G, completion length,
    temperature 1, β, clip ε, one update per rollout and sequence-mean loss (loss_type "grpo", as
    rlxf's), the same reward function on the sampled ids. The model is loaded from a directory,
    as TRL builds its reference model from the policy's path when β > 0. `prompt_order`: rlxf's
    prompt stream (TRL reads it sequentially, so both sides sample for the same prompts).
    `reward_func`: a TRL reward function that records completion lengths itself (the
    GRPO-from-files row's, bench/grpo_reward.py); by default the even-token share, recorded
    here."""
    from trl import GRPOConfig, GRPOTrainer

    clock = StepClock(warmup)

    def reward(prompts, completions, completion_ids, **kw):
        clock.completion_lengths += [len(c) for c in completion_ids]
        return [even_token_reward(c) for c in completion_ids]
    reward = reward_func or reward
    texts = [w.text(w.prompts[i]) for i in prompt_order]
    with tempfile.TemporaryDirectory() as out:
        model_dir = f"{out}/model"
        w.causal_lm().save_pretrained(model_dir)
        args = GRPOConfig(**_common(out, steps, prompts_per_step * group, lr, extra),
                          num_generations=group, max_completion_length=max_new_tokens,
                          temperature=1.0, top_p=1.0, top_k=0, beta=beta, epsilon=0.2,
                          num_iterations=1, loss_type="grpo", scale_rewards="group",
                          shuffle_dataset=False)
        trainer = GRPOTrainer(model=model_dir, reward_funcs=reward, args=args,
                              train_dataset=Dataset.from_dict({"prompt": texts}),
                              processing_class=w.tokenizer, callbacks=[_Clock(clock)])
        got = trainer.processing_class(text=texts[:1])["input_ids"][0]
        assert got == w.prompts[prompt_order[0]], f"TRL tokenized the prompt as {got}"
        trainer.train()
    return clock
