"""Catalog embedding on real embed worker processes (Celery, Redis), compared with in-process vectors."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest
from conftest import REDIS_URL, service_missing
from sqlalchemy import select

from catalog.embedding import LocalEmbedding, count_stale, embed_catalog
from catalog.importer import ImportOptions, import_feed
from catalog.models import Product, ProductEmbedding
from catalog.vectors import embedder, vector_from_bytes
from shoprank import migrate
from shoprank.db import Database
from workers.embed_client import CeleryEmbedding, live_embed_processes
from workers.embed_worker import EmbedRejected, validate_texts
from workers.testing import WorkerProcess, delete_prefixed_keys, isolated_environment, settings_for

pytestmark = pytest.mark.slow  # starts Celery embed worker processes


@pytest.fixture(scope="module")
def embed_env() -> Iterator[dict[str, str]]:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.exceptions.RedisError as exc:
        service_missing(f"Redis at {REDIS_URL} unreachable: {exc}")
    env = isolated_environment(REDIS_URL)
    yield env
    delete_prefixed_keys(REDIS_URL, env["SHOPRANK_QUEUE_PREFIX"])


@pytest.fixture(scope="module")
def embed_workers(embed_env, tmp_path_factory) -> Iterator[WorkerProcess]:
    """One embed worker with two prefork processes, as `shoprank embed-worker --concurrency 2` runs."""
    log = tmp_path_factory.mktemp("embed") / "embed-worker.log"
    worker = WorkerProcess(
        ["--concurrency", "2", "--hostname", "embed-test@localhost"], embed_env, log, "embed-worker", "embed:"
    )
    with worker:
        worker.wait_ready(processes=2)
        yield worker


def _catalog(tmp_path, count: int) -> Database:
    url = f"sqlite:///{tmp_path / 'embed.db'}"
    migrate.upgrade(url)
    rows = [
        {
            "sku": f"E-{i:03d}",
            "title": f"{['Wireless', 'Trail', 'Ceramic'][i % 3]} product {i}",
            "price": f"{i + 1}.00 USD",
            "category": ["Audio > Headphones", "Sports & Fitness", "Kitchen > Mugs"][i % 3],
            "language": "en",
            "description": f"<p>Item number {i}.</p>",
        }
        for i in range(count)
    ]
    path = tmp_path / "catalog.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    db = Database(url)
    import_feed(db, path, ImportOptions())
    return db


def test_workers_embed_the_catalog_like_this_process_does(embed_env, embed_workers, tmp_path):
    settings = settings_for(embed_env)
    assert live_embed_processes(settings) == 2
    db = _catalog(tmp_path, 24)
    backend = CeleryEmbedding.from_settings(settings, processes=2)
    try:
        report = embed_catalog(db, backend, chunk_size=6)
    finally:
        backend.close()
    assert report.embedded == 24 and report.stale_at_start == 24
    with db.session() as session:
        assert count_stale(session) == 0
        stored = session.execute(select(Product.id, ProductEmbedding.vector).join(ProductEmbedding)).all()
    # The same vectors as the in-process path, for the same texts.
    local_db_path = tmp_path / "local"
    local_db_path.mkdir()
    local = _catalog(local_db_path, 24)
    embed_catalog(local, LocalEmbedding(embedder().passages), chunk_size=6)
    with local.session() as session:
        expected = dict(session.execute(select(ProductEmbedding.product_id, ProductEmbedding.vector)).all())
    for product_id, vector in stored:
        assert np.allclose(vector_from_bytes(vector), vector_from_bytes(expected[product_id]), atol=1e-5)
    assert len(backend.served) == 2 and sum(backend.served.values()) == 4  # both processes took chunks
    db.dispose()
    local.dispose()


def test_resume_embeds_only_what_is_still_stale(embed_env, embed_workers, tmp_path):
    settings = settings_for(embed_env)
    db = _catalog(tmp_path, 12)
    backend = CeleryEmbedding.from_settings(settings, processes=2)
    try:
        assert embed_catalog(db, backend, chunk_size=4, limit=5).embedded == 5  # an interrupted run
        with db.session() as session:
            assert count_stale(session) == 7
        assert embed_catalog(db, backend, chunk_size=4).embedded == 7
    finally:
        backend.close()
    db.dispose()


def test_malformed_chunks_are_rejected():
    with pytest.raises(EmbedRejected):
        validate_texts("not a list")
    with pytest.raises(EmbedRejected):
        validate_texts(["ok", 3])
    assert validate_texts(["ok"]) == ["ok"]
