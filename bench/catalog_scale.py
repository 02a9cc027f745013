"""Catalog scale: the first stage at 10k, 100k and 1M synthetic multilingual products, on PostgreSQL.

Products are generated (titles from per-language word lists, 60 categories, 400 brands, prices in 8
currencies) with *generated* vectors: unit-length points around a centre per (category, language) plus
one of 40 product kinds per category, varying mostly within a 48-dimensional subspace (text embeddings
have a low intrinsic dimension) plus a little isotropic noise — clustered like real embeddings, without a
day of e5 inference. Queries for recall are catalog vectors with noise. They are loaded
with COPY (the database side of an import without embedding), then ``search.index_files``
builds a version. For each size:

- load rows/s (COPY) and index build seconds;
- gunicorn with the project's config, 1 then 2 worker processes: start (spawn → first search answered),
  RSS, and private memory (USS: what each process adds; the mapped index pages are shared);
- ``/api/search`` first-stage p50/p95 (server timings) and HTTP p50/p95, category page p50;
- update → visible: a product renamed in the database until ``/api/search`` ranks it first, and a
  price change until a price filter (in-process index) drops it;
- ANN recall@100 against an exact scan of the same vectors.

Usage: ``python bench/catalog_scale.py --sizes 10000 100000 1000000``; prints JSON and a one-line summary.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from decimal import Decimal
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.benchstats import percentile  # noqa: E402

ADMIN_URL = os.environ.get("SHOPRANK_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
LANGUAGES = {
    "en": ["wireless", "headphones", "running", "shoes", "coffee", "grinder", "desk", "lamp", "backpack", "kettle"],
    "de": ["kabellose", "Kopfhörer", "Laufschuhe", "Kaffeemühle", "Schreibtisch", "Lampe", "Rucksack", "Wasserkocher"],
    "es": ["auriculares", "inalámbricos", "zapatillas", "correr", "molinillo", "café", "lámpara", "mochila"],
    "zh": ["无线", "降噪", "耳机", "跑步鞋", "咖啡", "研磨机", "台灯", "背包"],
    "ja": ["ワイヤレス", "イヤホン", "ランニング", "シューズ", "コーヒー", "ミル", "ランプ", "リュック"],
    "fr": ["casque", "sans", "fil", "chaussures", "course", "moulin", "lampe", "sac"],
    "ar": ["سماعات", "لاسلكية", "حذاء", "جري", "مطحنة", "قهوة", "مصباح", "حقيبة"],
    "ru": ["беспроводные", "наушники", "кроссовки", "бег", "кофемолка", "лампа", "рюкзак", "чайник"],
}
CURRENCIES = ["USD", "EUR", "GBP", "JPY", "CNY", "RUB", "AED", "BRL"]
CATEGORIES = [f"category-{i:02d}" for i in range(60)]
DIM = 384


def generate(count: int, seed: int = 0):
    """Product tuples and their vectors, in chunks of 20,000 (bounded memory at any count)."""
    rng = np.random.default_rng(seed)
    languages = list(LANGUAGES)
    centres = rng.normal(size=(len(CATEGORIES) * len(languages), DIM)).astype(np.float32)
    kinds = rng.normal(size=(len(CATEGORIES), 40, DIM)).astype(np.float32)  # product kinds within a category
    basis = np.linalg.qr(rng.normal(size=(DIM, 48)))[0].T.astype(np.float32)  # text varies in few directions
    for start in range(0, count, 20_000):
        n = min(20_000, count - start)
        cats = rng.integers(0, len(CATEGORIES), n)
        langs = rng.integers(0, len(languages), n)
        vectors = (
            centres[cats * len(languages) + langs]
            + 0.7 * kinds[cats, rng.integers(0, 40, n)]
            + 2.5 * rng.normal(size=(n, 48)).astype(np.float32) @ basis
            + 0.25 * rng.normal(size=(n, DIM)).astype(np.float32)
        )
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        rows = []
        for i in range(n):
            words = LANGUAGES[languages[langs[i]]]
            picks = rng.integers(0, len(words), 4)
            title = " ".join(words[j] for j in picks) + f" {int(rng.integers(100, 9999))}"
            rows.append(
                (
                    f"SKU{start + i:08d}",
                    title,
                    f"{title} — synthetic listing {start + i}",
                    Decimal(int(rng.integers(100, 50_000))) / 100,
                    CURRENCIES[int(rng.integers(0, len(CURRENCIES)))],
                    CATEGORIES[cats[i]],
                    languages[langs[i]],
                    f"brand-{int(rng.integers(0, 400))}",
                    int(rng.integers(0, 50)),
                )
            )
        yield rows, vectors


def load(url: str, count: int) -> dict:
    """COPY products and their vectors (as the importer would store them) into a migrated database."""
    from catalog.vectors import DENSE_TEXT_VERSION, EMBEDDING_MODEL_ID, dense_hash
    from shoprank.db import Database, utcnow

    db = Database(url)
    started = time.perf_counter()
    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        next_id = 1
        now = utcnow()
        for rows, vectors in generate(count):
            hashes = [
                dense_hash({"title": r[1], "description": r[2], "category": r[5], "brand": r[7], "attributes": {}})
                for r in rows
            ]
            with cursor.copy(
                "COPY products (id, sku, title, description, price, currency, category, language, brand, stock,"
                " attributes, dense_hash, created_at, updated_at) FROM STDIN"
            ) as copy:
                for offset, row in enumerate(rows):
                    copy.write_row((next_id + offset, *row, "{}", hashes[offset], now, now))
            with cursor.copy(
                "COPY product_embeddings (product_id, model_id, passage_format_version, text_hash, dim, vector,"
                " updated_at) FROM STDIN"
            ) as copy:
                for offset, vector in enumerate(vectors):
                    stored = (EMBEDDING_MODEL_ID, DENSE_TEXT_VERSION, hashes[offset], DIM)
                    copy.write_row((next_id + offset, *stored, vector.astype("<f4").tobytes(), now))
            next_id += len(rows)
            raw.commit()
        cursor.execute("SELECT setval(pg_get_serial_sequence('products', 'id'), %s)", (next_id,))
        cursor.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()
        db.dispose()
    seconds = time.perf_counter() - started
    return {"rows": count, "seconds": round(seconds, 1), "rows_per_s": round(count / seconds)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str, timeout: float = 30) -> tuple[int, bytes, float]:
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        body, status = exc.read(), exc.code
    return status, body, (time.perf_counter() - started) * 1000


def memory(pid: int) -> dict:
    """RSS, PSS, USS (private) and anonymous memory of a process, in MB, from /proc/PID/smaps_rollup."""
    values = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        name, _, rest = line.partition(":")
        if rest.strip().endswith("kB"):
            values[name] = int(rest.split()[0]) / 1024
    return {
        "rss_mb": round(values["Rss"]),
        "pss_mb": round(values["Pss"]),
        "uss_mb": round(values["Private_Clean"] + values["Private_Dirty"]),
        "anonymous_mb": round(values["Anonymous"]),  # heap: what a process cannot share (mapped files can)
    }


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return sorted(int(p) for p in out)


def serve(url: str, index_dir: Path, workers: int, queries: list[str], slug: str) -> tuple[dict, subprocess.Popen]:
    """Start gunicorn with ``workers`` processes and measure it; the caller stops the returned server."""
    port = free_port()
    env = {
        **os.environ,
        "SHOPRANK_DATABASE_URL": url,
        "SHOPRANK_INDEX_DIR": str(index_dir),
        "SHOPRANK_RERANKER_ALLOW_DOWNLOAD": "0",
        "SHOPRANK_REDIS_URL": "",
        "SHOPRANK_BROKER_URL": "",
        "SHOPRANK_PUBLIC_RATE_LIMIT_PER_MINUTE": "0",
        "GUNICORN_WORKERS": str(workers),
        "GUNICORN_THREADS": "4",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "PYTHONPATH": str(ROOT),
    }
    started = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "python:webapp.gunicorn_conf", "webapp:create_app()"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                status, _, _ = get(f"{base}/api/search?q={urllib.parse.quote(queries[0])}&limit=20", timeout=120)
                if status == 200:
                    break
            except OSError:
                pass
            if time.perf_counter() - started > 300 or server.poll() is not None:
                raise RuntimeError("server did not start")
            time.sleep(0.2)
        start_s = time.perf_counter() - started
        for _ in range(workers * 3):  # every worker answers once (each maps the index on its first search)
            get(f"{base}/api/search?q={urllib.parse.quote(queries[1])}&limit=20")
        first_stage, wall = [], []
        for query in queries:
            status, body, ms = get(f"{base}/api/search?q={urllib.parse.quote(query)}&limit=20")
            assert status == 200, body[:200]
            first_stage.append(json.loads(body)["timings_ms"]["first_stage"])
            wall.append(ms)
        category = [get(f"{base}/c/{slug}?page=3")[2] for _ in range(30)]
        processes = children(server.pid)
        mem = [memory(p) for p in processes]
        result = {
            "workers": workers,
            "start_s": round(start_s, 1),
            "first_stage_ms": {
                "p50": round(percentile(first_stage, 50), 1),
                "p95": round(percentile(first_stage, 95), 1),
            },
            "search_http_ms": {"p50": round(percentile(wall, 50), 1), "p95": round(percentile(wall, 95), 1)},
            "category_page_ms_p50": round(statistics.median(category), 1),
            "memory_per_process": mem,
        }
        result["base_url"] = base
        return result, server
    except BaseException:
        stop(server)
        raise


def stop(server: subprocess.Popen) -> None:
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(60)
    except subprocess.TimeoutExpired:  # a loaded machine can outlast gunicorn's graceful timeout
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(30)


def visibility(url: str, index_dir: Path, product_id: int) -> dict:
    """Seconds from a committed change to a first stage that shows it, through the same index code the web
    processes run (their poll interval is the same 1 s): a rename (a delta document, found by its new word)
    and a price change (an override, dropped by a price filter)."""
    from sqlalchemy import text

    from catalog.vectors import embedder
    from search.filters import PriceBound, SearchFilters
    from search.index import CatalogIndex
    from shoprank.db import Database, utcnow

    db = Database(url)
    index = CatalogIndex(db, embedder(), index_dir, poll_interval=1.0, build_if_missing=False)
    sku = f"SKU{product_id - 1:08d}"
    word = "zq" + uuid.uuid4().hex[:8]

    def found(filters: SearchFilters | None = None) -> bool:
        hits = index.refresh_if_changed().first_stage(word, 100, filters).hits
        return any(h.sku == sku for h in hits)

    def seconds_until(predicate) -> float:
        started = time.perf_counter()
        while not predicate():
            if time.perf_counter() - started > 60:
                raise RuntimeError("change never became visible")
            time.sleep(0.02)
        return time.perf_counter() - started

    assert not found()  # maps the version and loads the query encoder before the clock starts
    with db.session() as session:
        session.execute(
            text("UPDATE products SET title = :t, updated_at = :now WHERE id = :id"),
            {"t": f"{word} thermos", "now": utcnow(), "id": product_id},
        )
    rename_s = seconds_until(found)
    cap = SearchFilters.of(max_price=PriceBound(Decimal("1000000"), "USD"))
    assert found(cap)
    with db.session() as session:
        session.execute(
            text("UPDATE products SET price = 9999999, currency = 'USD', updated_at = :now WHERE id = :id"),
            {"now": utcnow(), "id": product_id},
        )
    price_s = seconds_until(lambda: not found(cap))
    db.dispose()
    return {"rename_visible_s": round(rename_s, 2), "price_visible_s": round(price_s, 2), "poll_interval_s": 1.0}


def recall(index_dir: Path, queries: int = 100, seed: int = 1) -> dict:
    from search.index import IndexVersion
    from search.index_files import current_version

    version = IndexVersion(index_dir / current_version(index_dir))
    vectors = version.vectors
    rng = np.random.default_rng(seed)
    searchable = int(vectors.offsets[-1])
    picks = rng.integers(0, searchable, queries)
    matrix = np.asarray(vectors.vectors[:searchable])
    recalls, latencies = [], []
    for row in picks:
        query = matrix[row] + 0.5 * rng.normal(size=matrix.shape[1]).astype(np.float32) / np.sqrt(matrix.shape[1])
        query /= np.linalg.norm(query)
        started = time.perf_counter()
        found, _ = vectors.search(query, 100)
        latencies.append((time.perf_counter() - started) * 1000)
        exact = np.argpartition(-(matrix @ query), 99)[:100]
        recalls.append(len(set(found.tolist()) & set(exact.tolist())) / 100)
    return {
        "recall@100": round(float(np.mean(recalls)), 4),
        "ann_ms_p50": round(percentile(latencies, 50), 2),
        "lists": int(len(vectors.centroids)),
        "probes": int(vectors.probes),
    }


def run_size(count: int, queries: list[str]) -> dict:
    from sqlalchemy import create_engine, make_url, text

    from search.index_files import build_version
    from shoprank import migrate
    from shoprank.db import Database

    name = f"bench_scale_{count}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    index_dir = Path(tempfile.mkdtemp(prefix=f"shoprank-index-{count}-"))
    report: dict = {"products": count}
    try:
        migrate.upgrade(url)
        report["load"] = load(url, count)
        db = Database(url)
        build = build_version(db, index_dir)
        db.dispose()
        report["index_build_s"] = round(build.seconds, 1)
        report["index_mb"] = round(sum(p.stat().st_size for p in build.path.iterdir()) / 2**20)
        report["recall"] = recall(index_dir)
        one, server = serve(url, index_dir, 1, queries, "category-07")
        stop(server)
        one.pop("base_url")
        report["one_process"] = one
        two, server = serve(url, index_dir, 2, queries, "category-07")
        stop(server)
        two.pop("base_url")
        report["two_processes"] = two
        report["visibility"] = visibility(url, index_dir, count // 2)
        mem_two = two["memory_per_process"]
        # anonymous memory (heap) is what a process cannot share; its USS also counts index pages of the page cache
        # that only it happened to touch, which another process would share
        report["second_process_adds_mb"] = max(m["anonymous_mb"] for m in mem_two) if len(mem_two) > 1 else None
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        import shutil

        shutil.rmtree(index_dir, ignore_errors=True)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=120)
    args = parser.parse_args()
    rng = np.random.default_rng(3)
    words = [w for ws in LANGUAGES.values() for w in ws]
    queries = [" ".join(rng.choice(words, 2)) for _ in range(args.queries)]
    results = {"loadavg_start": Path("/proc/loadavg").read_text().split()[:3], "sizes": []}
    for count in args.sizes:
        results["sizes"].append(run_size(count, queries))
        print(json.dumps(results["sizes"][-1]), file=sys.stderr, flush=True)
    results["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
    print(json.dumps(results, indent=2))
    print(
        "; ".join(
            f"{r['products']:,}: start {r['one_process']['start_s']} s, first stage p50/p95 "
            f"{r['one_process']['first_stage_ms']['p50']}/{r['one_process']['first_stage_ms']['p95']} ms, "
            f"2nd process +{r['second_process_adds_mb']} MB, rename/price visible "
            f"{r['visibility']['rename_visible_s']}/{r['visibility']['price_visible_s']} s, "
            f"recall@100 {r['recall']['recall@100']}"
            for r in results["sizes"]
        )
    )


if __name__ == "__main__":
    main()
