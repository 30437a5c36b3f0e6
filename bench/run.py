"""rlxf vs TRL 1.16 training throughput, side by side in one process, as ratios.

    .venv/bin/python bench/run.py                      # sft, reward, dpo on the 5M model
    .venv/bin/python bench/run.py --only dpo --model 1m --repeats 5

Both sides start from the same weights, see the same batches in the same order and print their
step-0 losses. Every repeat runs rlxf and TRL (fair configuration) back to back, alternating which
goes first, so a burst of load from other processes hits both; the ratio of each repeat is
reported with the median and the spread. TRL's defaults (bf16 autocast + gradient checkpointing)
are run once per task, shorter, because they are an order of magnitude slower on a CPU.
Results: bench/results/<date>-<model>.json and .md (see bench/README.md)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
from pathlib import Path

import datasets
import torch
import transformers

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import rlxf_side, trl_side  # noqa: E402
from bench.measure import PeakRSS, machine, matmul_peak_flops, versions  # noqa: E402
from bench.workload import MODELS, SAMPLED, build, param_counts  # noqa: E402
from rlxf.rewards.functions import load_function  # noqa: E402

TASKS = ("sft", "reward", "dpo", "grpo", "grpo_files")
UNIT = {"sft": "examples/s", "reward": "pairs/s", "dpo": "pairs/s", "grpo": "completions/s",
        "grpo_files": "completions/s"}
LR = {"sft": 3e-4, "reward": 3e-4, "dpo": 5e-5, "grpo": 1e-5, "grpo_files": 1e-5}
BETA, HEAD_SEED = 0.1, 7
GRPO_BETA = 0.04  # rlxf's default [policy.group] kl_coef; TRL loads a reference when β > 0
# Model FLOPs per token: training forward + backward (6N); GRPO adds the sampling forward and
# the reference forward (2N each) -- rlxf's extra π_old forward is not counted as useful work.
GRPO_ROWS = {"grpo": "GRPO (the lab recipe, train/group_rl.py)",
             "grpo_files": "GRPO from files (`rlxf grpo MODEL PROMPTS --reward "
                           "bench/grpo_reward.py:even_tokens`, tune/rl.py)"}
FLOPS_PER_PARAM_TOKEN = {"sft": 6, "reward": 6, "dpo": 6, "grpo": 10, "grpo_files": 10}
RESULTS = Path(__file__).resolve().parent / "results"


def tokens_per_example(w, task: str, i: int) -> int:
    p = len(w.prompts[i])
    if task == "sft":
        return p + len(w.chosen[i])
    return 2 * p + len(w.chosen[i]) + len(w.rejected[i])


def is_grpo(task: str) -> bool:
    return task in ("grpo", "grpo_files")


def examples_per_step(task: str, args) -> int:
    return args.grpo_prompts * args.group if is_grpo(task) else args.batch


def check_same_prompts(w, side: str, order: list[int], group: int, n: int) -> None:
    """The GRPO-from-files row: the reward function saw, completion after completion, the
    prompts of rlxf's prompt stream, on either side (rlxf's prompt file holds a prompt's words,
    TRL's dataset its whole text)."""
    text = (rlxf_side.prompt_words if side == "rlxf" else lambda w, i: w.text(w.prompts[i]))
    want = [text(w, i) for i in order for _ in range(group)][:n]
    got = [p for p, _ in SAMPLED][:n]
    assert got == want, f"{side}: the reward function saw other prompts than rlxf's stream"


