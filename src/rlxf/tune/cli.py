"""`rlxf sft`, `rlxf reward`, `rlxf dpo`, `rlxf merge` and `rlxf score`: fine-tuning any local
Hugging Face causal LM on a dataset file, without the lab world, and scoring rows with a reward
model (docs/REAL_MODELS.md)."""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import typer
from rich.markup import escape

FORMATS_HELP = ("data format: auto (canonical feedback JSONL if the first row is one, else TRL), "
                "canonical, or any `rlxf data import` format (trl, hh-rlhf, "
                "ultrafeedback-binarized, pku-saferlhf, shp, ...)")
LORA_HELP = ("LoRA adapters: R,ALPHA[,TARGET,...] (e.g. 8,16 or 16,32,q_proj,v_proj; "
             "targets default to all linear layers)")


def parse_lora(text: str) -> dict:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        r, alpha = int(parts[0]), float(parts[1])
    except (IndexError, ValueError):
        raise typer.BadParameter(f"{text!r}: expected R,ALPHA[,TARGET,...], e.g. 8,16 or "
                                 "16,32,q_proj,v_proj") from None
    return {"r": r, "alpha": alpha, **({"targets": parts[2:]} if parts[2:] else {})}


def _overrides(**flags) -> dict:
    """Flags the user gave (not None), as config keys."""
    out = {k: v for k, v in flags.items() if v is not None and k != "lora"}
    if flags.get("lora"):
        out["lora"] = parse_lora(flags["lora"])
    return out


def command_config(command: str, config: Path | None, flags: dict):
    """The command's table of the --config TOML with the flags on top; exit 2 if invalid."""
    from ..console import console
    from ..config import ConfigError, load_tune_config
    try:
        return getattr(load_tune_config(config, {command: _overrides(**flags)}), command)
    except ConfigError as e:
        console.print("config error", style="red")
        console.print(str(e), markup=False, highlight=False)
        raise typer.Exit(2) from None


def _run(command: str, model_dir: Path, data: Path, out: Path, config: Path | None,
         fmt: str, threads: int, flags: dict) -> None:
    from ..console import console, progress_factory
    from ..feedback.record import RecordError
    from ..train.engine import UnsupportedLaunch
    from .common import TuneError
    from .kto import run_kto
    from .recipes import run_dpo, run_reward, run_sft

    cfg = command_config(command, config, flags)
    import torch
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn)
    torch.set_num_threads(threads or os.cpu_count() or 1)
    recipe = {"sft": run_sft, "reward": run_reward, "dpo": run_dpo, "kto": run_kto}[command]
    try:
        with Progress(TextColumn("{task.description:<8}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), TextColumn("{task.fields[info]}"),
                      console=console) as progress:
            record = recipe(model_dir, data, out, cfg, fmt, progress_factory(progress))
    except (TuneError, RecordError, UnsupportedLaunch, OSError) as e:
        console.print(f"[red]error[/red] {escape(str(e))}")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        partial = out.with_name(out.name + ".partial")
        console.print(f"[yellow]interrupted[/yellow]: {escape(str(partial))} keeps the last "
                      f"checkpoint (saved every {cfg.checkpoint_every} steps); rerun the same "
                      "command (same data and options) to resume from it")
        raise typer.Exit(130) from None
    if int(os.environ.get("RANK", "0")) == 0:  # one job, one line (accelerate launch)
        console.print(f"[green]{command}[/green]: {record['saved']} -> "
                      f"{escape(record['out'])} ({record['data']['examples']} examples, "
                      f"{cfg.steps} steps)")


MODEL_ARG = typer.Argument(..., help="a local Hugging Face model directory (config.json, "
                                     "weights, tokenizer)")
PREFS_HELP = ("preferences: canonical feedback JSONL or a TRL (or other importable) preference "
              "file")


def _flags(extra: dict) -> list[inspect.Parameter]:
    """The command line every fine-tuning command shares; `extra` adds its own flags. Flags
    left out (None) keep the TOML's or the default value."""
    flags = {
        "out": (Path, typer.Option(..., "--out", help="directory to write (must not exist; "
                                   "work happens in OUT.partial/, which a rerun resumes)")),
        "config": (Path, typer.Option(None, "--config", help="TOML with sft, reward and dpo "
                                      "tables (docs/CONFIG.md); flags override it")),
        "fmt": (str, typer.Option("auto", "--format", help=FORMATS_HELP)),
        "steps": (int, typer.Option(None)), "batch_size": (int, typer.Option(None)),
        "lr": (float, typer.Option(None)), **extra,
        "max_length": (int, typer.Option(None, help="tokens per sequence")),
        "lora": (str, typer.Option(None, help=LORA_HELP)),
        "gradient_checkpointing": (bool, typer.Option(None, "--gradient-checkpointing")),
        "precision": (str, typer.Option(None, help="auto | fp32 | bf16 | fp16 (mixed precision "
                                    "through accelerate; auto: bf16 on a GPU that has it)")),
        "grad_accum": (int, typer.Option(None, "--grad-accum", help="micro-batches per "
                                         "optimizer step")),
        "device": (str, typer.Option(None, help="auto | cpu | cuda (auto: the GPU accelerate "
                                     "launch gave this process, else cpu)")),
        "merge": (bool, typer.Option(None, "--merge", help="with --lora: save the merged "
                                                           "model, not the adapter")),
        "seed": (int, typer.Option(None)),
        "threads": (int, typer.Option(0, help="torch threads (0: one per core)")),
    }
    return [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                              annotation=kind) for name, (kind, default) in flags.items()]


