"""products.stock nullable: NULL is "availability unknown" (the feed gave neither a stock count nor an availability)

Revision ID: 0018_stock_unknown
Revises: 0017_trusted_suggestions
Create Date: 2026-12-07

Existing rows keep their counts (a stock-less feed imported before this revision stored 0; importing it again
stores NULL). Downgrading turns unknown back into 0, the only value the old schema has for it.

SQLite cannot change a column's nullability in place: Alembic's batch mode copies ``products`` into a new table
and drops the old one, and with foreign keys on (``shoprank.db`` turns them on; the pragma cannot be switched
off inside the migration's transaction) that drop cascades to ``product_embeddings``. Their rows are kept in a
temporary table across the copy and put back, so no stored vector is lost.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

revision = "0018_stock_unknown"
down_revision = "0017_trusted_suggestions"
branch_labels = None
depends_on = None


@contextmanager
def _products_rebuilt() -> Iterator[None]:
    """Keep the rows that reference ``products`` (ON DELETE CASCADE) across SQLite's table copy."""
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        op.execute("CREATE TEMPORARY TABLE _kept_product_embeddings AS SELECT * FROM product_embeddings")
    yield
    if sqlite:
        op.execute("INSERT INTO product_embeddings SELECT * FROM _kept_product_embeddings")
        op.execute("DROP TABLE _kept_product_embeddings")


def upgrade() -> None:
    with _products_rebuilt(), op.batch_alter_table("products") as batch:
        batch.alter_column("stock", existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    op.execute("UPDATE products SET stock = 0 WHERE stock IS NULL")
    with _products_rebuilt(), op.batch_alter_table("products") as batch:
        batch.alter_column("stock", existing_type=sa.Integer(), nullable=False)
