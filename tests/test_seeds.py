"""`rlxf run --seeds N` end to end on the tiny config: RUN is the first seed (its layout and
stages unchanged), each other seed a whole run in RUN/seeds/seed=K/, and the report pools them:
every failure mode and 3H change with a 95% interval and its n, "within noise" wherever a
change's interval spans zero, in JSON, Markdown and HTML."""

from __future__ import annotations

import html
import json
import os
import subprocess
import sys
import time
from statistics import mean

import jsonschema
import pytest
from tiny_runs import TINY, copy_run, numbers, rlxf, tree_digest

from rlxf.audit.report import SCHEMA_PATH


def _stage_files(run):
    """Every stage's files, but the cards the audit writes beside the artifacts (rewritten by
    each report, and excluded from the stage hashes for that reason)."""
    cards = set(json.loads((run / "report" / "report.json").read_text())["cards"].values())
    return {k: v for k, v in tree_digest(run).items()
            if not k.startswith(("report/", "seeds/", "config.toml")) and k not in cards}


def test_seeds_run_each_seed_and_the_report_pools_them_with_intervals(tiny_run, tmp_path):
    run = copy_run(tiny_run, tmp_path / "run")
    before = _stage_files(run)
    rlxf("run", TINY, "--seeds", "2", "--out", run)
    # seed 1 is RUN itself: every stage up to date, nothing rewritten
    assert _stage_files(run) == before
    member = run / "seeds" / "seed=2"
    assert numbers(member / "world" / "_stage.json")["config"]["seed"] == 2
    assert (member / "config.toml").read_text().startswith(
        "# rlxf run --seeds member: seed = 2 (overrides the config below)")
    assert numbers(run / "seeds" / "seeds.json")["dirs"] == [".", "seeds/seed=2"]
    assert (run / "seeds" / "logs" / "seed=2.log").exists()

    report = numbers(run / "report" / "report.json")
    jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text())).validate(report)
    assert report["seeds"]["n"] == 2
    assert [m["seed"] for m in report["seeds"]["members"]] == [1, 2]
    # the models section is the seeds' mean
    per_seed = [numbers(d / "eval" / "metrics.json")["policy"]["metrics"]["gold/utility"]
                for d in (run, member)]
    assert report["models"]["policy"]["metrics"]["gold/utility"] == round(mean(per_seed), 6) \
        or abs(report["models"]["policy"]["metrics"]["gold/utility"] - mean(per_seed)) < 1e-6

    md = (run / "report" / "report.md").read_text()
    page = (run / "report" / "index.html").read_text()
    noisy = 0
    for m in report["failure_modes"]:
        assert "ci95" in m and "n" in m, m["id"]
        if m["number"] is None:
            continue
        assert m["n"]["seeds"] == 2, m["id"]
        assert m["ci95"] is not None and m["ci95"][0] <= m["ci95"][1], m["id"]
        change = m.get("change")
        if change and change["within_noise"]:
            noisy += 1
            assert "within noise" in m["reading"], m["id"]
            assert m["reading"] in md and html.escape(m["reading"]) in page, m["id"]
        elif change and change["within_noise"] is False:
            assert "beyond noise" in m["reading"], m["id"]
    assert noisy  # the tiny policy barely moves: something must read as noise
    cells = [(fam, ax, iv) for fam, axes in report["tensions"]["intervals"].items()
             for ax, iv in axes.items() if iv]
    assert cells
    for fam, ax, iv in cells:
        assert iv["n"]["seeds"] == 2 and "mde" in iv
        if iv["within_noise"]:
            assert "≈ within noise" in md and "≈ within noise" in page
    for metric, pair in report["seeds"]["headline"].items():
        assert pair["change"]["n"]["seeds"] == 2, metric

    # The same seeds as Ray tasks on a one-machine cluster: each task runs its member's `rlxf
    # run` (every stage is up to date, so it only checks them) and writes its log; nothing else
    # changes, and the pooled report is the same.
    for log in (run / "seeds" / "logs").iterdir():
        log.unlink()
    before = _stage_files(run), (member / "ledger.jsonl").read_text()
    proc = rlxf("run", TINY, "--seeds", "2", "--out", run, "--ray", "local")
    assert "2 seeds on Ray (local, " in proc.stdout + proc.stderr
    assert (_stage_files(run), (member / "ledger.jsonl").read_text()) == before
    for s in (1, 2):
        assert "up to date" in (run / "seeds" / "logs" / f"seed={s}.log").read_text()
    assert numbers(run / "report" / "report.json")["failure_modes"] == report["failure_modes"]


