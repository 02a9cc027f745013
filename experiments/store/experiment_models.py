"""Experiment definitions as merchandisers edit them, their audit trail, and the exposure log.

The definition tables are small and read into a cached snapshot (``experiments.resolver``); nothing reads
them per search. ``exposures`` holds one row per (experiment, unit): the primary key is what makes
"exposure logged once per unit" true under concurrency (insert-ignore), and the row's language and market,
taken at first exposure, put each unit in exactly one slice of the per-language breakdown.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shoprank.db import Base, utcnow

STATUS_VALUES = ("draft", "running", "stopped")
KIND_VALUES = ("ab", "interleaving")
PRIMARY_METRICS = ("ctr", "conversion_rate", "revenue_per_unit", "clicks_per_unit")
#: The exposure (and impression) variant recorded for every unit of an interleaving experiment.
INTERLEAVED_VARIANT = "interleaved"


class Experiment(Base):
    __tablename__ = "experiments"
    __table_args__ = (
        CheckConstraint("status IN ('draft', 'running', 'stopped')", name="status"),
        CheckConstraint("kind IN ('ab', 'interleaving')", name="kind"),
        CheckConstraint("coverage >= 0 AND coverage <= 1", name="coverage"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    hypothesis: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(String(16), default="ab")
    status: Mapped[str] = mapped_column(String(16), default="draft")
    coverage: Mapped[float] = mapped_column(Float, default=1.0)
    #: Hash seed; defaults to the key. Changing it re-randomises everyone, so it is frozen once running.
    seed: Mapped[str] = mapped_column(String(128))
    namespace: Mapped[str | None] = mapped_column(String(64))
    namespace_start: Mapped[float] = mapped_column(Float, default=0.0)
    namespace_end: Mapped[float] = mapped_column(Float, default=1.0)
    #: Targeting allow-lists, comma-separated (empty = everyone): shopper languages ("de", "pt-br"), markets ("DE").
    languages: Mapped[str] = mapped_column(String(200), default="")
    markets: Mapped[str] = mapped_column(String(200), default="")
    primary_metric: Mapped[str] = mapped_column(String(32), default="ctr")
    #: Relative lift the experiment should be able to detect; drives the sample-size progress bar.
    target_mde: Mapped[float] = mapped_column(Float, default=0.05)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    stopped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    variants: Mapped[list[ExperimentVariant]] = relationship(
        back_populates="experiment",
        order_by="ExperimentVariant.position",
        cascade="all, delete-orphan",
        lazy="selectin",
    )
    audit: Mapped[list[ExperimentAudit]] = relationship(
        back_populates="experiment", order_by="ExperimentAudit.id", cascade="all, delete-orphan"
    )

    def language_list(self) -> list[str]:
        return [part for part in (p.strip() for p in self.languages.split(",")) if part]

    def market_list(self) -> list[str]:
        return [part for part in (p.strip() for p in self.markets.split(",")) if part]


class ExperimentVariant(Base):
    """One arm; position 0 is control. The ranking config decides how the search flow ranks for its units."""

    __tablename__ = "experiment_variants"
    __table_args__ = (
        UniqueConstraint("experiment_id", "key", name="uq_experiment_variants_experiment_key"),
        UniqueConstraint("experiment_id", "position", name="uq_experiment_variants_experiment_position"),
        CheckConstraint("weight > 0", name="weight"),
        CheckConstraint("first_stage_top_k > 0", name="top_k"),
        CheckConstraint("rerank_max_depth > 0", name="rerank_max_depth"),
        CheckConstraint("passage_tokens BETWEEN 16 AND 512", name="passage_tokens"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200), default="")
    weight: Mapped[float] = mapped_column(Float, default=1.0)
    rerank: Mapped[bool] = mapped_column(Boolean, default=True)
    model: Mapped[str | None] = mapped_column(String(200))  # None: the deployment's default reranker
    first_stage_top_k: Mapped[int] = mapped_column(Integer, default=100)
    device_preference: Mapped[str | None] = mapped_column(String(8))  # "cuda", "cpu" or None (any)
    #: Most first-stage candidates reranked (the deadline-aware policy may score fewer); None = the deployment's
    #: ``SHOPRANK_RERANK_MAX_DEPTH``. Lets merchandisers test a shallower, cheaper rerank against a deeper one.
    rerank_max_depth: Mapped[int | None] = mapped_column(Integer)
    #: Passage token budget (``reranking.passage_budget``); None = the deployment's ``SHOPRANK_RERANK_PASSAGE_TOKENS``.
    passage_tokens: Mapped[int | None] = mapped_column(Integer)

    experiment: Mapped[Experiment] = relationship(back_populates="variants")


class ExperimentAudit(Base):
    """Who changed what and when: every create, edit, start and stop, with the changed fields."""

    __tablename__ = "experiment_audit"

    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    actor: Mapped[str] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(32))
    #: JSON object {field: [old, new]} (or the full definition for "created").
    changes: Mapped[str] = mapped_column(Text, default="{}")

    experiment: Mapped[Experiment] = relationship(back_populates="audit")


class Exposure(Base):
    """The first time a unit was served a variant of an experiment. One row per (experiment, unit), ever."""

    __tablename__ = "exposures"
    __table_args__ = (Index("ix_exposures_experiment_variant", "experiment", "variant"),)

    experiment: Mapped[str] = mapped_column(String(128), primary_key=True)
    unit_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    variant: Mapped[str] = mapped_column(String(64))
    language: Mapped[str | None] = mapped_column(String(16))
    market: Mapped[str | None] = mapped_column(String(8))
    surface: Mapped[str | None] = mapped_column(String(8))
    exposed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RankingDefault(Base):
    """A shipped winner: the ranking config every search gets outside running experiments (newest row wins).

    Rows are never updated or deleted, so the table is also the history of what was shipped, when and by whom;
    the shipping experiment's audit trail has the matching ``shipped`` entry. Without any row the deployment's
    settings decide (``SHOPRANK_FIRST_STAGE_TOP_K``, the configured reranker).
    """

    __tablename__ = "ranking_defaults"

    id: Mapped[int] = mapped_column(primary_key=True)
    rerank: Mapped[bool] = mapped_column(Boolean)
    model: Mapped[str | None] = mapped_column(String(200))
    first_stage_top_k: Mapped[int] = mapped_column(Integer)
    device_preference: Mapped[str | None] = mapped_column(String(8))
    #: The shipped variant's maximum rerank depth (None = the deployment's ``SHOPRANK_RERANK_MAX_DEPTH``).
    rerank_max_depth: Mapped[int | None] = mapped_column(Integer)
    #: The shipped variant's passage token budget (None = the deployment's ``SHOPRANK_RERANK_PASSAGE_TOKENS``).
    passage_tokens: Mapped[int | None] = mapped_column(Integer)
    experiment_key: Mapped[str] = mapped_column(String(64))
    variant_key: Mapped[str] = mapped_column(String(64))
    shipped_by: Mapped[str] = mapped_column(String(254))
    shipped_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: Why (the merchandiser's note), shown on the ops page and in the audit entry.
    note: Mapped[str] = mapped_column(Text, default="")
