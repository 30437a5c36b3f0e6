"""`rlxf sft|reward|dpo` as one job under `accelerate launch` with two CPU processes (gloo): the
data is sharded, only the main process writes (OUT appears once, no OUT.partial is left), and
in float64 the saved parameters equal one process's on the same global batch -- here with
--grad-accum 2 on the two processes, so 2 x 2 micro-batches take the step of one batch of 8.
A two-process job killed with SIGKILL after a checkpoint and rerun ends where the
uninterrupted job does."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hf_models import CORPUS, build_tokenizer, model_config
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

HERE = Path(__file__).parent
ENV = {**os.environ, "PYTHONPATH": f"{HERE.parent / 'src'}{os.pathsep}{HERE}",
       "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
STEPS = ["--steps", "12", "--batch-size", "8", "--lr", "1e-2", "--threads", "1", "--device",
         "cpu", "--precision", "fp32"]
CONFIG = "".join(f"[{c}]\nwarmup_steps = 0\ncheckpoint_every = 3\n" for c in ("sft", "reward", "dpo"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(processes: int, *args) -> list[str]:
    cli = ["-m", "rlxf.cli", *map(str, args), *STEPS, "--config", str(args[1].parent / "tune.toml")]
    if processes == 1:
        return [sys.executable, *cli]
    # --multi_gpu is accelerate's torchrun launcher; without a GPU each process joins a gloo
    # group. (`--cpu --num_processes 2` starts one process unless mpirun is configured.)
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
            str(processes), "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend",
            "no", "--main_process_port", str(_free_port()), *cli, "--grad-accum", "2"]


def run(processes: int, *args) -> subprocess.CompletedProcess:
    proc = subprocess.run(command(processes, *args), env=ENV, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return make_inputs(tmp_path_factory.mktemp("dist"))


def make_inputs(root: Path) -> Path:
    """A float64 Llama directory, SFT data and preferences (16 rows each)."""
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
    return root


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL the launcher and its workers (torchrun starts them in sessions of their own, so
    killing the launcher's process group would leave them running)."""
    import psutil
    workers = psutil.Process(proc.pid).children(recursive=True)
    for p in [psutil.Process(proc.pid), *workers]:
        p.send_signal(signal.SIGKILL)
    proc.wait()
    psutil.wait_procs(workers, timeout=30)


def weights(out: Path) -> dict:
    return load_file(out / "model.safetensors")


def assert_same(a: dict, b: dict, tol: float = 1e-6) -> None:
    assert a.keys() == b.keys()
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst <= tol, worst


@pytest.mark.parametrize("recipe", ["sft", "reward", "dpo"])
def test_two_processes_are_one_job_with_one_process_parameters(inputs, tmp_path, recipe):
    data = inputs / ("sft.jsonl" if recipe == "sft" else "prefs.jsonl")
    one, two = tmp_path / "one", inputs / f"two-{recipe}"  # kept for the resume test
    run(1, recipe, inputs / "model", data, "--out", one)
    proc = run(2, recipe, inputs / "model", data, "--out", two)
    assert (proc.stdout + proc.stderr).count(f"{recipe}: model -> ") == 1  # one job, one report
    assert not two.with_name(two.name + ".partial").exists() and not (two / ".ckpt").exists()
    record = json.loads((two / "rlxf_training.json").read_text())
    assert record["config"]["grad_accum"] == 2 and record["metrics"]["steps"] == 12
    a, b = weights(one), weights(two)
    assert next(iter(a.values())).dtype == torch.float64
    init = load_file(inputs / "model" / "model.safetensors")
    assert max((a[k] - init[k]).abs().max().item() for k in init if k in a) > 1e-3  # trained
    assert_same(a, b)


def test_a_killed_two_process_job_resumes_to_the_same_parameters(inputs, tmp_path):
    data, killed = inputs / "sft.jsonl", tmp_path / "killed"
    straight = inputs / "two-sft"  # the uninterrupted two-process job of the test above
    if not straight.exists():
        run(2, "sft", inputs / "model", data, "--out", straight)
    proc = subprocess.Popen(command(2, "sft", inputs / "model", data, "--out", killed), env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = killed.with_name("killed.partial") / ".ckpt" / "checkpoint" / "state.pt"
    deadline = time.time() + 300
    while not state.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    assert proc.poll() is None, "the job ended before its first checkpoint appeared"
    kill_tree(proc)
    assert not killed.exists()
    run(2, "sft", inputs / "model", data, "--out", killed)
    record = json.loads((killed / "rlxf_training.json").read_text())
    assert record["metrics"]["resumed_from_step"] > 0
    assert_same(weights(straight), weights(killed), tol=0.0)
