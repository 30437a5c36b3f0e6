"""The annotation store against real SQLite and a real PostgreSQL server: the migration
builds exactly the models' schema, constraints hold, deletes cascade, writers do not trip."""

import threading

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from rlxf.store import (Annotator, Assignment, Demographics, Item, Judgement, Project, Store,
                        normalise_url)
from rlxf.store.db import current_revision


@pytest.fixture
def store(annotate_db):
    s = Store(annotate_db)
    s.migrate()
    yield s
    s.dispose()


def seed(store: Store) -> dict:
    with store.write() as s:
        p = Project(name="p", task_type="pairwise", guidelines="", overlap=2, gold_rate=0.0,
                    aspects=[], scale=3, status="open", source={})
        a = Annotator(pid="h-00000001", role="annotator", note="")
        s.add_all([p, a])
        s.flush()
        it = Item(project_id=p.id, item_id="c0", position=0, prompt="q", context=[],
                  responses=["x", "y"], is_gold=False, n_assigned=1, provenance={})
        s.add(it)
        s.flush()
        asg = Assignment(project_id=p.id, annotator_id=a.id, item_id=it.id, position=1)
        s.add(asg)
        s.flush()
        return {"project": p.id, "annotator": a.id, "item": it.id, "assignment": asg.id}


def judgement(ids: dict, key: str, assignment: int | None = None) -> Judgement:
    return Judgement(project_id=ids["project"], assignment_id=assignment or ids["assignment"],
                     annotator_id=ids["annotator"], item_id=ids["item"], key=key, choice=0,
                     tie=False)


def test_urls():
    assert normalise_url("annotate.db").drivername == "sqlite"
    assert normalise_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalise_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    with pytest.raises(ValueError, match="not supported"):
        normalise_url("mysql://u@h/db")
    with pytest.raises(ValueError, match="needs a file"):
        normalise_url("sqlite://")


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path):
    store = Store(tmp_path / "a.db")
    store.migrate()
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    full = Store(f"sqlite:///{tmp_path / 'b.db'}?synchronous=full")
    with full.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2


def test_background_checkpoints_keep_the_wal_short(tmp_path):
    """A served store checkpoints from its own thread: commits no longer checkpoint at 1000
    pages (they would stall the event loop), yet the WAL is copied back into the database."""
    import time
    store = Store(tmp_path / "c.db")
    store.migrate()
    store.start_checkpoints(interval=0.05)
    try:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 20_000
        ids = seed(store)
        for i in range(300):
            with store.write() as s:
                s.add(Annotator(pid=f"h-{i:08x}x", role="annotator", note="n" * 150))
        time.sleep(0.3)
        with store.engine.connect() as conn:  # everything is already in the database file
            busy, wal_pages, done = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
        assert busy == 0 and wal_pages == done
    finally:
        store.stop_checkpoints()
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
    with store.read() as s:
        assert s.scalar(select(func.count(Annotator.id))) == 301 and ids
    store.dispose()


