"""The accelerate jobs of tests/test_tune_distributed.py, tests/test_policy_distributed.py and
tests/test_fsdp.py, launched once per session (tests/conftest.py's `dist_jobs`): `rlxf
sft|reward|dpo|grpo|rloo`, tests/dpo_worker.py and tests/group_rl_worker.py in one process, the
same jobs in one two-process launch, and a two-process `rlxf sft` killed with SIGKILL after its
first checkpoint, whose rerun is the first job of that launch; the same again under FSDP
(launched with examples/accelerate/fsdp_cpu_2proc.yaml): a killed `rlxf sft`, then one launch
that reruns it, runs `rlxf sft|reward|dpo`, and tries `rlxf kto` and `rlxf sft --lora`, which
FSDP refuses. The one process also runs `rlxf reward|dpo --gradient-checkpointing`, which take
the full forwards that a sharded model takes (not the shared-prefix / last-layer paths), as the
FSDP jobs' baseline. Each launch runs its jobs in turn (tests/dist_jobs.py), so the start-up of
a process (torch, transformers, accelerate: several seconds of imports) is paid by 13 processes
(one alone, four launchers, eight workers), not by one per job and process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
ENV = {**os.environ, "PYTHONPATH": f"{HERE.parent / 'src'}{os.pathsep}{HERE}",
       "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
STEPS = ["--steps", "12", "--batch-size", "8", "--lr", "1e-2", "--threads", "1", "--device",
         "cpu", "--precision", "fp32"]
CONFIG = "".join(f"[{c}]\nwarmup_steps = 0\ncheckpoint_every = 3\n" for c in ("sft", "reward", "dpo"))
RECIPES = ("sft", "reward", "dpo")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_inputs(root: Path) -> Path:
    """A float64 Llama directory, SFT data and preferences (16 rows each)."""
    import torch
    from hf_models import CORPUS, build_tokenizer, model_config
    from transformers import AutoModelForCausalLM

    tok = build_tokenizer()
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(model_config("llama", tok)).double() \
        .save_pretrained(root / "model")
    tok.save_pretrained(root / "model")
    lines = sorted(set(CORPUS))
    pairs = [(a, b) for a in range(len(lines)) for b in range(len(lines))][:16]
    sft = [{"prompt": lines[a], "completion": lines[b]} for a, b in pairs]
    prefs = [{"prompt": lines[a], "chosen": lines[b], "rejected": lines[(b + 1) % len(lines)]}
             for a, b in pairs]
    (root / "tune.toml").write_text(CONFIG)
    for name, rows in (("sft.jsonl", sft), ("prefs.jsonl", prefs)):
        (root / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    make_rl_inputs(root, lines)
    return root


# `rlxf grpo|rloo`: a prompt's reward is the share of even token ids in its completion, or a
# flat 0.5 for the prompts marked flat, whose groups dynamic sampling drops
REWARDS_PY = '''
def even_unless_flat(prompts, completions, completion_ids, flat, **kwargs):
    return [0.5 if f else sum(t % 2 == 0 for t in ids) / max(len(ids), 1)
            for ids, f in zip(completion_ids, flat)]
'''
RL_PROMPTS, RL_BATCH = 8, 4
RL_OPTIONS = {  # the batch-level statistics: dapo's token count, the batch std, dropped groups
    "grpo": ["--beta", "0.04", "--scale-rewards", "batch", "--dynamic-sampling",
             "--updates-per-rollout", "2"],
    "rloo": ["--beta", "0.04", "--baseline", "batch", "--dynamic-sampling"]}


def make_rl_inputs(root: Path, lines: list[str]) -> None:
    """Prompts, held-out prompts and the reward function. The first step's batch positions
    0, 1 and 2 hold flat prompts: dynamic sampling leaves one process (positions 0 and 2, of
    two) or one micro-batch (positions 0 and 1, of two) with no group at all."""
    from rlxf.train.loop import BatchOrder
    texts = [" ".join(line.split()[:n]) for n in (3, 6) for line in lines]  # 10 distinct
    flat = set(BatchOrder(RL_PROMPTS, RL_BATCH, 0).indices(0)[:3])
    rows = [{"prompt": texts[i], "flat": i in flat} for i in range(RL_PROMPTS)]
    (root / "prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    held = [{"prompt": text, "flat": False} for text in texts[RL_PROMPTS:]]
    (root / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in held))
    (root / "rewards.py").write_text(REWARDS_PY)


def rl_argv(root: Path, command: str, out: Path, grad_accum: int = 1,
            options: list[str] | None = None) -> list[str]:
    """`rlxf grpo|rloo` for 3 steps of 4 prompts x 3 completions on the inputs."""
    return [command, str(root / "model"), str(root / "prompts.jsonl"), "--out", str(out),
            "--reward", f"{root / 'rewards.py'}:even_unless_flat",
            "--eval-prompts", str(root / "eval.jsonl"), "--steps", "3", "--batch-size",
            str(RL_BATCH), "--group-size", "3", "--max-new-tokens", "4", "--lr", "1e-2",
            "--warmup-steps", "0", "--eval-every", "2", "--eval-samples", "1", "--threads", "1",
            "--device", "cpu", "--precision", "fp32", "--grad-accum", str(grad_accum),
            *(RL_OPTIONS[command] if options is None else options)]


def tune_argv(root: Path, recipe: str, out: Path, processes: int) -> list[str]:
    """`rlxf RECIPE` on the inputs; two processes take each batch as 2 x 2 micro-batches."""
    data = root / ("sft.jsonl" if recipe == "sft" else "prefs.jsonl")
    return [recipe, str(root / "model"), str(data), "--out", str(out), *STEPS,
            "--config", str(root / "tune.toml"), *(["--grad-accum", "2"] if processes > 1 else [])]


FSDP_CONFIG = HERE.parent / "examples" / "accelerate" / "fsdp_cpu_2proc.yaml"


def command(processes: int, jobs: list[dict], folder: Path, fsdp: bool = False) -> list[str]:
    """tests/dist_jobs.py on `jobs` (written to FOLDER/jobs.json), alone or launched (with
    `fsdp`, by the example FSDP config: two processes)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "jobs.json").write_text(json.dumps(jobs))
    script = [str(HERE / "dist_jobs.py"), str(folder / "jobs.json")]
    launch = [sys.executable, "-m", "accelerate.commands.launch"]
    if fsdp:
        return [*launch, "--config_file", str(FSDP_CONFIG), "--main_process_port",
                str(_free_port()), *script]
    if processes == 1:
        return [sys.executable, *script]
    # --multi_gpu is accelerate's torchrun launcher; without a GPU each process joins a gloo
    # group. (`--cpu --num_processes 2` starts one process unless mpirun is configured.)
    return [*launch, "--multi_gpu", "--num_processes", str(processes), "--num_machines", "1",
            "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
            str(_free_port()), *script]


