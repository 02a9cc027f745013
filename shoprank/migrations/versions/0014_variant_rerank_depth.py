"""per-variant maximum rerank depth (experiment variants and the shipped ranking defaults)

Revision ID: 0014_variant_rerank_depth
Revises: 0013_catalog_index
Create Date: 2026-12-04

Nullable, so existing rows keep meaning "the deployment's SHOPRANK_RERANK_MAX_DEPTH". The shipped defaults get the
column too: shipping a variant copies its ranking config, and a winner that was tested at depth 20 must not be
served at the deployment's depth once shipped.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_variant_rerank_depth"
down_revision = "0013_catalog_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("experiment_variants") as batch:
        batch.add_column(sa.Column("rerank_max_depth", sa.Integer(), nullable=True))
        batch.create_check_constraint(op.f("ck_experiment_variants_rerank_max_depth"), "rerank_max_depth > 0")
    with op.batch_alter_table("ranking_defaults") as batch:
        batch.add_column(sa.Column("rerank_max_depth", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ranking_defaults") as batch:
        batch.drop_column("rerank_max_depth")
    with op.batch_alter_table("experiment_variants") as batch:
        batch.drop_constraint(op.f("ck_experiment_variants_rerank_max_depth"), type_="check")
        batch.drop_column("rerank_max_depth")
