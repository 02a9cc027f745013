"""Alembic: upgrade from empty to head matches the models exactly, and downgrade leaves nothing behind."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from shoprank import migrate
from shoprank.models import metadata

TABLES = {
    "products",
    "product_embeddings",
    "product_tombstones",
    "events",
    "impression_items",
    "api_keys",
    "experiments",
    "experiment_variants",
    "experiment_audit",
    "exposures",
    "users",
    "unit_day_rollups",
    "answered_searches",
    "suggestion_blocks",
    "ranking_defaults",
    "categories",
    "import_jobs",
}


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrate.db'}"
        return
    factory = request.getfixturevalue("postgres_factory")
    url = factory.create()
    yield url
    factory.drop(url)


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_from_empty_matches_models_and_downgrade_is_clean(empty_db_url):
    assert _tables(empty_db_url) == set()
    migrate.upgrade(empty_db_url)
    assert migrate.current_revision(empty_db_url) == migrate.head_revision()
    assert _tables(empty_db_url) == TABLES | {"alembic_version"}

    engine = create_engine(empty_db_url)
    try:
        with engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}), metadata)
    finally:
        engine.dispose()
    assert diff == [], f"models and migrations drifted apart: {diff}"

    migrate.downgrade(empty_db_url, "base")
    assert _tables(empty_db_url) == {"alembic_version"}
    assert migrate.current_revision(empty_db_url) is None
    migrate.upgrade(empty_db_url)  # and up again: downgrades really undid everything
    assert migrate.is_up_to_date(empty_db_url)


def test_step_by_step_downgrade_and_upgrade(tmp_path):
    url = f"sqlite:///{tmp_path / 'steps.db'}"
    migrate.upgrade(url)
    for expected in (
        "0019_signed_impressions",
        "0018_stock_unknown",
        "0017_trusted_suggestions",
        "0015_analytics_experiment_index",
        "0014_variant_rerank_depth",
        "0013_catalog_index",
        "0010_analytics",
        "0009_impression_delivery",
        "0008_catalog_feeds",
        "0007_session_revocation",
        "0006_login_lockout",
        "0005_experiments",
        "0004_api_keys",
        "0003_events",
        "0002_embeddings",
        "0001_catalog",
        None,
    ):
        migrate.downgrade(url, "-1")
        assert migrate.current_revision(url) == expected
    assert _tables(url) == {"alembic_version"}
