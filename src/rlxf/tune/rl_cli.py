"""`rlxf grpo` and `rlxf rloo`: RL on any local Hugging Face causal LM from a prompt file and
reward sources (docs/REAL_MODELS.md). Same conventions as `rlxf dpo`: flags override the
--config TOML's [grpo] / [rloo] table, work happens in OUT.partial/ (a rerun resumes), a model
card is written."""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import typer
from rich.markup import escape

from .cli import MODEL_ARG, _flags, command_config

REWARD_HELP = ("reward source (repeatable): path/file.py:function or package.module:function "
               "(TRL's reward-function signature), a reward-model directory, judge:FILE.toml "
               "(AI judge, \\[feedback.ai] keys), gold:RUN_DIR (a lab run's gold judge), "
               "prm:PATH (a process reward model: a PRM directory, steps = lines, or a lab "
               "run's process PRM; grpo/rloo credit each step), orm:RUN_DIR (a lab run's "
               "process-stage outcome reward model)")
SAMPLING = {
    "max_new_tokens": (int, typer.Option(None)), "temperature": (float, typer.Option(None)),
    "eval_fraction": (float, typer.Option(None, help="share of PROMPTS held out")),
    "eval_every": (int, typer.Option(None)), "eval_samples": (int, typer.Option(None)),
    "warmup_steps": (int, typer.Option(None)),
}
GROUP_OPTIONS = {
    **SAMPLING,
    "group_size": (int, typer.Option(None, help="completions per prompt (G)")),
    "top_p": (float, typer.Option(None)),
    "beta": (float, typer.Option(None, help="KL to the reference (k3 in the loss for grpo, "
                                            "in the reward for rloo)")),
    "loss_type": (str, typer.Option(None, help="grpo: grpo | bnpo | dr_grpo | dapo")),
    "importance_level": (str, typer.Option(None, help="grpo: token | sequence (GSPO)")),
    "clip_range": (float, typer.Option(None, help="ε (ε_low)")),
    "clip_range_high": (float, typer.Option(None, help="DAPO's ε_high")),
    "scale_rewards": (str, typer.Option(None, help="grpo: group | batch | none")),
    "baseline": (str, typer.Option(None, help="rloo: loo | batch (REINFORCE++-baseline)")),
    "updates_per_rollout": (int, typer.Option(None)),
    "dynamic_sampling": (bool, typer.Option(None, "--dynamic-sampling/--no-dynamic-sampling")),
    "mask_truncated": (bool, typer.Option(None, "--mask-truncated/--no-mask-truncated")),
}
PPO_KEYS = {  # flags of `rlxf ppo` that set [ppo.ppo] keys
    "kl_coef": (float, typer.Option(None, help="β of the per-token KL penalty")),
    "kl_target": (float, typer.Option(None, help="adaptive KL controller's target")),
    "vf_coef": (float, typer.Option(None, help="weight of the value loss")),
    "epochs": (int, typer.Option(None)), "minibatches": (int, typer.Option(None)),
    "clip_range": (float, typer.Option(None, help="policy ratio clip ε")),
    "whiten_rewards": (bool, typer.Option(None, "--whiten-rewards/--no-whiten-rewards")),
}


