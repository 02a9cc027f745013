"""catalog index: product tombstones for the index delta; (category, id) for paged category pages

Revision ID: 0013_catalog_index
Revises: 0010_analytics
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_catalog_index"
down_revision = "0010_analytics"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "product_tombstones",
        sa.Column("product_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("product_id", name=op.f("pk_product_tombstones")),
    )
    op.create_index(op.f("ix_product_tombstones_deleted_at"), "product_tombstones", ["deleted_at"])
    op.create_index("ix_products_category_id", "products", ["category", "id"])
    op.create_index("ix_product_embeddings_updated_at", "product_embeddings", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_product_embeddings_updated_at", table_name="product_embeddings")
    op.drop_index("ix_products_category_id", table_name="products")
    op.drop_index(op.f("ix_product_tombstones_deleted_at"), table_name="product_tombstones")
    op.drop_table("product_tombstones")