def logs(folder: Path, name: str) -> str:
    """What job `name` printed, every rank's output in turn."""
    return "".join(p.read_text() for p in sorted(folder.glob(f"{name}.rank*.log")))


def check(proc: subprocess.Popen, folder: Path) -> None:
    out, err = proc.communicate(timeout=600)
    printed = "".join(f"--- {p.name}\n{p.read_text()}" for p in sorted(folder.glob("*.log")))
    assert proc.returncode == 0, f"{out}{err}{printed}"


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL the launcher and its workers (torchrun starts them in sessions of their own, so
    killing the launcher's process group would leave them running)."""
    import psutil
    workers = psutil.Process(proc.pid).children(recursive=True)
    for p in [psutil.Process(proc.pid), *workers]:
        p.send_signal(signal.SIGKILL)
    proc.wait()
    psutil.wait_procs(workers, timeout=30)


def start(processes: int, jobs: list[dict], folder: Path, output=subprocess.PIPE,
          fsdp: bool = False):
    return subprocess.Popen(command(processes, jobs, folder, fsdp), env=ENV, stdout=output,
                            stderr=output, text=True)


def kill_at_first_checkpoint(proc: subprocess.Popen, out: Path) -> list[str]:
    """SIGKILL a launch of one job writing OUT once its first checkpoint is complete; returns
    the checkpoint's files (relative paths) as they were then."""
    checkpoint = out.with_name(out.name + ".partial") / ".ckpt" / "checkpoint"
    deadline = time.time() + 300
    while not (checkpoint / "state.pt").exists() and proc.poll() is None and \
            time.time() < deadline:
        time.sleep(0.005)
    assert proc.poll() is None, "the job ended before its first checkpoint appeared"
    files = sorted(str(p.relative_to(checkpoint)) for p in checkpoint.rglob("*") if p.is_file())
    kill_tree(proc)
    assert not out.exists()
    return files


def launch_all(root: Path) -> Path:
    """Every job, in ROOT/one (one process), ROOT/two (two processes), ROOT/killed (the
    killed and rerun `rlxf sft`), ROOT/fsdp (two processes under FSDP) and ROOT/fsdp-killed;
    ROOT/*killed-launch hold the killed launches' logs, ROOT/fsdp-checkpoint.json the files of
    the FSDP checkpoint the kill left."""
    make_inputs(root)

    def jobs(folder: Path, processes: int) -> list[dict]:
        return [*({"name": r, "argv": tune_argv(root, r, folder / r, processes)} for r in RECIPES),
                *({"name": c, "argv": rl_argv(root, c, folder / c, processes)}
                  for c in RL_OPTIONS),
                {"name": "dpo_worker", "argv": ["dpo_worker", str(folder / "dpo_worker.pt"), "dpo"]},
                {"name": "group_rl_worker",
                 "argv": ["group_rl_worker", str(folder / "group_rl_worker.pt")]}]

    one, two, killed = root / "one", root / "two", root / "killed"
    fsdp, fsdp_killed = root / "fsdp", root / "fsdp-killed"
    full_forwards = [{"name": f"{r}-full", "argv": [*tune_argv(root, r, one / f"{r}-full", 1),
                                                    "--gradient-checkpointing"]}
                     for r in ("reward", "dpo")]
    # beside the killed launches: 7 processes; each rerun launch starts as soon as its killed
    # launch is gone, beside the single process and the other launch (no core waits for the
    # slowest phase; the jobs share no file)
    single = start(1, [*jobs(one, 1), *full_forwards], one)
    proc = start(2, [{"name": "killed", "argv": tune_argv(root, "sft", killed, 2)}],
                 root / "killed-launch", subprocess.DEVNULL)
    fsdp_rerun = {"name": "killed", "argv": tune_argv(root, "sft", fsdp_killed, 2)}
    fsdp_proc = start(2, [fsdp_rerun], root / "fsdp-killed-launch", subprocess.DEVNULL, fsdp=True)
    kill_at_first_checkpoint(proc, killed)
    # the killed job's rerun first, then every job as the single process ran them
    rerun = {"name": "killed", "argv": tune_argv(root, "sft", killed, 2)}
    launches = [(single, one), (start(2, [rerun, *jobs(two, 2)], two), two)]
    (root / "fsdp-checkpoint.json").write_text(
        json.dumps(kill_at_first_checkpoint(fsdp_proc, fsdp_killed)))
    # under FSDP: the rerun, SFT, RM and DPO, and two commands it refuses (exit 1, nothing
    # written)
    refused = [{"name": "kto", "argv": ["kto", str(root / "model"), str(root / "prefs.jsonl"),
                                        "--out", str(fsdp / "kto"), *STEPS], "exit": 1},
               {"name": "lora", "argv": [*tune_argv(root, "sft", fsdp / "lora", 2), "--lora",
                                         "4,8"], "exit": 1}]
    launches.append((start(2, [fsdp_rerun, *({"name": r, "argv": tune_argv(root, r, fsdp / r, 2)}
                                             for r in RECIPES), *refused], fsdp, fsdp=True), fsdp))
    try:
        for launch, folder in launches:
            check(launch, folder)
    finally:  # a failed launch leaves none of the others running
        for launch, _ in launches:
            if launch.poll() is None:
                kill_tree(launch)
    return root