def _run(command: str, model_dir: Path, prompts: Path, out: Path, config: Path | None,
         reward: list[str], reward_weights: str | None, eval_prompts: Path | None,
         threads: int, flags: dict) -> None:
    from ..console import console, progress_bars, progress_factory
    from ..rewards.batch import RewardError
    from ..train.engine import UnsupportedLaunch
    from .common import TuneError
    from .rl import run_group_rl
    from .rl_ppo import run_ppo

    if command == "ppo":
        nested = {k: flags.pop(k) for k in PPO_KEYS if flags.get(k) is not None}
        for k in PPO_KEYS:
            flags.pop(k, None)
        flags["ppo"] = nested or None
    cfg = command_config(command, config, flags)
    import torch
    torch.set_num_threads(threads or os.cpu_count() or 1)
    try:
        with progress_bars() as progress:
            args = (model_dir, prompts, out, cfg, reward or [], reward_weights,
                    progress_factory(progress))
            record = (run_ppo(*args, eval_prompts=eval_prompts) if command == "ppo" else
                      run_group_rl(command, *args, eval_prompts=eval_prompts))
    except (TuneError, RewardError, UnsupportedLaunch, OSError) as e:
        console.print(f"[red]error[/red] {escape(str(e))}")
        raise typer.Exit(1) from None
    if int(os.environ.get("RANK", "0")) != 0:
        return  # one job, one report (accelerate launch): the main process's
    first, last = record["heldout_reward"] or (None, None)
    saved = record["saved"] + (" + value head" if record.get("value_head") else "")
    console.print(f"[green]{command}[/green]: {saved} -> {escape(record['out'])} "
                  f"({cfg.steps} steps; held-out reward {first} -> {last})")
    change = record.get("heldout_change")
    if change and change["change_ci95"]:
        lo, hi = change["change_ci95"]
        console.print(f"held-out reward change {change['change']:+.4f} [95% CI {lo:+.4f}, "
                      f"{hi:+.4f}] over {change['n_prompts']} prompts x "
                      f"{change['samples_per_prompt']} samples: "
                      f"{'beyond noise' if change['beyond_noise'] else 'within noise'}")


def _command(command: str, doc: str, options: dict):
    def run(model_dir: Path, prompts: Path, *, out: Path, config: Path | None,
            reward: list[str], reward_weights: str | None, eval_prompts: Path | None,
            threads: int, **flags) -> None:
        _run(command, model_dir, prompts, out, config, reward, reward_weights, eval_prompts,
             threads, flags)
    shared = [p for p in _flags(options) if p.name != "fmt"]
    extra = [inspect.Parameter("reward", inspect.Parameter.KEYWORD_ONLY, annotation=list[str],
                               default=typer.Option(..., "--reward", help=REWARD_HELP)),
             inspect.Parameter("reward_weights", inspect.Parameter.KEYWORD_ONLY, annotation=str,
                               default=typer.Option(None, "--reward-weights",
                                                    help="one weight per --reward, e.g. 1,0.5")),
             inspect.Parameter("eval_prompts", inspect.Parameter.KEYWORD_ONLY, annotation=Path,
                               default=typer.Option(None, "--eval-prompts",
                                                    help="held-out prompts from this file (same "
                                                         "rows as PROMPTS) instead of "
                                                         "--eval-fraction of PROMPTS"))]
    positional = [inspect.Parameter("model_dir", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                    default=MODEL_ARG, annotation=Path),
                  inspect.Parameter("prompts", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                    default=typer.Argument(..., help="JSONL rows with `prompt` "
                                                           "(string or messages) and any "
                                                           "fields the reward functions read"),
                                    annotation=Path)]
    run.__signature__ = inspect.Signature(positional + shared[:1] + extra + shared[1:])
    run.__name__, run.__doc__ = command, doc
    return run


grpo = _command("grpo", "GRPO-family RL (GRPO, Dr. GRPO, DAPO, GSPO options) of a local model "
                        "against reward functions, reward models or judges.", GROUP_OPTIONS)
rloo = _command("rloo", "RLOO (REINFORCE, leave-one-out or REINFORCE++ baseline) of a local "
                        "model against reward functions, reward models or judges.",
                GROUP_OPTIONS)
VALUE_HEAD = {"value_head": (str, typer.Option(
    None, "--value-head", help="start the critic from a saved value head: a `rlxf ppo` OUT or "
                               "its value_head.safetensors (default: zeros)"))}
ppo = _command("ppo", "PPO (value head, KL penalty to the reference, GAE) of a local model "
                      "against reward functions, reward models or judges; OUT gets the policy "
                      "and its value head (value_head.safetensors).",
               {**SAMPLING, **PPO_KEYS, **VALUE_HEAD})


def register(app: typer.Typer) -> None:
    for command in (grpo, rloo, ppo):
        app.command()(command)
