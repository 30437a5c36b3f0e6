"""The annotation store: SQLAlchemy models, engines and sessions, Alembic migrations."""

from .db import Store, as_utc, iso, make_engine, migrate, normalise_url
from .models import (Annotator, Assignment, AuthSession, Base, Decision, Demographics, Item,
                     Judgement, Project, ProjectMember)

__all__ = ["Store", "as_utc", "iso", "make_engine", "migrate", "normalise_url", "Annotator",
           "Assignment", "AuthSession", "Base", "Decision", "Demographics", "Item", "Judgement",
           "Project", "ProjectMember"]
