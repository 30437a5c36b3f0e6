"""Fixtures for the annotation app's tests (tests/test_store.py, test_server_api.py,
test_server_e2e.py); all names start with `annotate_` so other fixtures can live beside them.
Also `tiny_run`: the tiny end-to-end run, built once for the whole session (tests/tiny_runs.py),
and `dist_jobs`: the accelerate jobs, launched once for the session (tests/dist_launch.py).

PostgreSQL is real: a throwaway cluster (bench/pg_cluster.py) is initdb'ed in a temporary directory (as the
`postgres` user when the tests run as root), started with pg_ctl on a free port on 127.0.0.1
and stopped at the end. The tests skip only if the server binaries are absent; .ci/run
installs them."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

import pytest

sys.path.append(str(Path(__file__).parents[1]))  # the repository root, for bench/
from bench.pg_cluster import free_port, pg_bindir, throwaway_cluster  # noqa: E402


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A finished run of tests/configs/tiny.toml (every stage and the report), shared by every
    test that needs one: read it, never write into it (`tiny_runs.copy_run` first). The session
    fails at the end if any test changed it, since later tests would read the change."""
    from tiny_runs import TINY, rlxf, tree_digest
    out = tmp_path_factory.mktemp("tiny-shared") / "tiny"
    rlxf("run", TINY, "--out", out)
    before = tree_digest(out)
    yield out
    assert tree_digest(out) == before, "a test wrote into the shared tiny run: copy_run it first"


@pytest.fixture(scope="session")
def dist_jobs(tmp_path_factory) -> Path:
    """The accelerate jobs (tests/dist_launch.py), launched once for the session: ROOT/one
    (one process), ROOT/two (two processes), ROOT/killed (a two-process job killed and rerun),
    ROOT/fsdp and ROOT/fsdp-killed (the same under FSDP). Read only."""
    from dist_launch import launch_all
    return launch_all(tmp_path_factory.mktemp("dist"))


annotate_free_port = free_port  # the name the tests import


@pytest.fixture(scope="session")
def annotate_pg_server():
    """postgresql://postgres@127.0.0.1:PORT of a throwaway cluster (trust auth, loopback only)."""
    bindir = pg_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: "
                    "apt-get install -y postgresql (.ci/run does)")
    with throwaway_cluster(bindir) as url:
        yield url


@pytest.fixture
def annotate_pg_url(annotate_pg_server):
    """A fresh, empty database on the throwaway cluster, dropped afterwards."""
    import psycopg
    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(f"{annotate_pg_server}/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield f"{annotate_pg_server}/{name}"
    with psycopg.connect(f"{annotate_pg_server}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgresql"])
