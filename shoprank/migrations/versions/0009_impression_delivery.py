"""impression delivery (rerank status, scorer, depth, server time) and shipped ranking defaults

Revision ID: 0009_impression_delivery
Revises: 0008_catalog_feeds
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_impression_delivery"
down_revision = "0008_catalog_feeds"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("rerank_status", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("scorer_kind", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("scorer_model", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("rerank_depth", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("search_ms", sa.Float(), nullable=True))
    op.create_table(
        "ranking_defaults",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("rerank", sa.Boolean(), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("first_stage_top_k", sa.Integer(), nullable=False),
        sa.Column("device_preference", sa.String(length=8), nullable=True),
        sa.Column("experiment_key", sa.String(length=64), nullable=False),
        sa.Column("variant_key", sa.String(length=64), nullable=False),
        sa.Column("shipped_by", sa.String(length=254), nullable=False),
        sa.Column("shipped_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ranking_defaults")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("search_ms")
        batch.drop_column("rerank_depth")
        batch.drop_column("scorer_model")
        batch.drop_column("scorer_kind")
        batch.drop_column("rerank_status")
