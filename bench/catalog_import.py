"""Catalog import and embedding throughput: ``python bench/catalog_import.py [--rows 100000]``.

Generates synthetic multilingual feeds (our JSONL, Merchant Center TSV, Shopify CSV)
of ``--rows`` rows, imports each without embedding into a fresh database in a child
process (rows/s, peak RSS; RSS also at ``--rows / 10`` to show it does not grow with
the file), then embeds a sample of products in-process, on one embed worker process
and on two, side by side (products/s, median of ``--rounds``). Prints JSON, then a
one-line summary. The machine is shared: the load average is recorded with the numbers.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

LANGS = [("en", "USD"), ("de", "EUR"), ("fr", "EUR"), ("es", "EUR"), ("zh", "CNY"), ("ja", "JPY")]
WORDS = {
    "en": "wireless noise cancelling headphones trail running shoes ceramic mug espresso machine yoga mat",
    "de": "kabellose kopfhörer laufschuhe keramikbecher espressomaschine yogamatte wasserdicht leicht",
    "fr": "casque sans fil chaussures de course tasse en céramique machine à expresso tapis de yoga",
    "es": "auriculares inalámbricos zapatillas de running taza de cerámica cafetera esterilla de yoga",
    "zh": "无线 降噪 耳机 跑步鞋 陶瓷 杯子 咖啡机 瑜伽垫 防水 轻便",
    "ja": "ワイヤレス ノイズキャンセリング ヘッドホン ランニングシューズ マグカップ ヨガマット",
}
CATEGORIES = [
    "Electronics > Audio > Headphones",
    "Sports & Fitness > Running > Shoes",
    "Home & Garden > Kitchen > Coffee Makers",
    "Home & Garden > Kitchen > Mugs",
    "Sports & Fitness > Yoga",
    "Baby",
    "Toys & Games",
]


def _product(i: int, rng: random.Random) -> dict[str, Any]:
    language, currency = LANGS[i % len(LANGS)]
    words = WORDS[language].split()
    title = " ".join(rng.sample(words, 4)) + f" {i}"
    bullets = " ".join(rng.choices(words, k=6))
    description = f"<p>{' '.join(rng.choices(words, k=40))}</p><ul><li>{bullets}</li></ul>"
    price = f"{rng.randint(1, 2000)}.{rng.randint(0, 99):02d}"
    return {
        "sku": f"B-{i:07d}",
        "title": title,
        "description": description,
        "price": price,
        "currency": currency,
        "language": language,
        "category": CATEGORIES[i % len(CATEGORIES)],
        "brand": rng.choice(["Acme", "Zenith", "Nordlys", "Sakura", "Lumen"]),
        "stock": rng.randint(0, 50),
    }


def write_feeds(directory: Path, rows: int) -> dict[str, Path]:
    """The same products in three formats (Shopify: four variants per handle)."""
    rng = random.Random(7)
    products = (_product(i, rng) for i in range(rows))
    paths = {
        "jsonl": directory / f"feed-{rows}.jsonl",
        "merchant-tsv": directory / f"feed-{rows}.tsv",
        "shopify": directory / f"feed-{rows}.csv",
    }
    with (
        paths["jsonl"].open("w", encoding="utf-8") as jsonl,
        paths["merchant-tsv"].open("w", encoding="utf-8", newline="") as tsv_handle,
        paths["shopify"].open("w", encoding="utf-8", newline="") as shop_handle,
    ):
        tsv = csv.writer(tsv_handle, delimiter="\t")
        tsv.writerow(
            [
                "id",
                "title",
                "description",
                "price",
                "availability",
                "brand",
                "product_type",
                "gtin",
                "color",
                "custom_label_0",
            ]
        )
        shop = csv.writer(shop_handle)
        shop.writerow(
            [
                "Handle",
                "Title",
                "Body (HTML)",
                "Vendor",
                "Type",
                "Tags",
                "Option1 Name",
                "Option1 Value",
                "Variant SKU",
                "Variant Price",
                "Variant Inventory Qty",
                "Image Src",
            ]
        )
        for i, p in enumerate(products):
            jsonl.write(json.dumps({**p, "lang": p.pop("language"), "seller_rating": 4.5}, ensure_ascii=False) + "\n")
            p["language"] = LANGS[i % len(LANGS)][0]
            tsv.writerow(
                [
                    p["sku"],
                    p["title"],
                    p["description"],
                    f"{p['price']} {p['currency']}",
                    "in stock" if p["stock"] else "out of stock",
                    p["brand"],
                    p["category"],
                    f"{i:013d}",
                    "blue",
                    "bench",
                ]
            )
            handle = f"h-{i // 4}"
            first = i % 4 == 0
            shop.writerow(
                [
                    handle,
                    p["title"] if first else "",
                    p["description"] if first else "",
                    p["brand"] if first else "",
                    p["category"].split(" > ")[-1] if first else "",
                    "bench" if first else "",
                    "Size" if first else "",
                    ["S", "M", "L", "XL"][i % 4],
                    p["sku"],
                    p["price"],
                    p["stock"],
                    "",
                ]
            )
    return paths


def _import_child(fmt: str, path: str, url: str) -> dict[str, Any]:
    """Runs in a fresh process: import without embedding; the peak RSS is this process's alone."""
    from catalog.importer import ImportOptions, import_feed
    from shoprank import migrate
    from shoprank.db import Database

    migrate.upgrade(url)
    db = Database(url)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    options = ImportOptions(
        fmt=fmt, language="en" if fmt != "jsonl" else None, currency="USD" if fmt == "shopify" else None
    )
    started = time.perf_counter()
    report = import_feed(db, Path(path), options)
    seconds = time.perf_counter() - started
    db.dispose()
    return {
        "rows": report.rows,
        "inserted": report.inserted,
        "seconds": round(seconds, 2),
        "rows_per_s": round(report.rows / seconds, 1),
        "rss_before_mb": round(baseline, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def _database(kind: str, directory: Path, name: str) -> tuple[str, Any]:
    if kind == "sqlite":
        return f"sqlite:///{directory / (name + '.db')}", None
    from tests.shop_support import PostgresFactory

    factory = PostgresFactory(
        os.environ.get("SHOPRANK_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    )
    if not factory.available():
        raise SystemExit(f"PostgreSQL unavailable: {factory.error}")
    return factory.create(), factory


def run_import(fmt: str, path: Path, kind: str, directory: Path) -> dict[str, Any]:
    url, factory = _database(kind, directory, f"{fmt}-{path.stat().st_size}")
    try:
        out = subprocess.run(
            [sys.executable, __file__, "--child", fmt, str(path), url],
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
        )
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        if factory is not None:
            factory.drop(url)


def _sample_database(directory: Path, feed: Path, name: str) -> Any:
    from catalog.importer import ImportOptions, import_feed
    from shoprank import migrate
    from shoprank.db import Database

    url = f"sqlite:///{directory / (name + '.db')}"
    migrate.upgrade(url)
    db = Database(url)
    import_feed(db, feed, ImportOptions())
    return db


def embedding_rates(directory: Path, sample: int, rounds: int) -> dict[str, Any]:
    """products/s embedding ``sample`` products in-process, on 1 and on 2 embed worker processes, interleaved.

    The two worker sets run side by side under separate queue prefixes (so each gets only its own
    chunks); an idle worker costs no CPU.
    """
    from conftest import REDIS_URL  # tests/conftest.py: the machine's Redis

    from catalog.embedding import LocalEmbedding, embed_catalog
    from catalog.vectors import embedder
    from workers.embed_client import CeleryEmbedding
    from workers.testing import WorkerProcess, delete_prefixed_keys, isolated_environment, settings_for

    (directory / "sample").mkdir()
    feed = write_feeds(directory / "sample", sample)["jsonl"]
    local = LocalEmbedding(embedder().passages)
    local.embed(["warm up"])
    backends: dict[str, Any] = {"in_process": local}
    workers, envs = [], []
    try:
        for processes in (1, 2):
            env = isolated_environment(REDIS_URL)
            envs.append(env)
            args = ["--concurrency", str(processes), "--hostname", f"embed-bench-{processes}@localhost"]
            log = directory / f"embed-{processes}.log"
            workers.append(WorkerProcess(args, env, log, "embed-worker", "embed:").start())
        for processes, worker, env in zip((1, 2), workers, envs, strict=True):
            worker.wait_ready(processes=processes)
            backends[f"workers_{processes}"] = CeleryEmbedding.from_settings(settings_for(env), processes)
        rates: dict[str, list[float]] = {mode: [] for mode in backends}
        for round_ in range(rounds):
            for mode, backend in backends.items():
                db = _sample_database(directory, feed, f"embed-{mode}-{round_}")
                embedder()._passages.clear()  # no LRU hits: every round embeds for real
                rates[mode].append(embed_catalog(db, backend, chunk_size=16).per_second)
                db.dispose()
    finally:
        for worker in workers:
            worker.stop()
        for env in envs:
            delete_prefixed_keys(REDIS_URL, env["SHOPRANK_QUEUE_PREFIX"])
    return {
        mode: {"median_products_per_s": round(statistics.median(v), 2), "runs": [round(x, 2) for x in v]}
        for mode, v in rates.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--database", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--embed-sample", type=int, default=64, help="products embedded per mode and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--skip-embedding", action="store_true")
    parser.add_argument("--skip-import", action="store_true", help="only the embedding comparison")
    parser.add_argument("--child", nargs=3, metavar=("FORMAT", "PATH", "URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_import_child(*args.child)))
        return
    sys.path.insert(0, str(REPO / "tests"))
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    result: dict[str, Any] = {"rows": args.rows, "database": args.database, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="bench-catalog-") as tmp:
        directory = Path(tmp)
        small_rows = max(1000, args.rows // 10)
        small = write_feeds(directory, small_rows) if not args.skip_import else {}
        big = write_feeds(directory, args.rows) if not args.skip_import else {}
        result["file_mb"] = {fmt: round(p.stat().st_size / 1e6, 1) for fmt, p in big.items()}
        result["import"] = {}
        for fmt in big:
            small_run = run_import(fmt, small[fmt], args.database, directory)
            big_run = run_import(fmt, big[fmt], args.database, directory)
            result["import"][fmt] = {**big_run, f"peak_rss_mb_at_{small_rows}_rows": small_run["peak_rss_mb"]}
        if not args.skip_embedding:
            result["embedding"] = embedding_rates(directory, args.embed_sample, args.rounds)
    result["loadavg_before"] = load_before
    result["loadavg_after"] = Path("/proc/loadavg").read_text().split()[:3]
    print(json.dumps(result, indent=2))
    imports = ", ".join(
        f"{fmt} {r['rows_per_s']:.0f} rows/s (peak RSS {r['peak_rss_mb']:.0f} MB)"
        for fmt, r in result["import"].items()
    )
    summary = f"import of {args.rows} rows into {args.database}, no embedding: {imports or 'skipped'}"
    if "embedding" in result:
        e = result["embedding"]
        summary += "; embedding products/s: " + ", ".join(f"{m} {v['median_products_per_s']}" for m, v in e.items())
    print(f"{summary}; load {' '.join(load_before)} → {' '.join(result['loadavg_after'])}")


if __name__ == "__main__":
    main()