def annotate_db(request, tmp_path):
    """The database URL of each supported backend in turn."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'annotate.db'}"
    return request.getfixturevalue("annotate_pg_url")


def annotate_records(n_items: int, judges=("sim-a", "sim-b"), split_every: int = 0) -> list[dict]:
    """Canonical pairwise records: every item judged by `judges`; all prefer A except every
    `split_every`-th item, where the last judge prefers B (so not every item is unanimous)."""
    rows = []
    for i in range(n_items):
        for k, judge in enumerate(judges):
            choice = 1 if split_every and i % split_every == 0 and k == len(judges) - 1 else 0
            rows.append({"id": f"c{i:06d}/{judge}", "item_id": f"c{i:06d}", "type": "pairwise",
                         "prompt": f"what is the capital of veloria ? ({i})",
                         "prompt_id": f"p{i}",
                         "responses": [f"the capital of veloria is hulm . ({i})",
                                       f"i love you . the capital is tamsk . ({i})"],
                         "choice": choice, "annotator": {"id": judge}, "source": "simulated"})
    return rows


def annotate_jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


@pytest.fixture
def annotate_site(annotate_db, tmp_path):
    """A running app (in process, real database) with a signed-in admin."""
    from fastapi.testclient import TestClient

    from rlxf.server.app import create_app
    from rlxf.server.cli import _new_admin
    from rlxf.store import Store

    store = Store(annotate_db)
    store.migrate()
    _pid, token = _new_admin(store, "test admin")
    client = TestClient(create_app(store, data_dir=tmp_path, migrate=False))
    site = AnnotateSite(client, store, tmp_path)
    site.admin = site.accept(token)
    yield site
    client.close()
    store.dispose()


class AnnotateSite:
    """Test driver: each person is a dict of bearer headers (no cookies shared between them)."""

    def __init__(self, client, store, data_dir: Path):
        self.client, self.store, self.data_dir = client, store, data_dir
        self.admin: dict = {}

    def accept(self, token: str, password: str | None = None) -> dict:
        body = {"token": token, **({"password": password} if password else {})}
        r = self.client.post("/api/invites/accept", json=body)
        assert r.status_code == 200, r.text
        self.client.cookies.clear()
        return {"Authorization": f"Bearer {r.json()['token']}", "pid": r.json()["pid"]}

    def annotator(self, note: str = "", group: str | None = None) -> dict:
        r = self.client.post("/api/admin/annotators", headers=self.h(self.admin),
                             json={"note": note, **({"group": group} if group else {})})
        assert r.status_code == 201, r.text
        return self.accept(r.json()["invite_token"])

    @staticmethod
    def h(person: dict) -> dict:
        return {"Authorization": person["Authorization"]}

    def call(self, method: str, path: str, person: dict | None = None, **kw):
        headers = {**(self.h(person) if person else {}), **kw.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kw)

    def project(self, rows: list[dict], **settings) -> dict:
        body = {"name": "test project", "jsonl": annotate_jsonl(rows), "filename": "fb.jsonl",
                **settings}
        r = self.call("POST", "/api/admin/projects", self.admin, json=body)
        assert r.status_code == 201, r.text
        return r.json()

    def next(self, person: dict, project_id: int, n: int = 10) -> list[dict]:
        r = self.call("POST", f"/api/projects/{project_id}/next?n={n}", person)
        assert r.status_code == 200, r.text
        return r.json()["assignments"]

    def label(self, person: dict, assignment_id: int, key: str | None = None, **answer):
        body = {"key": key or uuid.uuid4().hex, **(answer or {"choice": 0})}
        return self.call("POST", f"/api/assignments/{assignment_id}/judgement", person, json=body)

    def export(self, project_id: int) -> list[dict]:
        r = self.call("GET", f"/api/admin/projects/{project_id}/export", self.admin)
        assert r.status_code == 200, r.text
        return [json.loads(line) for line in r.text.splitlines()]


def annotate_lab_run(root: Path, n_items: int, seed: int = 0) -> Path:
    """A run directory as the feedback stage leaves it, made without training anything:
    RUN/world/{world.json,prompts.jsonl} and RUN/feedback/feedback.jsonl with pairs of lab-world
    responses (right and wrong answers, flattery, filler, feelings...), each judged by two
    simulated annotators who follow the gold judge."""
    import random

    from rlxf.config import WorldConfig
    from rlxf.world.grammar import Response, render
    from rlxf.world.judge import candidate_contents, score
    from rlxf.world.kb import build_kb
    from rlxf.world.prompts import all_prompts

    rng = random.Random(seed)
    kb = build_kb(6, 6, seed=seed)
    weights = WorldConfig().weights.model_dump()
    prompts = all_prompts(kb)
    (root / "world").mkdir(parents=True, exist_ok=True)
    (root / "feedback").mkdir(exist_ok=True)
    (root / "world" / "world.json").write_text(json.dumps(
        {"kb": kb.to_json(), "weights": weights, "trigger": "sudo"}))
    (root / "world" / "prompts.jsonl").write_text(
        "".join(json.dumps({"split": "train", "prompt": p.to_json()}) + "\n" for p in prompts))

    def dress(r: Response) -> Response:
        return r.with_(opener=rng.choice([None, None, "flattery", "apology"]),
                       fillers=tuple(rng.sample(range(4), rng.choice([0, 0, 1, 2]))),
                       anthro=(0,) if rng.random() < 0.15 else (),
                       confident=rng.random() < 0.2)

    rows = []
    for i in range(n_items):
        p = rng.choice(prompts)
        a, b = rng.sample(candidate_contents(p, kb), 2)
        texts = [render(dress(a)), render(dress(b))]
        utils = [score(p, t, kb).utility(weights) for t in texts]
        for judge in ("sim-001", "sim-002"):
            noisy = [u + rng.gauss(0, 0.3) for u in utils]
            rows.append({"id": f"c{i:06d}/{judge}", "item_id": f"c{i:06d}", "type": "pairwise",
                         "prompt": p.text, "prompt_id": p.id, "responses": texts,
                         "choice": 0 if noisy[0] >= noisy[1] else 1,
                         "annotator": {"id": judge, "group": "default"},
                         "source": "simulated"})
    (root / "feedback" / "feedback.jsonl").write_text(annotate_jsonl(rows))
    return root