def one_run(side: str, task: str, w, args, order: list[int], extra: dict | None = None) -> dict:
    steps = args.default_steps if side in trl_side.SINGLE else args.steps
    warmup = min(args.warmup, steps - 2)
    extra_out: dict = {}
    SAMPLED.clear()
    with PeakRSS() as mem:
        if side == "rlxf":
            if task == "grpo_files":
                clock = rlxf_side.run_grpo_files(w, steps, args.grpo_prompts, args.group,
                                                 args.completion_len, LR[task], warmup,
                                                 args.seed, GRPO_BETA)
            elif task == "grpo":
                clock = rlxf_side.run_grpo(w, steps, args.grpo_prompts, args.group,
                                           args.completion_len, LR[task], warmup, args.seed,
                                           GRPO_BETA)
            elif task == "sft":
                clock = rlxf_side.run_sft(w, steps, args.batch, LR[task], warmup, args.seed)
            elif task == "reward":
                clock = rlxf_side.run_reward(w, steps, args.batch, LR[task], warmup, args.seed,
                                             HEAD_SEED)
            else:
                clock, ref_s = rlxf_side.run_dpo(w, steps, args.batch, LR[task], warmup,
                                                 args.seed, BETA)
                extra_out["reference_pass_s"] = ref_s
        else:
            cfg = extra or {}
            if is_grpo(task):
                # the files row: the very reward function `rlxf grpo` loads, from its file
                reward = (load_function(rlxf_side.REWARD_SPEC)[1] if task == "grpo_files"
                          else None)
                clock = trl_side.run_grpo(w, order, steps, args.grpo_prompts, args.group,
                                          args.completion_len, LR[task], warmup, cfg, GRPO_BETA,
                                          reward)
            elif task == "sft":
                clock = trl_side.run_sft(w, order, steps, args.batch, LR[task], warmup, cfg)
            elif task == "reward":
                clock = trl_side.run_reward(w, order, steps, args.batch, LR[task], warmup,
                                               cfg, HEAD_SEED)
            else:
                clock = trl_side.run_dpo(w, order, steps, args.batch, LR[task], warmup,
                                            cfg, BETA)
    sps, cpu_sps = clock.seconds_per_step(), clock.seconds_per_step(cpu=True)
    n = examples_per_step(task, args)
    timed = slice((warmup + 1) * n, steps * n)
    if task == "grpo_files":
        clock.completion_lengths = [length for _, length in SAMPLED]
        check_same_prompts(w, side, order, args.group, steps * n)
    if is_grpo(task):  # sampled lengths, as the shared reward function saw them
        lengths = clock.completion_lengths[timed]
        prompts = [w.prompts[i] for i in order for _ in range(args.group)][timed]
        tokens = (sum(map(len, prompts)) + sum(lengths)) / (steps - warmup - 1)
        extra_out["mean_completion_tokens"] = sum(lengths) / len(lengths)
    else:
        tokens = sum(tokens_per_example(w, task, i) for i in order[timed]) / (steps - warmup - 1)
    model = w.reward_model(HEAD_SEED) if task == "reward" else w.causal_lm()
    flops_per_step = FLOPS_PER_PARAM_TOKEN[task] * param_counts(model)["matmul"] * tokens
    return {"side": side, "steps": steps, "warmup_steps": warmup, "seconds_per_step": sps,
            "examples_per_s": n / sps, "tokens_per_s": tokens / sps,
            "cpu_seconds_per_step": cpu_sps, "examples_per_cpu_s": n / cpu_sps,
            "model_flops_per_s": flops_per_step / sps,
            "model_flops_per_cpu_s": flops_per_step / cpu_sps, "peak_rss_mib": mem.mib,
            "first_loss": clock.first_loss, **extra_out}


