"""Alembic environment: the caller (rlxf.store.db.migrate) passes an open connection."""

from alembic import context

from rlxf.store.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata,
                  render_as_batch=connection.dialect.name == "sqlite")  # SQLite cannot ALTER much
with context.begin_transaction():
    context.run_migrations()