def test_migration_builds_the_models_schema(store):
    """Autogenerate against the migrated database finds nothing to change: the migration and
    the models agree, on both backends."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from rlxf.store.models import Base
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    assert current_revision(store.engine) == "0004_curation"
    store.migrate()  # a second start is a no-op
    assert {"projects", "items", "assignments", "judgements", "annotators", "demographics",
            "sessions", "project_members", "decisions"} <= store.tables()


def test_idempotency_key_is_unique_per_annotator(store):
    ids = seed(store)
    with store.write() as s:
        s.add(judgement(ids, "key-00000001"))
    with pytest.raises(IntegrityError):
        with store.write() as s:
            second = Assignment(project_id=ids["project"], annotator_id=ids["annotator"],
                                item_id=ids["item"], position=2)
            s.add(second)  # also violates (annotator, item): either constraint must refuse
            s.flush()
    with pytest.raises(IntegrityError):  # one judgement per assignment
        with store.write() as s:
            s.add(judgement(ids, "key-00000002"))
    with store.read() as s:
        assert s.scalar(select(func.count(Judgement.id))) == 1


def test_deleting_an_annotator_cascades_and_demographics_stand_apart(store):
    ids = seed(store)
    with store.write() as s:
        s.add(judgement(ids, "key-00000001"))
        s.add(Demographics(annotator_id=ids["annotator"], data={"age_band": "25-34"}))
    with store.write() as s:  # demographics go alone, labels stay
        s.delete(s.get(Demographics, ids["annotator"]))
    with store.read() as s:
        assert s.scalar(select(func.count(Judgement.id))) == 1
    with store.write() as s:
        s.delete(s.get(Annotator, ids["annotator"]))
    with store.read() as s:
        assert s.scalar(select(func.count(Judgement.id))) == 0
        assert s.scalar(select(func.count(Assignment.id))) == 0
        assert s.scalar(select(func.count(Item.id))) == 1  # the item itself stays


def test_foreign_keys_are_enforced(store):
    with pytest.raises(IntegrityError):
        with store.write() as s:
            s.add(Item(project_id=999, item_id="x", position=0, prompt="q", context=[],
                       responses=["a", "b"], is_gold=False, n_assigned=0, provenance={}))


def test_concurrent_writers_never_fail(store):
    """16 threads x 25 read-then-write transactions: no 'database is locked', no lost row."""
    ids = seed(store)
    errors = []

    def worker(t):
        try:
            for i in range(25):
                with store.write() as s:
                    n = s.scalar(select(func.count(Annotator.id)))
                    s.add(Annotator(pid=f"w-{t:02d}-{i:04d}", role="annotator", note=str(n)))
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with store.read() as s:
        assert s.scalar(select(func.count(Annotator.id))) == 16 * 25 + 1
    assert ids


def test_prebuilt_statements_store_and_read_what_the_orm_does(tmp_path):
    """The SQLite hot path (store/prebuilt.py) runs SQLAlchemy-compiled statements on a
    DBAPI cursor: a row it writes reads back through the ORM unchanged, in the same stored
    format as a row the ORM writes, and it reads ORM rows with the same conversions."""
    from datetime import datetime, timezone

    from rlxf.server.queue import _INSERT_JUDGEMENT, _SUBMIT_ROW
    from rlxf.store import as_utc
    store = Store(tmp_path / "p.db")
    store.migrate()
    ids = seed(store)
    when = datetime(2026, 11, 24, 9, 30, 1, 123456, tzinfo=timezone.utc)
    values = {"project_id": ids["project"], "assignment_id": ids["assignment"],
              "annotator_id": ids["annotator"], "item_id": ids["item"], "key": "prebuilt-1",
              "choice": None, "tie": True, "strength": None, "ratings": {"step 1": 1},
              "ranking": [2, 0, 1], "ties": [[2, 0]], "text": "ok ünïcode", "duration_ms": 5,
              "created": when}
    with store.hot(write=True) as run:
        assert run(_INSERT_JUDGEMENT, {"v_" + k: v for k, v in values.items()}) == 1
    with store.read() as s:
        j = s.scalar(select(Judgement))
        got = {k: getattr(j, k) for k in values}
    assert {**got, "created": as_utc(got["created"])} == values
    with store.hot() as run:
        (row,) = run(_SUBMIT_ROW, {"assignment": ids["assignment"]})
    assert (row.tie, row.ratings, row.ranking, row.text, as_utc(row.created)) == (
        True, {"step 1": 1}, [2, 0, 1], "ok ünïcode", when)
    assert row.responses == ["x", "y"] and row.aspects == [] and row.key == "prebuilt-1"
    with store.write() as s:  # the ORM's own row, for the stored format
        s.add(Judgement(project_id=ids["project"], assignment_id=seed_assignment(s, ids),
                        annotator_id=ids["annotator"], item_id=ids["item"], key="orm-1",
                        tie=False, ratings=None, created=when))
    with store.engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT created, typeof(tie), ratings FROM judgements "
                                      "ORDER BY id").all()
    assert stored[0][:2] == stored[1][:2] == ("2026-11-24 09:30:01.123456", "integer")
    store.dispose()


def seed_assignment(s, ids: dict) -> int:
    it = Item(project_id=ids["project"], item_id="c1", position=1, prompt="q", context=[],
              responses=["x", "y"], is_gold=False, n_assigned=1, provenance={})
    s.add(it)
    s.flush()
    a = Assignment(project_id=ids["project"], annotator_id=ids["annotator"], item_id=it.id,
                   position=2)
    s.add(a)
    s.flush()
    return a.id


def test_the_hot_path_rolls_back_what_fails(tmp_path):
    """A failed hot write (here: a duplicate key) leaves no transaction open and nothing
    stored; the next write on the same thread's connection works."""
    import sqlite3
    from datetime import datetime, timezone

    from rlxf.server.queue import _INSERT_JUDGEMENT
    store = Store(tmp_path / "r.db")
    store.migrate()
    ids = seed(store)
    row = {"v_project_id": ids["project"], "v_assignment_id": ids["assignment"],
           "v_annotator_id": ids["annotator"], "v_item_id": ids["item"], "v_key": "k-1",
           "v_choice": 0, "v_tie": False, "v_strength": None, "v_ratings": None,
           "v_ranking": None, "v_ties": None, "v_text": None, "v_duration_ms": None,
           "v_created": datetime(2026, 11, 24, tzinfo=timezone.utc)}
    with store.hot(write=True) as run:
        run(_INSERT_JUDGEMENT, row)
    with pytest.raises(sqlite3.IntegrityError), store.hot(write=True) as run:
        run(_INSERT_JUDGEMENT, {**row, "v_key": "k-2"})  # a second label for the assignment
    assert not store._thread_conn().in_transaction
    other = seed_assignment_id(store, ids)
    with store.hot(write=True) as run:
        assert run(_INSERT_JUDGEMENT, {**row, "v_key": "k-3", "v_assignment_id": other}) == 1
    with store.read() as s:
        assert sorted(s.scalars(select(Judgement.key))) == ["k-1", "k-3"]
    store.dispose()


def seed_assignment_id(store: Store, ids: dict) -> int:
    with store.write() as s:
        return seed_assignment(s, ids)
