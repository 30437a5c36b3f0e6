"""What `rlxf grpo`, `rlxf rloo` and `rlxf ppo` share: reading and checking every input before
OUT.partial/ exists (prompts, reward sources, model, LoRA), the reference (the starting model;
with LoRA the base with adapters disabled, no second copy), scoring decoded completions with the
reward sources, the held-out eval points (tune/rl_eval.py) and saving the result."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from ..models.build import load_tokenizer
from ..models.chat import ChatFormat, chat_format
from ..models.fused_ops import fuse_activations
from ..models.logprobs import group_response_logprobs
from ..models.lora import reference_of
from ..models.rollout_backend import Samples, TransformersBackend
from ..rewards.batch import RewardBatch
from ..rewards.combine import RewardSources, Scored
from ..rewards.encoding import prompt_ids
from ..rewards.steps import token_step_ends
from ..rundir import atomic_write_json, sha256_file
from ..train.engine import Engine
from .common import (Output, TuneError, check_model_dir, context_limit, disable_dropout,
                     prepare, save_model, trainable_parameters)
from .hparams import train_hparams
from .prompts import PromptRow, load_prompts, split_heldout
from .rl_card import write_rl_record
from .rl_eval import eval_point, nanmean, prompt_level, response_entropy


class RowIds(list):
    """A prompt's token ids that remember their prompt-file row, so a reward source sees the
    row's fields wherever the ids travel (e.g. through train/ppo.py)."""
    row: PromptRow


def _spec_fingerprint(spec: str) -> dict:
    """A function file's content joins the fingerprint: an edited reward function never
    resumes a run it did not start."""
    target = spec.rpartition(":")[0]
    return {"spec": spec, **({"sha256": sha256_file(Path(target))}
                             if target.endswith(".py") and Path(target).is_file() else {})}


def tensorboard(directory: Path, name: str, main: bool = True):
    """TensorBoard event files in OUT/tb/ (training metrics every step, every eval point),
    written by the main process only (under several processes the others log nothing)."""
    from accelerate.tracking import TensorBoardTracker

    from ..stages.tracking import Tracker
    if not main:
        return Tracker([])
    board = TensorBoardTracker(name, directory)
    board.start()
    return Tracker([board])


def _encode(chat: ChatFormat, rows: list[PromptRow]) -> list[RowIds]:
    encoded = []
    for r in rows:
        ids = RowIds(prompt_ids(chat, r.prompt))
        ids.row = r
        encoded.append(ids)
    return encoded


