"""`rlxf sweep` runs its members T at once when it has T torch threads (one process and one
thread each): the members' results are those of running them one after the other on one
thread."""

from __future__ import annotations

import json

import torch
from tiny_runs import TINY, copy_run

from rlxf.config import load_config
from rlxf.rundir import RunDir
from rlxf.sweep import _no_progress, run_sweep


def test_members_in_parallel_processes_equal_members_one_after_the_other(tiny_run, tmp_path,
                                                                        monkeypatch):
    # offline, as under `rlxf sweep` (cli.py sets it before anything loads, and the members
    # inherit it): a saved tokenizer records whether it was loaded offline
    import huggingface_hub.constants
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    config = tmp_path / "bon.toml"
    config.write_text(TINY.read_text() + "\n[sweep]\nbon_n = [2, 4, 8]\n")
    cfg, text = load_config(config), config.read_text()
    torch.set_num_threads(1)
    logs = {}
    for threads in (1, 2):
        out = copy_run(tiny_run, tmp_path / f"threads={threads}")
        logs[threads] = []
        run_sweep(cfg, text, out, _no_progress, logs[threads].append, threads=threads)
    assert any("3 members, 2 at once" in line for line in logs[2])
    assert not any("at once" in line for line in logs[1])
    for name in ("bon_n=2", "bon_n=4", "bon_n=8"):
        one, two = (tmp_path / f"threads={t}" / "sweep" / name for t in (1, 2))
        assert (json.loads((one / "policy" / "history.json").read_text())
                == json.loads((two / "policy" / "history.json").read_text())), name
        assert RunDir(one).record("policy")["output_hash"] == \
            RunDir(two).record("policy")["output_hash"], name
        # the member's log lines come back to the parent, in member order
        assert f"[bold]sweep member {name}[/bold]" in logs[2]
    sweep = [json.loads((tmp_path / f"threads={t}" / "sweep" / "sweep.json").read_text())
             for t in (1, 2)]
    assert sweep[0] == sweep[1]
