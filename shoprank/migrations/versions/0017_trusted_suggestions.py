"""listing impressions (no query) and server-written autocomplete (answered searches, block list)

Revision ID: 0017_trusted_suggestions
Revises: 0015_analytics_experiment_index
Create Date: 2026-12-07

``events.listing``: what kind of page an impression without a query showed (category, brand, deals, home,
filters); NULL for a search. ``answered_searches``: one row per (phrase, language, shopper) the shop's own search
page answered with results (autocomplete's only source of past searches). ``suggestion_blocks``: phrases
merchandisers removed or blocked.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017_trusted_suggestions"
down_revision = "0015_analytics_experiment_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE, not batch mode: SQLite adds (and, from 3.35, drops) a column in place, and batch mode's
    # table copy would lose the expression index ix_events_impression_query that 0010_analytics made there.
    op.add_column("events", sa.Column("listing", sa.String(length=16), nullable=True))
    op.create_table(
        "answered_searches",
        sa.Column("phrase_key", sa.String(length=400), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("shopper", sa.String(length=64), nullable=False),
        sa.Column("phrase", sa.Text(), nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("phrase_key", "language", "shopper", name=op.f("pk_answered_searches")),
    )
    op.create_table(
        "suggestion_blocks",
        sa.Column("phrase_key", sa.String(length=400), nullable=False),
        sa.Column("phrase", sa.Text(), nullable=False),
        sa.Column("added_by", sa.String(length=254), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("phrase_key", name=op.f("pk_suggestion_blocks")),
    )


def downgrade() -> None:
    op.drop_table("suggestion_blocks")
    op.drop_table("answered_searches")
    op.drop_column("events", "listing")
