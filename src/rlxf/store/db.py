"""Engines and sessions for the annotation store: a SQLite file by default, PostgreSQL by URL.

SQLite runs in WAL mode with foreign keys on. Writers take the database lock up front
(BEGIN IMMEDIATE) and, inside one process, queue on a Python lock: without it concurrent
writers spin in SQLite's busy handler (sleeps of up to 100 ms) or fail a deferred read->write
upgrade with SQLITE_BUSY, and p99 latency suffers. `synchronous=NORMAL` in WAL mode keeps every
committed transaction through a crash of the process (kill -9); only a power cut can lose the
last ones (use `?synchronous=full` in the URL to fsync every commit).

A served store checkpoints the WAL from a background thread (`start_checkpoints`): SQLite's
automatic checkpoint runs inside the commit that crosses 1000 WAL pages, fsyncs the database
file there and stalls that request -- and, since SQLite work runs on the event loop, every
request queued behind it (10-20 ms stalls, measured with bench/annotate_load.py).
"""

from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager, nullcontext
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from sqlalchemy import create_engine, event, inspect
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from .prebuilt import Prebuilt

MIGRATIONS = Path(__file__).with_name("migrations")


def normalise_url(db: str | Path) -> URL:
    """`annotate.db` or `sqlite:///annotate.db` -> SQLite; `postgresql://...` -> psycopg 3."""
    db = str(db)
    if "://" not in db:
        db = f"sqlite:///{Path(db).expanduser()}"
    url = make_url(db)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    if url.drivername not in ("sqlite", "sqlite+pysqlite", "postgresql+psycopg"):
        raise ValueError(f"--db {db!r}: use a SQLite file or a postgresql:// URL "
                         f"(driver {url.drivername!r} is not supported)")
    if url.drivername.startswith("sqlite") and url.database in (None, "", ":memory:"):
        raise ValueError("--db: SQLite needs a file (an in-memory database is one per connection)")
    return url


# With background checkpoints, commits checkpoint only if the WAL grows past this many pages
# (~80 MB: the checkpointer has stalled); otherwise SQLite's default of 1000.
FALLBACK_AUTOCHECKPOINT = 20_000


def _sqlite_engine(url: URL, settings: dict) -> Engine:
    synchronous = url.query.get("synchronous", "normal")
    if synchronous not in ("normal", "full"):
        raise ValueError(f"?synchronous={synchronous!r}: use normal or full")
    url = url.difference_update_query(["synchronous"])
    Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, pool_size=20, max_overflow=30,
                           connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # pysqlite must not BEGIN on its own: _on_begin does
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA synchronous={synchronous.upper()}")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute(f"PRAGMA wal_autocheckpoint={settings['autocheckpoint']}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        options = conn.get_execution_options()
        if options.get("rlxf_write", False):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        elif not options.get("rlxf_autocommit", False):  # a lone SELECT needs no BEGIN
            conn.exec_driver_sql("BEGIN")

    return engine


def make_engine(db: str | Path | URL, settings: dict | None = None) -> Engine:
    """`settings` (SQLite): {"autocheckpoint": pages}, read whenever a connection opens."""
    url = db if isinstance(db, URL) else normalise_url(db)
    if url.drivername.startswith("sqlite"):
        return _sqlite_engine(url, settings if settings is not None else {"autocheckpoint": 1000})
    return create_engine(url, pool_size=20, max_overflow=30, pool_pre_ping=True)


