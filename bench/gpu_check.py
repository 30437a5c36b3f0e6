"""The GPU check (issue 14 item 9): SFT, reward model, DPO and GRPO, each a few dozen steps in
bf16 with rlxf and with TRL 1.16 side by side on the same batches, on a ~0.5B-parameter Llama
built from a config with random weights (no download).

    python bench/gpu_check.py              # on a CUDA machine; under 8 minutes on one H200
    python bench/gpu_check.py --tiny       # on the CPU: a tiny config, 2 steps each (the test)

Per task and side: tokens/s (prompt + completion tokens trained on, per second after the warm-up
steps), peak GPU memory (torch.cuda.max_memory_allocated; the CPU run reports peak RSS instead),
the first step's loss, and rlxf / TRL tokens/s. rlxf runs its training functions as the lab's
stages and bench/run.py call them, in the training engine with `device`/`precision` as
`rlxf sft --device cuda --precision bf16` sets them; TRL runs its trainers with `bf16=True`,
gradient checkpointing off (bench/trl_side.py). Both read the same examples in the same order
(bench/rlxf_side.batch_order), so their first-step losses should agree (DPO: log 2 on both).

A time guard keeps the whole run inside `--budget-s` (default 420 s): before each task it
estimates the task from the slowest task so far (GRPO: 3 times that) and skips what would not fit, saying so in the
output. A side that fails is recorded with its error and the run goes on.
Writes bench/results/<date>-gpu-check[-tiny].json (or --out) and prints a table."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench import rlxf_side, trl_side  # noqa: E402
from bench.gpu_workload import build_llama  # noqa: E402
from bench.measure import PeakRSS, machine, versions  # noqa: E402

TASKS = ("sft", "reward", "dpo", "grpo")
LR = {"sft": 3e-5, "reward": 3e-5, "dpo": 5e-6, "grpo": 1e-6}
BETA, GRPO_BETA, HEAD_SEED, SEED = 0.1, 0.04, 7, 0
GRPO_COST = 3  # the time guard's guess of a GRPO task's time over the slowest other task
# name -> (layers, hidden, heads, kv heads, intermediate); "0.5b": Qwen2-0.5B-like widths,
# 26 layers to reach ~0.5B parameters with the benchmark's 2048-word vocabulary.
SHAPES = {"0.5b": (26, 1024, 16, 8, 5120), "tiny": (2, 64, 4, 2, 128)}
# (steps, warm-up steps, batch, prompt tokens, completion tokens, GRPO prompts/step, group)
PLANS = {"0.5b": (24, 4, 8, 128, 128, 4, 4), "tiny": (2, 0, 2, 8, 8, 2, 2)}


def tokens_per_step(task: str, w, order: list[int], steps: int, warmup: int, group: int,
                    clock) -> float:
    """Tokens the timed steps trained on, per step: prompt + completion (both completions for
    a pair); for GRPO (`order` is the prompt stream, each prompt sampled `group` times) the
    prompts and the completions actually sampled."""
    per_step = len(order) // steps
    first, end = (warmup + 1) * per_step, steps * per_step
    timed = order[first:end]
    if task == "grpo":
        sampled = clock.completion_lengths[first * group: end * group]
        n = group * sum(len(w.prompts[i]) for i in timed) + sum(sampled)
    else:
        n = sum(len(w.prompts[i]) + len(w.chosen[i]) for i in timed)
        if task != "sft":
            n += sum(len(w.prompts[i]) + len(w.rejected[i]) for i in timed)
    return n / (steps - warmup - 1)


def run_side(side: str, task: str, w, plan: tuple, order: list[int], device: str) -> dict:
    steps, warmup, batch, _, completion_len, grpo_prompts, group = plan
    engine = {"device": device, "precision": "bf16"}
    trl = {**trl_side.FAIR, "bf16": True, "use_cpu": device == "cpu"}
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    with PeakRSS() as rss:
        if side == "rlxf" and task == "grpo":
            clock = rlxf_side.run_grpo(w, steps, grpo_prompts, group, completion_len, LR[task],
                                       warmup, SEED, GRPO_BETA, engine=engine)
        elif side == "rlxf" and task == "dpo":
            clock, _ = rlxf_side.run_dpo(w, steps, batch, LR[task], warmup, SEED, BETA,
                                         engine=engine)
        elif side == "rlxf" and task == "reward":
            clock = rlxf_side.run_reward(w, steps, batch, LR[task], warmup, SEED, HEAD_SEED,
                                         engine=engine)
        elif side == "rlxf":
            clock = rlxf_side.run_sft(w, steps, batch, LR[task], warmup, SEED, engine=engine)
        elif task == "grpo":
            clock = trl_side.run_grpo(w, order, steps, grpo_prompts, group, completion_len,
                                      LR[task], warmup, trl, GRPO_BETA)
        elif task == "dpo":
            clock = trl_side.run_dpo(w, order, steps, batch, LR[task], warmup, trl, BETA)
        elif task == "reward":
            clock = trl_side.run_reward(w, order, steps, batch, LR[task], warmup, trl, HEAD_SEED)
        else:
            clock = trl_side.run_sft(w, order, steps, batch, LR[task], warmup, trl)
    tokens = tokens_per_step(task, w, order, steps, warmup, group, clock)
    seconds = clock.seconds_per_step()
    return {"tokens_per_s": round(tokens / seconds, 1), "seconds_per_step": round(seconds, 4),
            "tokens_per_step": round(tokens, 1), "steps": steps, "warmup_steps": warmup,
            "first_loss": clock.first_loss, "wall_s": round(time.perf_counter() - t0, 1),
            "peak_gpu_memory_gib": (round(torch.cuda.max_memory_allocated() / 2**30, 2)
                                    if device == "cuda" else None),
            "peak_rss_mib": round(rss.mib, 1)}


def run_task(task: str, w, plan: tuple, device: str) -> dict:
    steps, _, batch, _, _, grpo_prompts, _ = plan
    order = rlxf_side.batch_order(len(w.prompts), steps, grpo_prompts if task == "grpo"
                                  else batch, SEED)
    result: dict = {}
    for side in ("rlxf", "trl"):
        try:
            result[side] = run_side(side, task, w, plan, order, device)
        except Exception as e:  # noqa: BLE001 -- a check reports what fails and goes on
            result[side] = {"error": f"{type(e).__name__}: {e}",
                            "traceback": traceback.format_exc()[-4000:]}  # the innermost frames
        print(f"  {task} {side}: " + (f"{result[side]['tokens_per_s']} tokens/s, first loss "
                                      f"{result[side]['first_loss']}, peak GPU "
                                      f"{result[side]['peak_gpu_memory_gib']} GiB"
                                      if "error" not in result[side]
                                      else f"FAILED {result[side]['error']}"), flush=True)
    if all("tokens_per_s" in result[s] for s in ("rlxf", "trl")):
        result["ratio_rlxf_vs_trl"] = round(result["rlxf"]["tokens_per_s"]
                                            / result["trl"]["tokens_per_s"], 3)
    return result


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiny", action="store_true", help="a tiny config, 2 steps each, on the "
                                                        "CPU unless a GPU is present")
    ap.add_argument("--only", nargs="+", choices=TASKS, default=list(TASKS))
    ap.add_argument("--budget-s", type=float, default=420.0,
                    help="skip tasks that would not finish within this many seconds")
    ap.add_argument("--out", type=Path, help="the JSON file (default bench/results/...)")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" and not args.tiny:
        raise SystemExit("no CUDA device here: the 0.5B check is for a GPU machine; "
                         "`--tiny` runs the same check on the CPU with a tiny model")
    shape = "tiny" if args.tiny else "0.5b"
    plan = PLANS[shape]
    steps, warmup, batch, prompt_len, completion_len, grpo_prompts, group = plan
    n_items = steps * max(batch, grpo_prompts)
    w = build_llama(SHAPES[shape], n_items, prompt_len, completion_len, SEED)
    record = {"what": "GPU check: rlxf vs TRL 1.16, bf16, same batches",
              "command": "python bench/gpu_check.py " + " ".join(argv if argv is not None
                                                                 else sys.argv[1:]),
              "date": dt.date.today().isoformat(), "device": device,
              "gpu": torch.cuda.get_device_name() if device == "cuda" else None,
              "machine": machine(), "versions": versions(),
              "model": {"architecture": "llama", "shape": shape, "parameters": w.parameters,
                        "layers_hidden_heads_kv_intermediate": SHAPES[shape],
                        "vocab": len(w.tokenizer)},
              "plan": dict(zip(("steps", "warmup_steps", "batch", "prompt_tokens",
                                "completion_tokens", "grpo_prompts_per_step", "grpo_group"),
                               plan)),
              "budget_s": args.budget_s, "tasks": {}, "skipped": {}}
    print(f"{shape} Llama, {w.parameters:,} parameters, on {record['gpu'] or device}", flush=True)
    slowest = 0.0
    for task in args.only:
        elapsed = time.perf_counter() - t_start
        # GRPO also samples (completion_tokens forwards per step): counted as 3 of the others
        estimate = slowest * (GRPO_COST if task == "grpo" else 1)
        if elapsed + estimate > args.budget_s:
            record["skipped"][task] = (f"would not fit: {elapsed:.0f} s used, estimated "
                                       f"{estimate:.0f} s from the slowest task so far, budget "
                                       f"{args.budget_s:.0f} s")
            print(f"  {task}: SKIPPED ({record['skipped'][task]})", flush=True)
            continue
        t0 = time.perf_counter()
        record["tasks"][task] = run_task(task, w, plan, device)
        slowest = max(slowest, time.perf_counter() - t0)
    record["total_s"] = round(time.perf_counter() - t_start, 1)
    out = args.out or (ROOT / "bench" / "results" /
                       f"{record['date']}-gpu-check{'-tiny' if args.tiny else ''}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2, default=_finite) + "\n")
    print(table(record))
    print(f"wrote {out} ({record['total_s']} s)")
    return record


def _finite(x):
    return None if isinstance(x, float) and not math.isfinite(x) else str(x)


def table(record: dict) -> str:
    mem = "peak GPU GiB" if record["device"] == "cuda" else "peak RSS MiB"
    key = "peak_gpu_memory_gib" if record["device"] == "cuda" else "peak_rss_mib"
    lines = [f"| task | rlxf tokens/s | TRL tokens/s | rlxf / TRL | {mem} rlxf / TRL | "
             "first loss rlxf / TRL |", "|---|---|---|---|---|---|"]
    for task, r in record["tasks"].items():
        cell = {s: r[s] if "error" not in r[s] else None for s in ("rlxf", "trl")}

        def get(side, field, cell=cell):
            return "failed" if cell[side] is None else cell[side][field]
        lines.append(f"| {task} | {get('rlxf', 'tokens_per_s')} | {get('trl', 'tokens_per_s')} | "
                     f"{r.get('ratio_rlxf_vs_trl', '-')} | {get('rlxf', key)} / {get('trl', key)}"
                     f" | {get('rlxf', 'first_loss')} / {get('trl', 'first_loss')} |")
    for task, why in record["skipped"].items():
        lines.append(f"| {task} | skipped: {why} | | | | |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