def bench_task(task: str, w, args) -> dict:
    # The item stream rlxf trains on (for GRPO: prompts, each sampled `group` times).
    order = rlxf_side.batch_order(len(w.prompts), args.steps, examples_per_step(task, args)
                                  // (args.group if is_grpo(task) else 1), args.seed)
    runs = []
    for r in range(args.repeats):
        sides = ["rlxf", "trl_fair"] if r % 2 == 0 else ["trl_fair", "rlxf"]
        pair = {}
        for side in sides:
            pair[side] = one_run(side, task, w, args, order, trl_side.FAIR)
            print(f"  {task} repeat {r} {side:12s} {pair[side]['examples_per_s']:8.2f} "
                  f"{UNIT[task]} ({pair[side]['examples_per_cpu_s']:.2f} per CPU-s)  "
                  f"first loss {pair[side]['first_loss']}", flush=True)
        runs.append(pair)
    single = {}
    for side, cfg in trl_side.SINGLE.items() if args.default_steps else ():
        single[side] = one_run(side, task, w, args, order, cfg)
        print(f"  {task} {side} {single[side]['examples_per_s']:8.2f} {UNIT[task]} "
              f"({single[side]['examples_per_cpu_s']:.2f} per CPU-s)", flush=True)
    defaults = single.get("trl_defaults")
    ratios = [p["rlxf"]["examples_per_s"] / p["trl_fair"]["examples_per_s"] for p in runs]
    cpu_ratios = [p["rlxf"]["examples_per_cpu_s"] / p["trl_fair"]["examples_per_cpu_s"]
                  for p in runs]
    med = lambda xs: statistics.median(xs)  # noqa: E731
    rlxf_eps = med([p["rlxf"]["examples_per_s"] for p in runs])
    summary = {
        "unit": UNIT[task],
        "ratio_vs_trl_fair": {"median": med(ratios), "min": min(ratios), "max": max(ratios),
                              "per_repeat": ratios},
        "cpu_time_ratio_vs_trl_fair": {"median": med(cpu_ratios), "min": min(cpu_ratios),
                                       "max": max(cpu_ratios), "per_repeat": cpu_ratios},
        "ratio_vs_trl_defaults": rlxf_eps / defaults["examples_per_s"] if defaults else None,
        "cpu_time_ratio_vs_trl_single_runs": {
            side: med([p["rlxf"]["examples_per_cpu_s"] for p in runs]) / run["examples_per_cpu_s"]
            for side, run in single.items()},
        "first_loss": {"rlxf": runs[0]["rlxf"]["first_loss"],
                       "trl_fair": runs[0]["trl_fair"]["first_loss"]},
    }
    return {"summary": summary, "repeats": runs, **single}


def add_peak_fractions(task: dict, peak: dict) -> None:
    """Achieved model FLOP/s over the matmul peak, on the same clock (wall or CPU)."""
    for side in ("rlxf", "trl_fair"):
        for clock, key in (("wall", "model_flops_per_s"), ("cpu", "model_flops_per_cpu_s")):
            achieved = statistics.median(p[side][key] for p in task["repeats"])
            task["summary"][f"{side}_fraction_of_matmul_peak_{clock}"] = achieved / peak[clock]


def markdown(result: dict) -> str:
    m, cfg = result["machine"], result["config"]
    lines = [f"# rlxf vs TRL {result['versions']['trl']}: training throughput ({cfg['model']} model)",
             "", f"{result['date']}, {m['cpu_model']}, nproc {m['nproc']}, torch threads "
             f"{m['torch_threads']}, load average at start {m['loadavg_at_start']}"
             f"{', at end ' + str(m['loadavg_at_end']) if 'loadavg_at_end' in m else ''}; "
             f"rlxf {result['versions'].get('rlxf_commit')}, "
             f"torch {result['versions']['torch']}, transformers "
             f"{result['versions']['transformers']}.", "",
             f"Model: {cfg['params']['total']:,} parameters ({cfg['params']['matmul']:,} in "
             f"matmuls); {cfg['n_pairs']} examples, prompt {cfg['prompt_len']} + completions "
             f"{cfg['completion_len']} tokens; batch {cfg['batch']}; {cfg['steps']} steps, "
             f"timed after {cfg['warmup']}; {cfg['repeats']} interleaved repeats.", "",
             "Matmul peak (1024², float32, same threads, best of the measurements before and "
             f"after): {result['matmul_peak']['flops_per_s'] / 1e9:.1f} GFLOP/s, "
             f"{result['matmul_peak']['flops_per_cpu_s'] / 1e9:.1f} GFLOP per CPU-second.", "",
             "| task | unit | rlxf | TRL fair | ratio median [min, max] | CPU-time ratio | "
             "vs TRL defaults (CPU-time) | vs TRL bf16 no GC (CPU-time) | rlxf % of peak (CPU) | TRL % of peak (CPU) | "
             "rlxf / TRL peak RSS MiB | "
             "step-0 loss rlxf / TRL |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for task, t in result["tasks"].items():
        s, runs = t["summary"], t["repeats"]
        med = lambda side, k: statistics.median(p[side][k] for p in runs)  # noqa: E731
        r, c = s["ratio_vs_trl_fair"], s["cpu_time_ratio_vs_trl_fair"]
        single = s["cpu_time_ratio_vs_trl_single_runs"]
        vs = {k: f"{single[k]:.2f}x" if k in single else "-"
              for k in ("trl_defaults", "trl_bf16_no_gc")}
        fl = s["first_loss"]
        lines.append(
            f"| {task} | {s['unit']} | {med('rlxf', 'examples_per_s'):.1f} | "
            f"{med('trl_fair', 'examples_per_s'):.1f} | **{r['median']:.2f}x** "
            f"[{r['min']:.2f}, {r['max']:.2f}] | {c['median']:.2f}x "
            f"[{c['min']:.2f}, {c['max']:.2f}] | {vs['trl_defaults']} | "
            f"{vs['trl_bf16_no_gc']} | "
            f"{100 * s['rlxf_fraction_of_matmul_peak_wall']:.0f}% "
            f"({100 * s['rlxf_fraction_of_matmul_peak_cpu']:.0f}%) | "
            f"{100 * s['trl_fair_fraction_of_matmul_peak_wall']:.0f}% "
            f"({100 * s['trl_fair_fraction_of_matmul_peak_cpu']:.0f}%) | "
            f"{med('rlxf', 'peak_rss_mib'):.0f} / {med('trl_fair', 'peak_rss_mib'):.0f} | "
            f"{fl['rlxf']:.4f} / {fl['trl_fair']:.4f} |")
    for task in [t for t in result["tasks"] if is_grpo(t)]:
        g, runs = cfg["grpo"], result["tasks"][task]["repeats"]
        mean_len = {side: statistics.median(p[side]["mean_completion_tokens"] for p in runs)
                    for side in ("rlxf", "trl_fair")}
        lines += ["", f"{GRPO_ROWS[task]}: {g['prompts_per_step']} prompts x G={g['group']} "
                  "completions per "
                  f"step, at most {g['max_completion_tokens']} new tokens, temperature 1, "
                  f"β={g['kl_coef']}, one update per rollout, sequence-mean loss; reward: "
                  f"{g['reward']}. Mean sampled completion tokens rlxf {mean_len['rlxf']:.1f} / "
                  f"TRL {mean_len['trl_fair']:.1f}. Model FLOPs for GRPO = 10 x matmul parameters "
                  "x tokens (sampling and reference forwards, training forward + backward)."]
    lines += ["", "TRL fair = bf16=False, gradient_checkpointing=False; TRL defaults = bf16 "
              "autocast + gradient checkpointing; TRL bf16 no GC = bf16=True, "
              "gradient_checkpointing=False (the last two: one short run each). FLOP/s = 6 x matmul parameters x real "
              "(non-pad) tokens / s. CPU-time ratio: the same per process CPU-second (steadier "
              "on a shared machine with one thread). Peak RSS is the process's resident memory above its level "
              "when the run started.", "", result["note"], ""]
    return "\n".join(lines)


def load_note(machine: dict) -> str:
    """The results file's note from the 1-minute load average at the start and the end: whether
    other jobs shared the cores (load above the benchmark's own threads) or not."""
    top = max(machine["loadavg_at_start"][0], machine["loadavg_at_end"][0])
    where = (f"1-minute load average {machine['loadavg_at_start'][0]} at the start and "
             f"{machine['loadavg_at_end'][0]} at the end, {machine['nproc']} cores, "
             f"{machine['torch_threads']} benchmark thread(s)")
    if top > machine["torch_threads"] + 0.5:
        return (f"Other jobs shared the machine while this ran ({where}): absolute numbers are "
                "inflated; the side-by-side ratios are what count.")
    return f"No other load was seen while this ran ({where})."


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="+", choices=TASKS, default=list(TASKS))
    ap.add_argument("--model", choices=sorted(MODELS), default="5m")
    ap.add_argument("--pairs", type=int, default=512)
    ap.add_argument("--prompt-len", type=int, default=24)
    ap.add_argument("--completion-len", type=int, default=32)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--grpo-prompts", type=int, default=4, help="GRPO: prompts per step")
    ap.add_argument("--group", type=int, default=8, help="GRPO: completions per prompt (G)")
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--default-steps", type=int, default=5,
                    help="steps of the single TRL-defaults and TRL-bf16 runs (0: skip them)")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--note", help="a note for the results file (default: what the load "
                    "average at the start and end says, load_note)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()

    w = build(args.model, args.pairs, args.prompt_len, args.completion_len, args.seed)
    peaks = [(matmul_peak_flops(), matmul_peak_flops(cpu=True))]
    print(f"matmul peak {peaks[0][0] / 1e9:.1f} GFLOP/s, {peaks[0][1] / 1e9:.1f} GFLOP per "
          f"CPU-s at {args.threads} threads", flush=True)
    result = {"date": dt.datetime.now().isoformat(timespec="seconds"), "machine": machine(),
              "versions": versions(),
              "config": {"model": args.model, "params": param_counts(w.causal_lm()),
                         "n_pairs": args.pairs, "prompt_len": args.prompt_len,
                         "completion_len": args.completion_len, "batch": args.batch,
                         "steps": args.steps, "warmup": args.warmup, "repeats": args.repeats,
                         "default_steps": args.default_steps, "lr": LR, "dpo_beta": BETA,
                         "grpo": {"prompts_per_step": args.grpo_prompts, "group": args.group,
                                  "max_completion_tokens": args.completion_len,
                                  "kl_coef": GRPO_BETA, "temperature": 1.0,
                                  "reward": "share of even token ids (workload.even_token_reward)",
                                  "flops_per_param_token": FLOPS_PER_PARAM_TOKEN}},
              "trl_fair_config": trl_side.FAIR, "note": args.note, "tasks": {}}
    for task in args.only:
        result["tasks"][task] = bench_task(task, w, args)
    result["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["note"] = args.note or load_note(result["machine"])
    peaks.append((matmul_peak_flops(), matmul_peak_flops(cpu=True)))
    # The best of the measurements before and after: a conservative (high) peak.
    peak = {"wall": max(p[0] for p in peaks), "cpu": max(p[1] for p in peaks)}
    result["matmul_peak"] = {"flops_per_s": peak["wall"], "flops_per_cpu_s": peak["cpu"],
                             "measurements_before_after": peaks}
    for t in result["tasks"].values():
        add_peak_fractions(t, peak)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"{result['date'][:10]}-{args.model}-{'-'.join(args.only)}"
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / f"{stem}.md").write_text(markdown(result))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
