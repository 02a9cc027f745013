"""Helpers behind the shop/web-app fixtures in conftest.py: databases, catalog, services, API keys."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, make_url, text

REPO = Path(__file__).resolve().parent.parent
DEMO_CATALOG = REPO / "data" / "catalog" / "demo_products.jsonl"
DEMO_QUERIES = REPO / "data" / "catalog" / "demo_queries.jsonl"
MINI_CATALOG = REPO / "tests" / "fixtures" / "mini_catalog.jsonl"


def catalog_for_tests() -> Path:
    """The shipped demo catalog when present, else the small fixture catalog."""
    return DEMO_CATALOG if DEMO_CATALOG.exists() else MINI_CATALOG


class PostgresFactory:
    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.created: list[str] = []
        self.error: str | None = None

    def _admin(self):
        return create_engine(self.admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})

    def available(self) -> bool:
        try:
            engine = self._admin()
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            engine.dispose()
            return True
        except Exception as exc:  # driver missing, server down, auth refused
            self.error = f"{type(exc).__name__}: {exc}"
            return False

    def create(self) -> str:
        name = f"shoprank_test_{uuid.uuid4().hex[:12]}"
        engine = self._admin()
        with engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        self.created.append(name)
        return make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)

    def drop(self, url: str) -> None:
        name = make_url(url).database
        engine = self._admin()
        with engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()
        if name in self.created:
            self.created.remove(name)

    def drop_all(self) -> None:
        for name in list(self.created):
            self.drop(make_url(self.admin_url).set(database=name).render_as_string(hide_password=False))


def prepare_shop_database(url: str, catalog: Path | None = None) -> None:
    from catalog.importer import import_file
    from catalog.vectors import embedder
    from shoprank import migrate
    from shoprank.db import Database

    migrate.upgrade(url)
    db = Database(url)
    try:
        import_file(db, catalog or catalog_for_tests(), embedder().passages)
    finally:
        db.dispose()


def settings_for_tests(url: str, **overrides: Any):
    from shoprank.config import Settings

    values: dict[str, Any] = dict(
        env="test", database_url=url, redis_url=None, broker_url=None, reranker_allow_download=False
    )
    values.update(overrides)
    return Settings.from_env({}, **values)


def fallback_dispatcher():
    from reranking import MemoryScoreCache, Reranker
    from reranking.dispatch import InProcessDispatcher
    from reranking.scorers.bi_encoder import E5FallbackScorer

    scorer = E5FallbackScorer(fallback_reason="tests: no cross-encoder weights")
    return InProcessDispatcher({"default": Reranker(scorer, MemoryScoreCache())}, "default")


def build_test_services(url: str, dispatcher: Any = None, **settings_overrides: Any):
    from webapp.services import build_services

    settings = settings_for_tests(url, **settings_overrides)
    services = build_services(settings, dispatcher=dispatcher or fallback_dispatcher())
    services.index.refresh()
    return services


def create_key(services: Any, name: str = "tests") -> str:
    from shoprank.apikeys import create_api_key

    with services.db.session() as session:
        _, plaintext = create_api_key(session, name)
    return plaintext


class CountingEmbedder:
    """Deterministic fake vectors that record every text: catalog tests check bookkeeping, not embedding quality."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def __call__(self, texts: Any) -> Any:
        import numpy as np

        from catalog.vectors import EMBEDDING_DIM

        self.texts.extend(texts)
        out = np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float32)
        for i, t in enumerate(texts):
            out[i, hash(t) % EMBEDDING_DIM] = 1.0
        return out
