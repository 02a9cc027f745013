"""search analytics: a covering partial index of clicks by impression

Revision ID: 0010_analytics
Revises: 0006_login_lockout
Create Date: 2026-12-04

The search analytics views roll clicks up per impression (count, position) before joining them to their searches.
Without this index PostgreSQL reads every click's heap row through ``ix_events_impression_id``; with it, an
index-only scan in impression order feeds a streaming aggregate (about half the time at a million events).
Clicks only (a partial index), so impressions, carts and purchases pay nothing for it at ingestion.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_analytics"
down_revision = "0006_login_lockout"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_events_click_impression",
        "events",
        ["impression_id"],
        postgresql_include=["position", "occurred_at"],
        postgresql_where=sa.text("type = 'click'"),
        sqlite_where=sa.text("type = 'click'"),
    )


def downgrade() -> None:
    op.drop_index("ix_events_click_impression", table_name="events")