def _command(command: str, data_help: str, doc: str, extra: dict | None = None):
    def run(model_dir: Path, data: Path, *, out: Path, config: Path | None, fmt: str,
            threads: int, **flags) -> None:
        _run(command, model_dir, data, out, config, fmt, threads, flags)
    positional = [inspect.Parameter("model_dir", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                    default=MODEL_ARG, annotation=Path),
                  inspect.Parameter("data", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                    default=typer.Argument(..., help=data_help),
                                    annotation=Path)]
    run.__signature__ = inspect.Signature(positional + _flags(extra or {}))
    run.__name__, run.__doc__ = command, doc
    return run


sft = _command("sft", "TRL SFT data (prompt/completion or messages), or preference data "
                      "(trains on the chosen response)",
               "Supervised fine-tuning of a local model on a dataset file (loss on response "
               "tokens).",
               {"packing": (bool, typer.Option(None, "--packing", help="pack examples into rows "
                                               "of max_length tokens (TRL's packing=True, "
                                               "best-fit decreasing; --batch-size counts rows)"))})
reward = _command("reward", PREFS_HELP + "; with --aspects, rating records",
                  "A Bradley-Terry reward model (scalar head on the model) from preference data "
                  "(rating records binarised into pairs), or with --aspects a regression head "
                  "with one output per rating aspect.",
                  {"aspects": (bool, typer.Option(None, "--aspects", help="regression on rating "
                                                  "records (e.g. --format helpsteer2): one "
                                                  "output per aspect"))})
dpo = _command("dpo", PREFS_HELP, "Direct Preference Optimisation of a local model; MODEL_DIR "
                                  "is also the reference (with --lora: the base with adapters "
                                  "disabled).",
               {"beta": (float, typer.Option(None, help="DPO's KL strength"))})
kto = _command("kto", "TRL unpaired rows {prompt, completion, label}, or preference data "
                      "(split: chosen desirable, rejected undesirable)",
               "KTO of a local model from binary (desirable / undesirable) feedback; MODEL_DIR "
               "is also the reference (with --lora: the base with adapters disabled).",
               {"beta": (float, typer.Option(None, help="KTO's β"))})


def merge(adapter_dir: Path = typer.Argument(..., help="a LoRA adapter directory (from "
                                                       "--lora)"),
          out: Path = typer.Option(..., "--out", help="the plain model directory to write"),
          base: Path = typer.Option(None, help="the base model, if it moved since training")
          ) -> None:
    """Fold a LoRA adapter into its base model: a plain Hugging Face model directory."""
    from ..console import console
    from ..models.lora import is_adapter_dir, merge_adapter
    if not is_adapter_dir(adapter_dir):
        console.print(f"[red]error[/red] {escape(str(adapter_dir))}: not a LoRA adapter "
                      "directory (no adapter_config.json)")
        raise typer.Exit(1)
    if out.exists():
        console.print(f"[red]error[/red] {escape(str(out))}: already exists")
        raise typer.Exit(1)
    try:
        merge_adapter(adapter_dir, out, base)
    except FileNotFoundError as e:
        console.print(f"[red]error[/red] {escape(str(e))}")
        raise typer.Exit(1) from None
    console.print(f"[green]merged[/green] {escape(str(adapter_dir))} -> {escape(str(out))}")


def score(model_dir: Path = typer.Argument(..., help="a reward model directory (from `rlxf "
                                                   "reward`, a reward adapter, or any one-label "
                                                   "AutoModelForSequenceClassification)"),
          data: Path = typer.Argument(..., help="JSONL rows with prompt and completion (or "
                                                "response): both strings, or both message "
                                                "lists"),
          out: Path = typer.Option(..., "--out", help="JSONL to write: the rows with `reward` "
                                                      "added (must not exist)"),
          batch_size: int = typer.Option(16, help="rows per forward"),
          max_length: int = typer.Option(2048, help="tokens per sequence (longer responses "
                                                    "are cut and counted)"),
          threads: int = typer.Option(0, help="torch threads (0: one per core)")) -> None:
    """The reward of each prompt/response row under a reward model, as the model's own
    forward (AutoModelForSequenceClassification) reads it."""
    import torch

    from ..console import console
    from ..feedback.record import RecordError
    from .common import TuneError
    from .score import score_file
    torch.set_num_threads(threads or os.cpu_count() or 1)
    try:
        with console.status("scoring") as status:
            result = score_file(model_dir, data, out, batch_size, max_length,
                                lambda done, total: status.update(f"scored {done}/{total}"))
    except (TuneError, RecordError, OSError) as e:
        console.print(f"[red]error[/red] {escape(str(e))}")
        raise typer.Exit(1) from None
    console.print(f"[green]scored[/green] {result['rows']} rows -> {escape(result['out'])}"
                  + (f" ({result['truncated']} responses cut at max_length)"
                     if result["truncated"] else ""))


def register(app: typer.Typer) -> None:
    for command in (sft, reward, dpo, kto, merge, score):
        app.command()(command)