def as_utc(dt: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; every time in the store is UTC."""
    if dt is not None and dt.tzinfo is None:
        return dt.replace(tzinfo=timezone.utc)
    return dt


def iso(dt: datetime | None) -> str | None:
    return as_utc(dt).isoformat() if dt is not None else None


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (the app does this at start)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        conn.commit()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


class Store:
    """One database: `read()` sessions for queries, `write()` sessions that commit on success;
    `read_conn()` / `write_conn()` give SQLAlchemy Core connections for the hot paths, where
    the ORM's per-statement bookkeeping costs more than SQLite itself."""

    def __init__(self, db: str | Path | URL):
        self.url = db if isinstance(db, URL) else normalise_url(db)
        self._sqlite_settings = {"autocheckpoint": 1000}
        self.engine = make_engine(self.url, self._sqlite_settings)
        self.is_sqlite = self.url.drivername.startswith("sqlite")
        self._lock = threading.Lock() if self.is_sqlite else None
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write_engine = self.engine.execution_options(rlxf_write=True)
        self._quick_engine = self.engine.execution_options(rlxf_autocommit=True)
        self._write = sessionmaker(self._write_engine, expire_on_commit=False)
        self._checkpointer: threading.Thread | None = None
        self._stop_checkpoints = threading.Event()
        self._prebuilt: dict[int, tuple[object, Prebuilt]] = {}
        self._local = threading.local()  # SQLite: each thread's own DBAPI connection (hot)
        self._hot_conns: list = []
        self._hot_generation = 0

    def migrate(self) -> None:
        migrate(self.engine)

    def tables(self) -> set[str]:
        return set(inspect(self.engine).get_table_names())

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._read() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        with self._lock or nullcontext():
            with self._write.begin() as session:
                yield session

    @contextmanager
    def read_conn(self) -> Iterator[Connection]:
        """For reads that need no snapshot across statements (on SQLite each statement is its
        own transaction, which saves a BEGIN and a ROLLBACK per request)."""
        with self._quick_engine.connect() as conn:
            yield conn

    @contextmanager
    def write_conn(self) -> Iterator[Connection]:
        with self._lock or nullcontext():
            with self._write_engine.begin() as conn:
                yield conn

    @contextmanager
    def hot(self, write: bool = False) -> Iterator[Callable]:
        """For the routes every label goes through: yields `run(stmt, params)`, which returns
        a SELECT's rows (attribute access by column key) or the number of rows changed.

        SQLite: prebuilt statements (prebuilt.py) on this thread's own DBAPI connection; a
        write is one BEGIN IMMEDIATE ... COMMIT under the process's write lock. PostgreSQL:
        a pooled SQLAlchemy connection, as `read_conn()` / `write_conn()`."""
        if not self.is_sqlite:
            with (self.write_conn() if write else self.read_conn()) as conn:
                yield lambda stmt, params: _run_sa(conn, stmt, params)
            return
        conn = self._thread_conn()
        cursor = conn.cursor()

        def run(stmt, params):
            return self._compiled(stmt).run(cursor, params)

        try:
            if not write:
                yield run
                return
            with self._lock:
                cursor.execute("BEGIN IMMEDIATE")
                try:
                    yield run
                    cursor.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:  # also when COMMIT itself failed
                        cursor.execute("ROLLBACK")
                    raise
        finally:
            cursor.close()

    def _compiled(self, stmt) -> Prebuilt:
        found = self._prebuilt.get(id(stmt))
        if found is None or found[0] is not stmt:
            found = self._prebuilt[id(stmt)] = (stmt, Prebuilt(stmt, self.engine.dialect))
        return found[1]

    def _thread_conn(self):
        """This thread's DBAPI connection, opened through the engine (so with its pragmas)
        and detached from the pool, which would otherwise count it as checked out forever."""
        local = self._local
        if getattr(local, "generation", None) != self._hot_generation:
            proxied = self.engine.raw_connection()
            local.conn, local.generation = proxied.driver_connection, self._hot_generation
            proxied.detach()
            self._hot_conns.append(local.conn)
        return local.conn

    def start_checkpoints(self, interval: float = 0.25) -> None:
        """SQLite: checkpoint the WAL every `interval` s from a thread with its own connection
        (PASSIVE: never waits for or blocks writers; the fsync happens off the event loop)."""
        if not self.is_sqlite or self._checkpointer is not None:
            return
        self._sqlite_settings["autocheckpoint"] = FALLBACK_AUTOCHECKPOINT
        self.engine.dispose()  # pooled connections reopen with the new setting
        path = self.engine.url.database
        self._stop_checkpoints.clear()

        def run() -> None:
            conn = sqlite3.connect(path, timeout=30, isolation_level=None,
                                   check_same_thread=False)
            try:
                while not self._stop_checkpoints.wait(interval):
                    try:
                        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    except sqlite3.Error:
                        pass  # e.g. a migration holds the schema: next time

            finally:
                conn.close()

        self._checkpointer = threading.Thread(target=run, name="rlxf-wal-checkpoint",
                                              daemon=True)
        self._checkpointer.start()

    def stop_checkpoints(self) -> None:
        if self._checkpointer is not None:
            self._stop_checkpoints.set()
            self._checkpointer.join()
            self._checkpointer = None
            self._sqlite_settings["autocheckpoint"] = 1000
            self.engine.dispose()

    def dispose(self) -> None:
        self.stop_checkpoints()
        self._hot_generation += 1
        for conn in self._hot_conns:
            conn.close()
        self._hot_conns.clear()
        self.engine.dispose()


def _run_sa(conn: Connection, stmt, params: dict):
    result = conn.execute(stmt, params)
    return result.all() if result.returns_rows else result.rowcount
