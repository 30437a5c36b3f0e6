"""SQLAlchemy Core statements compiled once and run straight on a DBAPI cursor (SQLite).

Why: on the submission path SQLAlchemy's per-execution machinery (pool checkout, execution
context, events, result objects) cost several times what SQLite itself spends (cProfile of
bench/annotate_load.py's requests). The statements are still built by SQLAlchemy from the
models, with bound parameters and the column types' own conversions (JSON, DateTime, Boolean),
so the SQL and the stored values are exactly what the ORM would produce and read.
"""

from __future__ import annotations

from collections import namedtuple

from sqlalchemy.engine import Dialect
from sqlalchemy.sql import Executable


class Prebuilt:
    """`stmt` compiled for `dialect` (a qmark dialect such as pysqlite)."""

    def __init__(self, stmt: Executable, dialect: Dialect):
        compiled = stmt.compile(dialect=dialect)
        if compiled.positiontup is None:
            raise ValueError("Prebuilt needs a dialect with positional parameters")
        self.sql = compiled.string
        # the dialect's own implementation of each type: e.g. SQLite stores DateTime as text
        self.binds = [(name, compiled.binds[name].type.dialect_impl(dialect)
                       .bind_processor(dialect)) for name in compiled.positiontup]
        # literals the statement carries (e.g. the 0 of coalesce(x, 0)) are bound too
        self.fixed = {name: b.value for name, b in compiled.binds.items() if not b.required}
        columns = list(getattr(stmt, "selected_columns", ()))
        self.row = namedtuple("Row", [c.key for c in columns], rename=True) if columns else None
        self.results = [c.type.dialect_impl(dialect).result_processor(dialect, None)
                        for c in columns]

    def args(self, params: dict) -> list:
        values = {**self.fixed, **params} if self.fixed else params
        return [proc(values[name]) if proc else values[name] for name, proc in self.binds]

    def run(self, cursor, params: dict) -> list | int:
        """Rows (named tuples, values converted by the column types) of a SELECT; else the
        number of rows changed."""
        cursor.execute(self.sql, self.args(params))
        if self.row is None:
            return cursor.rowcount
        procs = self.results
        return [self.row(*(p(v) if p else v for p, v in zip(procs, raw)))
                for raw in cursor.fetchall()]
