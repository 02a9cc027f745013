"""events.signed: the impression's id was issued and signed by this server (search analytics counts only these)

Revision ID: 0019_signed_impressions
Revises: 0018_stock_unknown
Create Date: 2026-12-08

``POST /api/events`` is public; the events API marks an impression ``signed`` when its id verifies as one the
server issued for the kind, query and product count the event carries (``experiments.store.impression_ids``). Rows
stored before this revision were never checked and stay ``false``: search analytics no longer counts them. A
constant default, so PostgreSQL adds the column without rewriting the table; plain ALTER TABLE on SQLite too
(batch mode's copy would lose the expression index 0010_analytics made there).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019_signed_impressions"
down_revision = "0018_stock_unknown"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("events", sa.Column("signed", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    op.drop_column("events", "signed")
