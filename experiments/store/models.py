"""Event tables, shaped for per-unit, per-variant aggregation in SQL.

One narrow ``events`` row per event, one ``impression_items`` row per product shown (sku,
position, interleaving team), and ``unit_day_rollups``: per (experiment, unit, day) counters
kept by ingestion, which the experiment report aggregates instead of the raw events.
Indexes are few on purpose: every one is paid for on each of the millions of inserts.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from shoprank.db import Base, utcnow

EVENT_TYPE_VALUES = ("impression", "click", "add_to_cart", "purchase")
#: Impressions of pages that list products without a query: their own kind, counted apart from searches.
LISTING_VALUES = ("category", "brand", "deals", "home", "filters")


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        CheckConstraint("type IN ('impression', 'click', 'add_to_cart', 'purchase')", name="type"),
        # Interleaving credit reads an experiment's impressions and clicks; the A/B report reads unit_day_rollups.
        Index("ix_events_experiment_type", "experiment", "type"),
        Index("ix_events_unit_type", "unit_id", "type"),
        Index("ix_events_impression_id", "impression_id"),
        Index("ix_events_occurred_at", "occurred_at"),
        # Search analytics: clicks rolled up per impression by an index-only scan (migration 0010_analytics).
        Index(
            "ix_events_click_impression",
            "impression_id",
            postgresql_include=["position", "occurred_at"],
            postgresql_where=text("type = 'click'"),
            sqlite_where=text("type = 'click'"),
        ),
        # Search analytics filtered by experiment: its impressions in a time range (migration 0015).
        Index(
            "ix_events_impression_experiment",
            "experiment",
            "occurred_at",
            postgresql_where=text("type = 'impression'"),
            sqlite_where=text("type = 'impression'"),
        ),
        # The query page: one query's searches by their normalised text, lower(trim(query)) (search_analytics),
        # spelled as PostgreSQL reflects it; SQLite gets the same index from the migration.
        Index(
            "ix_events_impression_query",
            text("lower(TRIM(BOTH FROM query))"),
            "occurred_at",
            postgresql_where=text("type = 'impression'"),
        ).ddl_if(dialect="postgresql"),
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
    #: impression of a listing without a query (one of LISTING_VALUES); NULL for a search (which has a query)
    listing: Mapped[str | None] = mapped_column(String(16))
    language: Mapped[str | None] = mapped_column(String(16))
    reranked: Mapped[bool | None] = mapped_column(Boolean)
    result_count: Mapped[int | None] = mapped_column(Integer)
    # impression: what the search really served (echoed from the search answer), for the delivery check and
    # the guardrails: rerank status, the scorer that answered, how many candidates it scored, server time.
    rerank_status: Mapped[str | None] = mapped_column(String(16))
    scorer_kind: Mapped[str | None] = mapped_column(String(32))
    scorer_model: Mapped[str | None] = mapped_column(String(200))
    rerank_depth: Mapped[int | None] = mapped_column(Integer)
    search_ms: Mapped[float | None] = mapped_column(Float)
    #: impression: its id was issued (HMAC-signed) by this server for the kind, query and product count the event
    #: carries (:mod:`experiments.store.impression_ids`); search analytics counts only these. False for other events.
    signed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
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
    impression_id: Mapped[str] = mapped_column(ForeignKey("events.event_id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku: Mapped[str] = mapped_column(String(64))
    team: Mapped[str | None] = mapped_column(String(16))


class UnitDayRollup(Base):
    """Per (experiment, unit, UTC day) counters, maintained by ingestion in the same transaction as the events.

    The experiment report reads these instead of the raw events (about a fifth of the rows for a typical shopper),
    which keeps the dashboard under a second at millions of events. Purchases are kept per currency
    (``currency`` is ``''`` on the row holding impressions and clicks) so revenue is converted at query time and
    a change of exchange rates re-prices history consistently. Only events stored for the first time are counted:
    a retried batch changes nothing here either.
    """

    __tablename__ = "unit_day_rollups"

    experiment: Mapped[str] = mapped_column(String(128), primary_key=True)
    unit_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    impressions: Mapped[int] = mapped_column(Integer, default=0)
    clicks: Mapped[int] = mapped_column(Integer, default=0)
    purchases: Mapped[int] = mapped_column(Integer, default=0)
    revenue: Mapped[float] = mapped_column(Float, default=0.0)  # in ``currency``
