"""event store: events and impression items

Revision ID: 0003_events
Revises: 0002_embeddings
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_events"
down_revision = "0002_embeddings"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("unit_id", sa.String(128), nullable=False),
        sa.Column("experiment", sa.String(128), nullable=True),
        sa.Column("variant", sa.String(64), nullable=True),
        sa.Column("impression_id", sa.String(64), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("query", sa.Text(), nullable=True),
        sa.Column("language", sa.String(16), nullable=True),
        sa.Column("reranked", sa.Boolean(), nullable=True),
        sa.Column("result_count", sa.Integer(), nullable=True),
        sa.Column("sku", sa.String(64), nullable=True),
        sa.Column("position", sa.Integer(), nullable=True),
        sa.Column("quantity", sa.Integer(), nullable=True),
        sa.Column("order_value", sa.Numeric(14, 2), nullable=True),
        sa.Column("currency", sa.String(3), nullable=True),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.CheckConstraint("type IN ('impression', 'click', 'add_to_cart', 'purchase')", name=op.f("ck_events_type")),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_events")),
    )
    op.create_index("ix_events_experiment_variant_unit_type", "events", ["experiment", "variant", "unit_id", "type"])
    op.create_index("ix_events_unit_type", "events", ["unit_id", "type"])
    op.create_index("ix_events_impression_id", "events", ["impression_id"])
    op.create_index("ix_events_occurred_at", "events", ["occurred_at"])
    op.create_table(
        "impression_items",
        sa.Column("impression_id", sa.String(64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("team", sa.String(16), nullable=True),
        sa.ForeignKeyConstraint(
            ["impression_id"],
            ["events.event_id"],
            name=op.f("fk_impression_items_impression_id_events"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("impression_id", "position", name=op.f("pk_impression_items")),
    )
    op.create_index("ix_impression_items_sku", "impression_items", ["sku"])


def downgrade() -> None:
    op.drop_index("ix_impression_items_sku", table_name="impression_items")
    op.drop_table("impression_items")
    for name in (
        "ix_events_occurred_at",
        "ix_events_impression_id",
        "ix_events_unit_type",
        "ix_events_experiment_variant_unit_type",
    ):
        op.drop_index(name, table_name="events")
    op.drop_table("events")
