"""The annotation store's schema (SQLAlchemy 2 declarative models).

Privacy by layout: an annotator is a pseudonymous id (`pid`) plus an optional private note only
the admin sees; demographics live in their own optional table, so exports and agreement never
touch them and deleting them is one row. Every judgement carries the client's idempotency key
under a unique constraint, so a retried submission is stored exactly once.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text,
                        UniqueConstraint, false)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # "pairwise" | "likert" | "ranking" | "edit" | "critique" | "steps" (server/tasks.py)
    task_type: Mapped[str] = mapped_column(String(20))
    guidelines: Mapped[str] = mapped_column(Text, default="")  # Markdown
    overlap: Mapped[int] = mapped_column(Integer, default=3)  # judgements wanted per item (k)
    gold_rate: Mapped[float] = mapped_column(Float, default=0.0)  # gold share of each queue
    aspects: Mapped[list] = mapped_column(JSON, default=list)  # likert: aspect names
    scale: Mapped[int] = mapped_column(Integer, default=3)  # strength or rating levels 1..scale
    status: Mapped[str] = mapped_column(String(10), default="open")  # "open" | "closed"
    # members-only: work goes only to the annotators in project_members (else to everyone)
    members_only: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    source: Mapped[dict] = mapped_column(JSON, default=dict)  # where the items came from
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    items: Mapped[list[Item]] = relationship(back_populates="project", cascade="all, delete-orphan",
                                             passive_deletes=True)


class Item(Base):
    """One thing to judge: a prompt and its responses. `gold` is the known answer of a gold
    item ({"choice": 0|1} or {"tie": true}; likert: {"ratings": {...}}), null otherwise."""
    __tablename__ = "items"
    __table_args__ = (UniqueConstraint("project_id", "item_id", name="uq_items_project_item"),
                      Index("ix_items_pick", "project_id", "is_gold", "n_assigned", "position"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    item_id: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(Integer)
    prompt: Mapped[str] = mapped_column(Text)
    context: Mapped[list] = mapped_column(JSON, default=list)
    prompt_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    responses: Mapped[list] = mapped_column(JSON)
    is_gold: Mapped[bool] = mapped_column(Boolean, default=False)
    gold: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    # Non-gold items are handed out until n_assigned reaches the project's overlap; the counter
    # is bumped by a conditional UPDATE, so two annotators can never both take the k-th slot.
    n_assigned: Mapped[int] = mapped_column(Integer, default=0)
    provenance: Mapped[dict] = mapped_column(JSON, default=dict)

    project: Mapped[Project] = relationship(back_populates="items")


class Annotator(Base):
    __tablename__ = "annotators"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pid: Mapped[str] = mapped_column(String(40), unique=True)  # pseudonymous id, used in exports
    role: Mapped[str] = mapped_column(String(10), default="annotator")  # "annotator" | "admin"
    group: Mapped[str | None] = mapped_column(String(100), nullable=True)
    note: Mapped[str] = mapped_column(String(200), default="")  # admin-only, never exported
    password_hash: Mapped[str | None] = mapped_column(String(200), nullable=True)  # argon2
    invite_hash: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    invite_expires: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ProjectMember(Base):
    """An annotator admitted to a members-only project."""
    __tablename__ = "project_members"

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"),
                                            primary_key=True)
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id", ondelete="CASCADE"),
                                              primary_key=True)
    added: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Demographics(Base):
    """Optional, self-reported, stored apart from everything else and never exported."""
    __tablename__ = "demographics"

    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id", ondelete="CASCADE"),
                                              primary_key=True)
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    updated: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AuthSession(Base):
    """A login: the cookie / bearer token is stored only as its SHA-256."""
    __tablename__ = "sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id", ondelete="CASCADE"),
                                              index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Assignment(Base):
    __tablename__ = "assignments"
    __table_args__ = (UniqueConstraint("annotator_id", "item_id",
                                       name="uq_assignments_annotator_item"),
                      Index("ix_assignments_queue", "annotator_id", "project_id", "position"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)  # order in this annotator's queue
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    item: Mapped[Item] = relationship()
    judgement: Mapped[Judgement | None] = relationship(back_populates="assignment",
                                                       passive_deletes=True)


class Judgement(Base):
    """One annotator's answer for one assignment (at most one: unique assignment_id). A retried
    submit carries the same key, hits the unique (annotator, key) constraint and is stored once."""
    __tablename__ = "judgements"
    __table_args__ = (UniqueConstraint("annotator_id", "key", name="uq_judgements_annotator_key"),
                      Index("ix_judgements_project", "project_id", "item_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"),
                                               unique=True)
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(100))  # client-supplied idempotency key
    choice: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tie: Mapped[bool] = mapped_column(Boolean, default=False)
    strength: Mapped[int | None] = mapped_column(Integer, nullable=True)
    ratings: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # likert; steps
    ranking: Mapped[list | None] = mapped_column(JSON, nullable=True)  # response indices, best first
    ties: Mapped[list | None] = mapped_column(JSON, nullable=True)  # ranking: tied groups
    text: Mapped[str | None] = mapped_column(Text, nullable=True)  # the edit or the critique
    duration_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    assignment: Mapped[Assignment] = relationship(back_populates="judgement")


class Decision(Base):
    """A curator's final label for an item (the review queue, server/curation.py): one
    annotator's label accepted, or the curator's own. Append-only: the latest one per item is
    the label exported; earlier ones stay as history."""
    __tablename__ = "decisions"
    __table_args__ = (Index("ix_decisions_item", "project_id", "item_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    curator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id", ondelete="CASCADE"))
    method: Mapped[str] = mapped_column(String(10))  # "accepted" | "set"
    # accepted: whose label; the label itself is copied below, so an undo does not change it
    accepted_from: Mapped[int | None] = mapped_column(
        ForeignKey("annotators.id", ondelete="SET NULL"), nullable=True)
    reason: Mapped[str] = mapped_column(String(100), default="")
    note: Mapped[str] = mapped_column(String(1000), default="")
    choice: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tie: Mapped[bool] = mapped_column(Boolean, default=False)
    strength: Mapped[int | None] = mapped_column(Integer, nullable=True)
    ratings: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    ranking: Mapped[list | None] = mapped_column(JSON, nullable=True)
    ties: Mapped[list | None] = mapped_column(JSON, nullable=True)
    text: Mapped[str | None] = mapped_column(Text, nullable=True)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
