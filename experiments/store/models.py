"""Event tables, shaped for per-unit, per-variant aggregation in SQL.

One narrow ``events`` row per event (the columns the reports sum and count), and one
``impression_items`` row per product shown (sku, position, interleaving team). The
composite index ``(experiment, variant, unit_id, type)`` serves the core report
``SELECT experiment, variant, unit_id, SUM(type = 'click'), … GROUP BY experiment,
variant, unit_id`` without touching the table's wider columns more than once.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from shoprank.db import Base, utcnow

EVENT_TYPE_VALUES = ("impression", "click", "add_to_cart", "purchase")


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        CheckConstraint("type IN ('impression', 'click', 'add_to_cart', 'purchase')", name="type"),
        Index("ix_events_experiment_variant_unit_type", "experiment", "variant", "unit_id", "type"),
        Index("ix_events_unit_type", "unit_id", "type"),
        Index("ix_events_impression_id", "impression_id"),
        Index("ix_events_occurred_at", "occurred_at"),
        # The experiment report rolls events up per unit: this index serves it by itself on PostgreSQL
        # (index-only scan, already ordered by unit), see experiments/store/aggregate.py.
        Index(
            "ix_events_experiment_unit_time",
            "experiment",
            "unit_id",
            "occurred_at",
            "type",
            postgresql_include=["order_value", "currency"],
        ),
    )

    #: Client-generated (UUID); the primary key makes a retried batch store nothing twice.
    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    type: Mapped[str] = mapped_column(String(16))
    unit_id: Mapped[str] = mapped_column(String(128))  # visitor id (cookie) or API user id
    experiment: Mapped[str | None] = mapped_column(String(128))
    variant: Mapped[str | None] = mapped_column(String(64))
    #: For clicks, add-to-cart and purchases: the impression (search results page) that led here.
    impression_id: Mapped[str | None] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # impression
    query: Mapped[str | None] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(16))
    reranked: Mapped[bool | None] = mapped_column(Boolean)
    result_count: Mapped[int | None] = mapped_column(Integer)
    # click / add_to_cart / purchase
    sku: Mapped[str | None] = mapped_column(String(64))
    position: Mapped[int | None] = mapped_column(Integer)  # 1-based rank of the clicked product
    quantity: Mapped[int | None] = mapped_column(Integer)
    order_value: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    currency: Mapped[str | None] = mapped_column(String(3))
    request_id: Mapped[str | None] = mapped_column(String(64))


class ImpressionItem(Base):
    """One product shown in an impression, at a 1-based position (and, when interleaving, its team)."""

    __tablename__ = "impression_items"
    __table_args__ = (Index("ix_impression_items_sku", "sku"),)

    impression_id: Mapped[str] = mapped_column(ForeignKey("events.event_id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku: Mapped[str] = mapped_column(String(64))
    team: Mapped[str | None] = mapped_column(String(16))
