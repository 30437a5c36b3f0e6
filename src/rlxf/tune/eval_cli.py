"""`rlxf eval --policy DIR --reference DIR --prompts FILE [--reward SPEC ...] [--gold SPEC]
--out RUN`: the command line of tune/eval_run.py."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.markup import escape

from .rl_cli import REWARD_HELP


def eval_command(
        policy: Path = typer.Option(..., "--policy", help="the policy's model directory"),
        reference: Path = typer.Option(..., "--reference",
                                       help="its reference (e.g. the SFT model) directory"),
        prompts: Path = typer.Option(..., "--prompts", help="held-out prompts: JSONL rows with "
                                     "`prompt` (string or messages), as `rlxf grpo` reads"),
        out: Path = typer.Option(..., "--out", help="run directory to write (new or empty)"),
        reward: list[str] = typer.Option([], "--reward", help="proxy " + REWARD_HELP),
        reward_weights: str = typer.Option(None, "--reward-weights",
                                           help="one weight per --reward, e.g. 1,0.5"),
        gold: str = typer.Option(None, "--gold", help="the gold: the same SPEC kinds as "
                                 "--reward (gold:RUN_DIR is a lab run's gold judge)"),
        gold_steps: Path = typer.Option(None, "--gold-steps", metavar="RUN", help="a lab "
                                        "run whose process stage ran: cut each reply to its "
                                        "multi-step questions into steps, score them with its "
                                        "PRM and judge them with its gold step judge (PRM "
                                        "hacking; RUN/eval/gold_steps.json)"),
        samples_per_prompt: int = typer.Option(4, min=1),
        temperature: float = typer.Option(1.0, min=0.0, help="1: KL is exact (docs/EVAL.md)"),
        max_new_tokens: int = typer.Option(64, min=1),
        top_p: float = typer.Option(1.0, min=0.0, max=1.0),
        seed: int = typer.Option(0),
        batch_size: int = typer.Option(16, min=1, help="prompts per sampling call"),
        probes: bool = typer.Option(True, "--probes/--no-probes",
                                    help="the probe battery (docs/PROBES.md)"),
        device: str = typer.Option("cpu", help="cpu, cuda or auto"),
        precision: str = typer.Option("fp32", help="fp32, bf16, fp16 or auto (model dtype)"),
        threads: int = typer.Option(0, help="torch CPU threads (0: all cores)")) -> None:
    """Measure a policy against its reference on held-out prompts: proxy and gold reward, KL,
    length, distinct-n, entropy and the probe battery, each with a 95% interval; written to
    the run directory RUN (docs/EVAL.md)."""
    import torch

    from ..console import console
    from ..eval.policy_vs_reference import EvalOptions
    from ..rewards.batch import RewardError
    from .common import TuneError
    from .eval_run import run_eval
    torch.set_num_threads(threads or os.cpu_count() or 1)
    options = EvalOptions(samples_per_prompt, temperature, max_new_tokens, top_p, seed,
                          batch_size, probes)
    try:
        with console.status("eval") as status:
            record = run_eval(policy, reference, prompts, out, rewards=reward,
                              reward_weights=reward_weights, gold=gold, options=options,
                              gold_steps=gold_steps,
                              device=device, precision=precision,
                              progress=lambda text: status.update(text))
    except (TuneError, RewardError, OSError) as e:
        console.print(f"[red]error[/red] {escape(str(e))}")
        raise typer.Exit(1) from None
    kl = record["metrics"].get("policy/kl/to_reference")
    console.print(f"[green]eval[/green]: {record['counts']['evaluated']} prompts x "
                  f"{record['counts']['samples_per_prompt']} -> {escape(record['out'])} "
                  f"(KL to the reference {kl:.4f})")
