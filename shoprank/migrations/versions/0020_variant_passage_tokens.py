"""per-variant passage token budget (experiment variants and the shipped ranking defaults)

Revision ID: 0020_variant_passage_tokens
Revises: 0019_signed_impressions
Create Date: 2026-12-08

Nullable, so existing rows keep meaning "the deployment's SHOPRANK_RERANK_PASSAGE_TOKENS". The shipped defaults get
the column too: a winner tested at 128 tokens must be served at 128 tokens once shipped.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020_variant_passage_tokens"
down_revision = "0019_signed_impressions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("experiment_variants") as batch:
        batch.add_column(sa.Column("passage_tokens", sa.Integer(), nullable=True))
        batch.create_check_constraint(
            op.f("ck_experiment_variants_passage_tokens"), "passage_tokens BETWEEN 16 AND 512"
        )
    with op.batch_alter_table("ranking_defaults") as batch:
        batch.add_column(sa.Column("passage_tokens", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ranking_defaults") as batch:
        batch.drop_column("passage_tokens")
    with op.batch_alter_table("experiment_variants") as batch:
        batch.drop_constraint(op.f("ck_experiment_variants_passage_tokens"), type_="check")
        batch.drop_column("passage_tokens")
