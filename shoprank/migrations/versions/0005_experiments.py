"""experiments: definitions, variants, audit trail, exposures, dashboard users, per-unit-day rollups

Revision ID: 0005_experiments
Revises: 0004_api_keys
Create Date: 2025-01-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_experiments"
down_revision = "0004_api_keys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("hypothesis", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("coverage", sa.Float(), nullable=False),
        sa.Column("seed", sa.String(128), nullable=False),
        sa.Column("namespace", sa.String(64), nullable=True),
        sa.Column("namespace_start", sa.Float(), nullable=False),
        sa.Column("namespace_end", sa.Float(), nullable=False),
        sa.Column("languages", sa.String(200), nullable=False),
        sa.Column("markets", sa.String(200), nullable=False),
        sa.Column("primary_metric", sa.String(32), nullable=False),
        sa.Column("target_mde", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('draft', 'running', 'stopped')", name=op.f("ck_experiments_status")),
        sa.CheckConstraint("kind IN ('ab', 'interleaving')", name=op.f("ck_experiments_kind")),
        sa.CheckConstraint("coverage >= 0 AND coverage <= 1", name=op.f("ck_experiments_coverage")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiments")),
        sa.UniqueConstraint("key", name=op.f("uq_experiments_key")),
    )
    op.create_table(
        "experiment_variants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("rerank", sa.Boolean(), nullable=False),
        sa.Column("model", sa.String(200), nullable=True),
        sa.Column("first_stage_top_k", sa.Integer(), nullable=False),
        sa.Column("device_preference", sa.String(8), nullable=True),
        sa.CheckConstraint("weight > 0", name=op.f("ck_experiment_variants_weight")),
        sa.CheckConstraint("first_stage_top_k > 0", name=op.f("ck_experiment_variants_top_k")),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["experiments.id"],
            name=op.f("fk_experiment_variants_experiment_id_experiments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiment_variants")),
        sa.UniqueConstraint("experiment_id", "key", name="uq_experiment_variants_experiment_key"),
        sa.UniqueConstraint("experiment_id", "position", name="uq_experiment_variants_experiment_position"),
    )
    op.create_table(
        "experiment_audit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(254), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("changes", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["experiments.id"],
            name=op.f("fk_experiment_audit_experiment_id_experiments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiment_audit")),
    )
    op.create_index("ix_experiment_audit_experiment_id", "experiment_audit", ["experiment_id"])
    op.create_table(
        "exposures",
        sa.Column("experiment", sa.String(128), nullable=False),
        sa.Column("unit_id", sa.String(128), nullable=False),
        sa.Column("variant", sa.String(64), nullable=False),
        sa.Column("language", sa.String(16), nullable=True),
        sa.Column("market", sa.String(8), nullable=True),
        sa.Column("surface", sa.String(8), nullable=True),
        sa.Column("exposed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("experiment", "unit_id", name=op.f("pk_exposures")),
    )
    op.create_index("ix_exposures_experiment_variant", "exposures", ["experiment", "variant"])
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("role IN ('merchandiser', 'ops', 'admin')", name=op.f("ck_users_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    # The A/B report now reads unit_day_rollups; interleaving credit needs (experiment, type). Fewer indexes on
    # the two largest tables make ingestion faster.
    op.drop_index("ix_events_experiment_variant_unit_type", table_name="events")
    op.create_index("ix_events_experiment_type", "events", ["experiment", "type"])
    op.drop_index("ix_impression_items_sku", table_name="impression_items")
    op.create_table(
        "unit_day_rollups",
        sa.Column("experiment", sa.String(128), nullable=False),
        sa.Column("unit_id", sa.String(128), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("impressions", sa.Integer(), nullable=False),
        sa.Column("clicks", sa.Integer(), nullable=False),
        sa.Column("purchases", sa.Integer(), nullable=False),
        sa.Column("revenue", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("experiment", "unit_id", "day", "currency", name=op.f("pk_unit_day_rollups")),
    )
    # Events stored before this revision get their rollups now (later ones are rolled up at ingestion).
    day = (
        "CAST(timezone('UTC', occurred_at) AS DATE)"
        if op.get_bind().dialect.name == "postgresql"
        else "date(occurred_at)"
    )
    op.execute(
        f"""INSERT INTO unit_day_rollups (experiment, unit_id, day, currency, impressions, clicks, purchases, revenue)
        SELECT experiment, unit_id, {day},
               CASE WHEN type = 'purchase' THEN COALESCE(currency, '') ELSE '' END,
               SUM(CASE WHEN type = 'impression' THEN 1 ELSE 0 END),
               SUM(CASE WHEN type = 'click' THEN 1 ELSE 0 END),
               SUM(CASE WHEN type = 'purchase' THEN 1 ELSE 0 END),
               SUM(CASE WHEN type = 'purchase' THEN COALESCE(CAST(order_value AS FLOAT), 0) ELSE 0 END)
        FROM events
        WHERE experiment IS NOT NULL AND type IN ('impression', 'click', 'purchase')
        GROUP BY experiment, unit_id, {day}, CASE WHEN type = 'purchase' THEN COALESCE(currency, '') ELSE '' END"""  # nosec B608 - {day} is one of the two constant expressions above, nothing external
    )


def downgrade() -> None:
    op.drop_table("unit_day_rollups")
    op.create_index("ix_impression_items_sku", "impression_items", ["sku"])
    op.drop_index("ix_events_experiment_type", table_name="events")
    op.create_index("ix_events_experiment_variant_unit_type", "events", ["experiment", "variant", "unit_id", "type"])
    op.drop_table("users")
    op.drop_index("ix_exposures_experiment_variant", table_name="exposures")
    op.drop_table("exposures")
    op.drop_index("ix_experiment_audit_experiment_id", table_name="experiment_audit")
    op.drop_table("experiment_audit")
    op.drop_table("experiment_variants")
    op.drop_table("experiments")