def test_report_pools_seed_members_listed_in_seeds_json(tmp_path):
    """Fast, no training: two fake runs, the second listed as RUN/seeds/seed=2; the report
    averages their metrics and resamples both seeds' prompts."""
    from report_fakes import make_run

    from rlxf.audit.report import build_report
    run = tmp_path / "run"
    make_run(run)
    alone = build_report(run)
    member = run / "seeds" / "seed=2"
    make_run(member)
    metrics_path = member / "eval" / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    metrics["policy"]["metrics"]["gold/utility"] = 0.8  # seed 1's fake says 0.6
    metrics_path.write_text(json.dumps(metrics))
    (run / "seeds" / "seeds.json").write_text(json.dumps({"dirs": [".", "seeds/seed=2"]}))
    pooled = build_report(run)
    assert pooled["models"]["policy"]["metrics"]["gold/utility"] == 0.7
    assert pooled["seeds"]["n"] == 2
    assert [m["dir"] for m in pooled["seeds"]["members"]] == [".", "seeds/seed=2"]
    a = next(m for m in alone["failure_modes"] if m["id"] == "anthropomorphism")
    b = next(m for m in pooled["failure_modes"] if m["id"] == "anthropomorphism")
    assert a["n"]["seeds"] == 1 and b["n"]["seeds"] == 2
    assert b["n"]["prompts"] == 2 * a["n"]["prompts"]
    assert b["number"] == a["number"]  # the same samples twice: the same rate
    # a listed member that holds no run is left out, not guessed at
    (run / "seeds" / "seeds.json").write_text(json.dumps({"dirs": [".", "seeds/seed=9"]}))
    assert build_report(run)["seeds"]["n"] == 1


def test_seeds_with_until_is_refused(tmp_path):
    proc = rlxf("run", TINY, "--seeds", "2", "--until", "sft", "--out", tmp_path / "r",
                check=False)
    assert proc.returncode == 2 and "--until runs one seed" in proc.stderr


@pytest.fixture(scope="module")
def ray_local():
    """The Ray launcher on a one-machine cluster started here, as `--ray local` starts one: with
    Ray's token authentication, which ray.init() turns on (in os.environ too) for a new cluster."""
    from rlxf.seeds import RayTasks
    mode = os.environ.get("RAY_AUTH_MODE")
    ray = RayTasks("local")
    yield ray
    ray.close()
    if mode is None:  # leave later tests the environment they had
        os.environ.pop("RAY_AUTH_MODE", None)


def _wait(ray, task) -> int | None:
    deadline = time.monotonic() + 120
    while (rc := ray.poll(task)) is None and time.monotonic() < deadline:
        time.sleep(0.2)
    return rc


def test_a_ray_task_runs_its_command_to_the_log_and_returns_its_exit_code(ray_local, tmp_path):
    """The Ray launcher on a one-machine cluster: the member's output lands in its log and a
    failing member's exit code comes back (so `--seeds` reports it as failed)."""
    assert ray_local.where.startswith("Ray (local, ")
    log = tmp_path / "seed=3.log"
    task = ray_local.start(["-c", "import os, sys; print('threads', os.environ['OMP_NUM_THREADS']);"
                                  " sys.exit(3)"], log, 1)
    assert _wait(ray_local, task) == 3
    assert log.read_text().strip() == "threads 1"