@dataclass
class RLSession:
    command: str
    model_dir: Path
    prompts_path: Path
    cfg: object
    sources: RewardSources
    tokenizer: object
    chat: ChatFormat
    policy: torch.nn.Module
    reference: torch.nn.Module | None   # None with LoRA: the policy with adapters disabled
    train: list[RowIds]
    heldout: list[RowIds]
    counts: dict
    output: Output
    backend: TransformersBackend
    engine: Engine               # processes, device, precision, accumulation (train/engine.py)
    started: float
    last_eval: dict = field(default_factory=dict)
    # more measurements at each eval point, from (the held-out batch, its rewards): the
    # pipeline's model world adds gold and gold-free over-optimisation signals this way
    eval_extra: Callable[[RewardBatch, Scored], dict] | None = None

    @classmethod
    def open(cls, command: str, model_dir: Path, prompts_path: Path, out: Path, cfg,
             rewards: list[str], reward_weights: str | None, top_p: float = 1.0,
             eval_extra=None, eval_prompts: Path | None = None,
             inputs: dict | None = None) -> "RLSession":
        """Every input read and checked, then (inputs good) OUT.partial/ claimed. The held-out
        prompts are `eval_prompts`' rows when given (e.g. a lab run's held-out split), else
        cfg.eval_fraction of PROMPTS. `inputs`: the command's other input files (name: {file,
        sha256}), in the fingerprint, so that a changed file never resumes a run."""
        started = time.time()
        if out.exists():
            raise TuneError(f"{out}: already exists (choose another --out or remove it)")
        check_model_dir(model_dir)
        engine = Engine(train_hparams(cfg), recipe=command)
        split = engine.num_processes * engine.grad_accum
        if cfg.batch_size % split:  # each prompt's group stays whole inside one micro-batch
            raise TuneError(f"batch_size {cfg.batch_size} (prompts) does not split into "
                            f"{engine.num_processes} process(es) x grad_accum "
                            f"{engine.grad_accum}: make it a multiple of {split}")
        rows = load_prompts(prompts_path)
        eval_rows = load_prompts(eval_prompts) if eval_prompts else []
        sources = RewardSources(rewards, reward_weights)
        tok = load_tokenizer(model_dir)
        chat = chat_format(tok)
        from transformers import AutoModelForCausalLM
        policy = AutoModelForCausalLM.from_pretrained(model_dir.resolve())
        limit = context_limit(policy, cfg.max_length) - cfg.max_new_tokens
        encoded = _encode(chat, rows)
        fitting = [ids for ids in encoded if len(ids) <= limit]
        if not fitting:
            raise TuneError(f"{prompts_path}: no prompt leaves room for max_new_tokens "
                            f"({cfg.max_new_tokens}) within max_length ({cfg.max_length})")
        if eval_prompts:
            train, heldout = fitting, [ids for ids in _encode(chat, eval_rows)
                                       if len(ids) <= limit]
            if not heldout:
                raise TuneError(f"{eval_prompts}: no prompt leaves room for max_new_tokens "
                                f"({cfg.max_new_tokens}) within max_length ({cfg.max_length})")
        else:
            train, heldout = split_heldout(fitting, cfg.eval_fraction, cfg.seed)
        output = Output(out, {"command": command, "model": str(model_dir.resolve()),
                              "prompts": sha256_file(prompts_path),
                              **({"eval_prompts": sha256_file(eval_prompts)}
                                 if eval_prompts else {}),
                              "rewards": [_spec_fingerprint(s) for s in rewards],
                              "reward_weights": sources.weights,
                              "config": cfg.model_dump(mode="json"), **(inputs or {})}, engine)
        disable_dropout(policy)
        fuse_activations(policy)  # same function, cheaper kernels (models/fused_ops.py)
        policy = prepare(policy, cfg)
        reference = None
        if cfg.lora is None:
            reference = AutoModelForCausalLM.from_pretrained(model_dir.resolve()).eval()
            reference.to(engine.device)
            disable_dropout(reference)
            fuse_activations(reference)
            reference.requires_grad_(False)
        counts = {"file": str(prompts_path), "sha256": sha256_file(prompts_path),
                  "prompts": len(rows), "train": len(train), "heldout": len(heldout),
                  "skipped_too_long": len(encoded) - len(fitting),
                  **({"eval_file": str(eval_prompts), "eval_prompts": len(eval_rows)}
                     if eval_prompts else {})}
        backend = TransformersBackend(cfg.max_new_tokens, cfg.temperature, top_p,
                                      tok.pad_token_id, tuple(chat.stop_ids))
        return cls(command, model_dir, prompts_path, cfg, sources, tok, chat, policy,
                   reference, train, heldout, counts, output, backend, engine, started,
                   eval_extra=eval_extra)

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_token_id

    @torch.no_grad()
    def ref_logprobs(self, prompts: list[list[int]], responses: list[list[int]]):
        """(per-token log-probs, mask) of the responses under the reference."""
        with reference_of(self.policy) if self.reference is None else contextlib.nullcontext():
            return group_response_logprobs(self.reference or self.policy, prompts, responses,
                                           self.pad_id)

    def score(self, prompts: list[RowIds], responses: list[list[int]],
              truncated: list[bool] | None = None) -> Scored:
        """Every reward source on the decoded responses; `prompts` one per response."""
        return self.sources(self.batch(prompts, responses, truncated))

    def step_credit(self, responses: list[list[int]], scored: Scored
                    ) -> tuple[list[list[float]], list[list[int]]] | None:
        """(step rewards, step ends as token positions) per response, when a process reward
        model scored the steps (rewards/steps.py); else None."""
        if scored.steps is None:
            return None
        ends = [token_step_ends(self.chat.decode, ids, self.chat.decode(ids), st.char_ends)
                for ids, st in zip(responses, scored.steps)]
        return [st.rewards for st in scored.steps], ends

    def batch(self, prompts: list[RowIds], responses: list[list[int]],
              truncated: list[bool] | None = None) -> RewardBatch:
        rows = [p.row for p in prompts]
        return RewardBatch([r.prompt for r in rows], [self.chat.decode(ids) for ids in responses],
                           responses, [r.fields for r in rows], [r.where for r in rows],
                           truncated or [])

    @torch.no_grad()
    def evaluate(self, step: int, tracker) -> dict:
        """One eval point on the held-out prompts: the same prompts and seed every time."""
        if not self.heldout:
            return {}
        k, pad = self.cfg.eval_samples, self.pad_id
        samples: Samples = self.backend.sample(self.policy, self.heldout, k,
                                               seed=self.cfg.seed + 7919)
        repeated = [p for p in self.heldout for _ in range(k)]
        batch = self.batch(repeated, samples.responses, samples.truncated)
        scored = self.sources(batch)
        logp, mask = group_response_logprobs(self.policy, self.heldout, samples.responses, pad)
        ref, _ = self.ref_logprobs(self.heldout, samples.responses)
        point = eval_point(self.sources, scored, samples.responses, samples.truncated, logp,
                           ref, mask.float(), response_entropy(self.policy, repeated,
                                                               samples.responses, pad))
        point.update(prompt_level(scored.total, k))
        if self.eval_extra is not None:
            point.update(self.eval_extra(batch, scored))
        tracker.log({f"eval/{k}": v for k, v in point.items() if isinstance(v, (int, float))},
                    step)
        self.last_eval = point
        return point

    def progress(self, progress, name: str):
        """A step callback for the progress bar (the main process's: one per job) that also
        shows the last held-out reward."""
        show = progress and self.engine.is_main_process and progress(name, self.cfg.steps)

        def report(step: int, metrics: dict) -> None:
            if show:
                shown = self.last_eval.get("reward/mean")
                show(step, {**metrics, **({"eval/reward": shown} if shown is not None else {})})
        return report

    def rewards(self) -> list[dict]:
        """Each reward source as the record names it: name, kind, weight, SPEC (a function
        file with its sha256)."""
        return [{**d, **_spec_fingerprint(spec)}
                for d, spec in zip(self.sources.describe(), self.sources.specs)]

    def finish(self, result: dict, value_head: Callable[[Path], dict] | None = None) -> dict:
        """history.json, the model (or adapter), record and card; OUT.partial/ -> OUT.
        `value_head(OUT.partial)`: PPO's critic saved beside the model; what it returns (what
        the file is) goes into the record and the card."""
        history = result.pop("history")
        params = trainable_parameters(self.policy)  # before a merge folds the adapters away
        record: dict = {}

        def write(work: Path) -> None:  # on the main process only (Output.finish)
            atomic_write_json(work / "history.json", history)
            saved = save_model(self.policy, self.tokenizer, work, self.cfg.merge)
            head = value_head(work) if value_head is not None else None
            record.update(write_rl_record(work, self.output.out.name, self.command,
                                          self.model_dir, self.cfg, self.counts,
                                          self.rewards(), {**result, **params},
                                          history, saved, self.chat.kind, self.backend.name,
                                          self.started, self.output, value_head=head))
        out = self.output.finish(write)
        return {**record, "out": str(out), "heldout_change": record.get("heldout_change"),
                "heldout_reward": [nanmean([history[0].get("reward/mean")]),
                                   nanmean([history[-1].get("reward/mean")])]
                if history else None}