def test_ray_host_port_of_a_token_cluster_says_to_set_ray_auth_mode_and_then_connects(
        ray_local, tmp_path):
    """A cluster with token authentication (what `ray start --head` starts whenever a token
    exists, e.g. the ~/.ray/auth_token any earlier ray.init() leaves): Ray sends no token to an
    explicit HOST:PORT, so `rlxf run --ray HOST:PORT` stops at once with what to set instead of
    Ray's bare "Failed to connect"; with RAY_AUTH_MODE=token, as it says, the same address works."""
    address = ray_local.ray.get_runtime_context().gcs_address
    env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"}
    env["RAY_gcs_server_port_wait_time_s"] = "1"  # one connection try, not Ray's ~20 s of retries
    proc = subprocess.run([sys.executable, "-m", "rlxf", "run", str(TINY), "--seeds", "2",
                           "--ray", address, "--out", str(tmp_path / "run"), "--threads", "1"],
                          env=env, capture_output=True, text=True, timeout=300)
    said = " ".join((proc.stdout + proc.stderr).split())  # the console wraps long lines
    assert proc.returncode == 2, said
    assert f"--ray {address}: the cluster at {address} uses token authentication" in said
    assert "export RAY_AUTH_MODE=token, and the cluster's token in ~/.ray/auth_token" in said
    assert not (tmp_path / "run" / "seeds").exists()  # no member started

    env["RAY_AUTH_MODE"] = "token"
    connects = ("import sys, time\n"
                "from rlxf.seeds import RayTasks\n"
                "ray = RayTasks(sys.argv[1])\n"
                "print(ray.where)\n"
                "task = ray.start(['-c', 'print(42)'], sys.argv[2], 1)\n"
                "while (rc := ray.poll(task)) is None:\n"
                "    time.sleep(0.2)\n"
                "print('exit', rc)\n"
                "ray.close()\n")
    proc = subprocess.run([sys.executable, "-c", connects, address, str(tmp_path / "task.log")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [ray_local.where.replace("local", address), "exit 0"]
    assert (tmp_path / "task.log").read_text() == "42\n"


@pytest.mark.parametrize("mode, address, says", [
    (None, "10.0.0.1:6379", "Ray sends no token to an address given explicitly: "
                            "export RAY_AUTH_MODE=token"),
    ("", "10.0.0.1:6379", "but RAY_AUTH_MODE='' here: export RAY_AUTH_MODE=token"),
    ("disabled", "auto", "but RAY_AUTH_MODE='disabled' here: export RAY_AUTH_MODE=token"),
    ("token", "10.0.0.1:6379", "has no token, or not the cluster's: put the cluster's token in "
                               "~/.ray/auth_token, a file named by RAY_AUTH_TOKEN_PATH"),
    (None, "auto", "has no token, or not the cluster's"),  # auto would have sent one it found
])
def test_a_refused_token_says_what_to_set_from_ray_auth_mode(monkeypatch, mode, address, says):
    """No Ray: which advice each RAY_AUTH_MODE gets, and which of Ray's errors are a refused
    token (ray.init's ConnectionError carries the GCS client's AuthenticationError as text)."""
    from rlxf.ray_connect import token_help, token_refused
    if mode is None:
        monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    else:
        monkeypatch.setenv("RAY_AUTH_MODE", mode)
    assert says in token_help(address)

    def ray_init_error(gcs_error: str) -> ConnectionError:
        try:
            raise ConnectionError(f"Failed to connect to Ray cluster at {address}") \
                from RuntimeError(f"Failed to connect to GCS. Last connection error: {gcs_error}")
        except ConnectionError as e:
            return e
    assert token_refused(ray_init_error("ray.exceptions.AuthenticationError: RPC error: "
                                        "InvalidAuthToken: Authentication token is missing"))
    assert not token_refused(ray_init_error("ray.exceptions.RpcError: Timed out while waiting "
                                            "for GCS to become available."))
