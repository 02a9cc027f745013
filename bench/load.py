"""Load test of the whole local stack: gunicorn + one Celery CPU worker + Redis + PostgreSQL, driven over HTTP.

The script starts everything itself and always tears it down:

* PostgreSQL: a private database on the server at ``SHOPRANK_BENCH_POSTGRES_URL`` (default
  ``postgresql+psycopg://postgres@127.0.0.1:5432/test``), migrated with ``shoprank db upgrade``, the demo catalog
  imported with ``shoprank catalog import``; dropped at the end;
* Redis: ``SHOPRANK_BENCH_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``) under a unique queue/cache key prefix;
  every key under it is deleted at the end;
* one rerank worker, ``shoprank worker --device cpu`` (INT8, cross-request batching), on the small XLM-R
  architecture (6 layers, 384 wide, real XLM-R vocabulary, random weights: the compute of a small real model);
* gunicorn serving ``webapp:create_app()`` (gthread workers), rate limits off (every shopper is 127.0.0.1).

Then ``--shoppers`` threads (one ``requests.Session`` each) search the multilingual demo queries through
``/api/search`` and send impression/click/add_to_cart/purchase events to ``/api/events`` as the shop's JS does,
for ``--duration`` seconds: phase ``cold`` starts with an empty score cache; phase ``warm`` repeats exactly the
searches of the cold phase (same queries, same order per shopper), so the pair scores are cached. Phase
``head_warmed`` empties the pair-score cache, runs ``shoprank warm-head`` (the most frequent queries of the
impression log so far, scored in the worker's idle time), waits for the worker to finish warming, then sends
shoppers with fresh scripts (another seed): the cache hit rate it reports is what the warm head buys.

Reported per phase: requests/s, p50/p95/p99 latency (search and events apart), errors (no HTTP answer), 5xx,
fallback rate (searches answered with ``reranked: false``), rerank status and depth (share reranked at depth >= 10),
score-cache hit rate (from the ops window), the worker's deadline counters (jobs expired/partial/stopped, model
seconds spent on work that finished after its deadline), events sent vs events stored in PostgreSQL (counted
in the database at the end; lost must be 0), and the machine's load average before/after.

    python bench/load.py                              # 2 phases x 120 s, 20 shoppers; JSON on stdout
    python bench/load.py --duration 15 --shoppers 4   # a quick smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# The repository root goes first: this directory's ``workers.py`` would otherwise shadow the ``workers`` package.
sys.path.insert(0, str(REPO))

from benchstats import percentile  # noqa: E402  (bench/ is the script directory)

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import requests  # noqa: E402
from sqlalchemy import create_engine, make_url, text  # noqa: E402

from reranking.testing import BGE_M3_ARCHITECTURE, SMALL_ARCHITECTURE, build_random_cross_encoder  # noqa: E402
from reranking.threads import available_cores, cpu_info  # noqa: E402
from workers.testing import WorkerProcess, delete_prefixed_keys, isolated_environment  # noqa: E402

DEMO_CATALOG = REPO / "data" / "catalog" / "demo_products.jsonl"
DEMO_QUERIES = REPO / "data" / "catalog" / "demo_queries.jsonl"
#: Click probability by rank position (first results are examined most), cart and purchase rates per click.
CLICK_BY_POSITION = [0.35, 0.22, 0.15, 0.10, 0.08, 0.06, 0.05, 0.04, 0.03, 0.03]
CART_RATE = 0.3
PURCHASE_RATE = 0.1


# --- statistics --------------------------------------------------------------------------------------------------


def latency_summary(values_ms: list[float]) -> dict[str, float | int]:
    if not values_ms:
        return {"n": 0}
    return {
        "n": len(values_ms),
        "p50_ms": round(percentile(values_ms, 50), 1),
        "p95_ms": round(percentile(values_ms, 95), 1),
        "p99_ms": round(percentile(values_ms, 99), 1),
        "mean_ms": round(statistics.fmean(values_ms), 1),
        "max_ms": round(max(values_ms), 1),
    }


def goals(cold: dict[str, Any], phases: list[dict[str, Any]], deadline_ms: int) -> dict[str, Any]:
    """The issue's targets, checked: cold reranked share, p95 vs deadline, 5xx, lost events, late worker time."""
    return {
        "cold_reranked_depth_10_plus >= 0.9": (cold["reranked_depth_10_plus"] or 0) >= 0.9,
        f"search_p95 <= {deadline_ms + 200} ms": all(
            p["search_latency"].get("p95_ms", 0) <= deadline_ms + 200 for p in phases
        ),
        "no_5xx": all(p["5xx"] == 0 for p in phases),
        "no_lost_events": all(p["events_lost"] == 0 for p in phases),
        "late_worker_seconds": round(sum(p["worker"].get("late_seconds", 0) for p in phases), 3),
    }


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# --- the shoppers ------------------------------------------------------------------------------------------------


@dataclass
class PhaseRecord:
    """What the shoppers of one phase saw; appended to from every shopper thread under ``lock``."""

    search_ms: list[float] = field(default_factory=list)
    events_ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    rerank_statuses: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)  # no HTTP answer: connection refused/reset, timeout
    searches_ok: int = 0
    fallbacks: int = 0
    events_sent: int = 0  # events in batches the server acknowledged with 200
    events_refused: int = 0  # events in batches answered with an error status or not answered
    searched: dict[int, int] = field(default_factory=dict)  # searches sent, per shopper
    server_ms: dict[str, list[float]] = field(default_factory=dict)  # the server's own timings_ms, by stage
    depths: list[int] = field(default_factory=list)  # rerank_depth of every answered search
    lock: threading.Lock = field(default_factory=threading.Lock)


def shopper_script(queries: list[dict[str, Any]], shopper: int, seed: int) -> list[tuple[str, str]]:
    """A shopper's searches in order: (query, language), a language per shopper as in the simulator."""
    rng = random.Random(f"{seed}:{shopper}")
    by_language: dict[str, list[str]] = {}
    for q in queries:
        by_language.setdefault(q["language"], []).append(q["query"])
    language = rng.choice(sorted(by_language))
    pool = by_language[language] + [q["query"] for q in rng.sample(queries, min(5, len(queries)))]
    return [(rng.choice(pool), language) for _ in range(10_000)]


def events_for(page: dict[str, Any], unit: str, language: str, rng: random.Random) -> tuple[list, list]:
    """The impression beacon sent when results render, then the click/add_to_cart/purchase beacons."""
    now = int(time.time() * 1000)
    impression = {
        "id": page["impression_id"],
        "type": "impression",
        "unit": unit,
        "ts": now,
        "query": page["query"],
        "language": language,
        "reranked": bool(page.get("reranked")),
        "request_id": page.get("request_id"),
        "items": [{"sku": hit["sku"], "position": hit["rank"]} for hit in page["results"]],
    }
    follow_up: list[dict[str, Any]] = []
    for hit in page["results"][: len(CLICK_BY_POSITION)]:
        if rng.random() >= CLICK_BY_POSITION[hit["rank"] - 1]:
            continue
        base = {"unit": unit, "sku": hit["sku"], "position": hit["rank"], "impression_id": page["impression_id"]}
        follow_up.append({"id": str(uuid.uuid4()), "type": "click", "ts": now + 1, **base})
        if rng.random() < CART_RATE:
            follow_up.append({"id": str(uuid.uuid4()), "type": "add_to_cart", "ts": now + 2, **base})
            if rng.random() < PURCHASE_RATE / CART_RATE:
                follow_up.append(
                    {
                        "id": str(uuid.uuid4()),
                        "type": "purchase",
                        "ts": now + 3,
                        "unit": unit,
                        "sku": hit["sku"],
                        "quantity": 1,
                        "value": hit["price"],
                        "currency": hit["currency"],
                        "impression_id": page["impression_id"],
                    }
                )
        break  # one product page per search, as a shopper who found something
    return [{k: v for k, v in impression.items() if v is not None}], follow_up


def run_shopper(
    base_url: str,
    script: list[tuple[str, str]],
    unit: str,
    stop_at: float,
    record: PhaseRecord,
    seed: str,
    index: int,
) -> None:
    """Search, then beacon the impression and any click/cart/purchase, until ``stop_at`` (no think time)."""
    rng = random.Random(seed)
    session = requests.Session()
    for done, (query, language) in enumerate(script):
        if time.monotonic() >= stop_at:
            with record.lock:
                record.searched[index] = done
            return
        started = time.perf_counter()
        try:
            response = session.get(
                f"{base_url}/api/search",
                params={"q": query, "lang": language, "user": unit, "limit": 20},
                timeout=60,
            )
        except requests.RequestException as exc:
            with record.lock:
                record.errors[type(exc).__name__] += 1
            continue
        elapsed = (time.perf_counter() - started) * 1000
        page = response.json() if response.status_code == 200 else None
        with record.lock:
            record.search_ms.append(elapsed)
            record.statuses[response.status_code] += 1
            if page is not None:
                record.searches_ok += 1
                record.rerank_statuses[page.get("rerank_status", "?")] += 1
                record.fallbacks += int(not page.get("reranked"))
                record.depths.append(int(page.get("rerank_depth") or 0) if page.get("reranked") else 0)
                for stage, ms in page.get("timings_ms", {}).items():  # first stage by part, rerank, total
                    record.server_ms.setdefault(stage, []).append(float(ms))
        if page is None:
            continue
        for batch in events_for(page, unit, language, rng):
            if not batch:
                continue
            started = time.perf_counter()
            try:
                sent = session.post(f"{base_url}/api/events", json={"events": batch}, timeout=60)
            except requests.RequestException as exc:
                with record.lock:
                    record.errors[type(exc).__name__] += 1
                    record.events_refused += len(batch)
                continue
            elapsed = (time.perf_counter() - started) * 1000
            with record.lock:
                record.events_ms.append(elapsed)
                record.statuses[sent.status_code] += 1
                if sent.status_code == 200:
                    record.events_sent += len(batch)
                else:
                    record.events_refused += len(batch)


def run_phase(
    name: str,
    base_url: str,
    scripts: list[list[tuple[str, str]]],
    duration: float,
    run_id: str,
    db_url: str,
    stack: StackProbe,
) -> tuple[dict[str, Any], dict[int, int]]:
    record = PhaseRecord()
    load_before = load_average()
    worker_before = stack.worker_counters()
    phase_started_at = time.time()
    stop_at = time.monotonic() + duration
    threads = [
        threading.Thread(
            target=run_shopper,
            args=(base_url, script, f"load-{run_id}-{name}-{n:03d}", stop_at, record, f"{run_id}:{name}:{n}", n),
            name=f"shopper-{n}",
        )
        for n, script in enumerate(scripts)
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started
    load_after = load_average()
    cache = stack.cache_hit_rate(phase_started_at)
    worker = stack.worker_delta(worker_before)
    stored = count_stored_events(db_url, f"load-{run_id}-{name}-%")
    requests_total = len(record.search_ms) + len(record.events_ms)
    searches = len(record.search_ms)
    server_errors = sum(n for status, n in record.statuses.items() if status >= 500)
    return {
        "phase": name,
        "duration_s": round(wall, 1),
        "shoppers": len(scripts),
        "requests": requests_total,
        "requests_per_s": round(requests_total / wall, 2),
        "searches_per_s": round(searches / wall, 2),
        "search_latency": latency_summary(record.search_ms),
        "events_latency": latency_summary(record.events_ms),
        # Inside the app (timings_ms of each search): the rest of the client's latency is queueing and HTTP.
        "search_server_timings": {stage: latency_summary(v) for stage, v in record.server_ms.items()},
        "http_statuses": {str(k): v for k, v in sorted(record.statuses.items())},
        "errors": sum(record.errors.values()) + sum(n for s, n in record.statuses.items() if s >= 400),
        "connection_errors": dict(record.errors),
        "5xx": server_errors,
        "fallback_rate": round(record.fallbacks / record.searches_ok, 4) if record.searches_ok else None,
        "rerank_status": dict(record.rerank_statuses),
        "reranked_depth_10_plus": round(sum(d >= 10 for d in record.depths) / len(record.depths), 4)
        if record.depths
        else None,
        "rerank_depth": depth_summary(record.depths),
        "reranked_share_by_depth": depth_shares(record.depths),
        "shed_share": round(record.rerank_statuses.get("shed", 0) / record.searches_ok, 4)
        if record.searches_ok
        else None,
        "score_cache_hit_rate": cache,
        "worker": worker,
        "worker_throughput": throughput(worker, wall, stack.worker_threads),
        "events_sent": record.events_sent,
        "events_refused": record.events_refused,
        "events_stored": stored,
        "events_lost": record.events_sent - stored,
        "load_average_before": load_before,
        "load_average_after": load_after,
    }, dict(record.searched)


#: Depth buckets of the per-phase reranked share: (label, lowest depth, highest depth); 0 = not reranked.
DEPTH_BUCKETS = (("none", 0, 0), ("1-9", 1, 9), ("10-29", 10, 29), ("30-99", 30, 99), ("100", 100, 10**9))


def depth_shares(depths: list[int]) -> dict[str, float]:
    """Share of answered searches per rerank-depth bucket (``none`` = answered in first-stage order)."""
    if not depths:
        return {}
    return {label: round(sum(low <= d <= high for d in depths) / len(depths), 4) for label, low, high in DEPTH_BUCKETS}


def throughput(worker: dict[str, float], wall: float, threads: int | None) -> dict[str, float | None]:
    """Pairs the worker scored per second of the phase, per second of its model time, and per core it runs on."""
    pairs = worker.get("pairs", 0) + worker.get("background_pairs", 0)
    model = worker.get("model_seconds", 0)
    per_model_second = pairs / model if model else None
    return {
        "pairs": pairs,
        "pairs_per_s_per_worker": round(pairs / wall, 2) if wall else None,
        "pairs_per_model_s": round(per_model_second, 2) if per_model_second else None,
        "pairs_per_model_s_per_core": round(per_model_second / threads, 2) if per_model_second and threads else None,
        "model_busy_share": round(model / wall, 3) if wall else None,
    }


def depth_summary(depths: list[int]) -> dict[str, float | int]:
    """Depths of reranked searches (0 = not reranked is counted apart)."""
    reranked = [d for d in depths if d > 0]
    if not reranked:
        return {"reranked": 0}
    return {
        "reranked": len(reranked),
        "not_reranked": len(depths) - len(reranked),
        "p5": percentile(reranked, 5),
        "p50": percentile(reranked, 50),
        "mean": round(statistics.fmean(reranked), 1),
        "full_100": sum(d >= 100 for d in reranked),
    }


# --- the stack -----------------------------------------------------------------------------------------------------


#: Worker counters (``batches`` in its heartbeat) that say how the deadline treated its jobs.
DEADLINE_COUNTERS = ("expired_jobs", "partial_jobs", "stopped_jobs", "skipped_pairs", "late_pairs", "late_seconds")


class StackProbe:
    """Reads what the stack itself recorded: the worker's heartbeat counters and the ops window of searches."""

    def __init__(self, env: dict[str, str]) -> None:
        from workers.registry import HEARTBEAT_INTERVAL_SECONDS
        from workers.testing import settings_for

        self.settings = settings_for(env)
        self.heartbeat_seconds = HEARTBEAT_INTERVAL_SECONDS
        import redis

        self.redis = redis.Redis.from_url(self.settings.redis_url or "")
        self.worker_threads: int | None = None

    def worker_advertisement(self) -> dict[str, Any]:
        """The first live worker's registry entry (device, dtype, backend, torch_threads, pairs/s)."""
        from workers.registry import WorkerRegistry

        entries = WorkerRegistry(self.redis, self.settings.queue_prefix).live()
        return dict(entries[0]) if entries else {}

    def worker_counters(self, fresh: bool = True) -> dict[str, float]:
        """Summed over live worker processes; ``fresh`` waits one heartbeat so the counters are current."""
        from workers.registry import WorkerRegistry

        if fresh:
            time.sleep(self.heartbeat_seconds + 0.5)
        entries = WorkerRegistry(self.redis, self.settings.queue_prefix).live()
        totals: dict[str, float] = {}
        for entry in entries:
            batches = entry.get("batches") or {}
            for name in (*DEADLINE_COUNTERS, "pairs", "background_pairs"):
                totals[name] = totals.get(name, 0) + float(batches.get(name) or 0)
            totals["model_seconds"] = totals.get("model_seconds", 0) + float(
                (entry.get("scorer_stats") or {}).get("seconds") or 0
            )
            totals["pairs_per_second"] = totals.get("pairs_per_second", 0) + float(entry.get("pairs_per_second") or 0)
        return totals

    def worker_delta(self, before: dict[str, float]) -> dict[str, float]:
        after = self.worker_counters()
        delta = {
            name: round(after.get(name, 0) - before.get(name, 0), 3) for name in after if name != "pairs_per_second"
        }
        delta["pairs_per_second_now"] = round(after.get("pairs_per_second", 0), 1)
        model = delta.get("model_seconds", 0)
        delta["late_share_of_model_time"] = round(delta.get("late_seconds", 0) / model, 4) if model else None
        return delta

    def cache_hit_rate(self, since: float) -> dict[str, Any]:
        """Pair scores served from the cache / all pair scores the phase's searches needed (ops window records)."""
        from shoprank.observability.window import SearchRecord

        raws = self.redis.lrange(f"{self.settings.queue_prefix}shoprank:ops:searches", 0, -1)
        records = [SearchRecord.from_json(raw) for raw in raws]
        mine = [r for r in records if r.at >= since]
        hits, misses = sum(r.cache_hits for r in mine), sum(r.cache_misses for r in mine)
        return {
            "searches": len(mine),
            "hits": hits,
            "misses": misses,
            "rate": round(hits / (hits + misses), 4) if hits + misses else None,
        }

    def clear_pair_cache(self) -> int:
        deleted = 0
        for key in self.redis.scan_iter(match=f"{self.settings.cache_key_prefix}shoprank:pair:*", count=1000):
            deleted += self.redis.delete(key)
        return deleted

    def background_pairs(self) -> float:
        return self.worker_counters(fresh=False).get("background_pairs", 0)

    def wait_for_warming(self, baseline: float, pairs: int, timeout: float) -> dict[str, float]:
        """Until the worker has scored ``pairs`` background pairs more than ``baseline`` (or ``timeout``)."""
        started = time.monotonic()
        done = 0.0
        while time.monotonic() - started < timeout:
            done = self.background_pairs() - baseline
            if done >= pairs:
                break
            time.sleep(1.0)
        return {"pairs_warmed": done, "seconds_waited": round(time.monotonic() - started, 1)}


def warm_head_cli(env: dict[str, str], top: int, budget_pairs: int) -> dict[str, int]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "shoprank",
            "warm-head",
            "--top",
            str(top),
            "--budget-pairs",
            str(budget_pairs),
            "--json",
        ],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode != 0:
        raise RuntimeError(f"shoprank warm-head failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def count_stored_events(db_url: str, unit_pattern: str) -> int:
    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            return int(
                connection.execute(
                    text("SELECT count(*) FROM events WHERE unit_id LIKE :pattern"), {"pattern": unit_pattern}
                ).scalar()
                or 0
            )
    finally:
        engine.dispose()


class PrivateDatabase:
    """A throw-away database on a shared PostgreSQL server."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.name = f"shoprank_load_{uuid.uuid4().hex[:10]}"
        self.url = make_url(admin_url).set(database=self.name).render_as_string(hide_password=False)

    def _admin(self, statement: str) -> None:
        engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
        try:
            with engine.connect() as connection:
                connection.execute(text(statement))
        finally:
            engine.dispose()

    def create(self) -> None:
        self._admin(f'CREATE DATABASE "{self.name}"')

    def drop(self) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def shoprank(env: dict[str, str], *args: str) -> None:
    """``python -m shopctl ARGS`` as an operator would run it; fails loudly with its output."""
    done = subprocess.run(
        [sys.executable, "-m", "shopctl", *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=900
    )
    if done.returncode != 0:
        raise RuntimeError(f"shoprank {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")


class Gunicorn:
    """``gunicorn -c python:webapp.gunicorn_conf "webapp:create_app()"`` (the deployment's config; sizing from the
    command line) in its own process group, log in a file."""

    def __init__(self, env: dict[str, str], port: int, workers: int, threads: int, log: Path) -> None:
        self.env, self.port, self.workers, self.threads, self.log = env, port, workers, threads, log
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "-c",
                    "python:webapp.gunicorn_conf",  # the production hooks: each worker warms before it accepts
                    "--bind",
                    f"127.0.0.1:{self.port}",
                    "--workers",
                    str(self.workers),
                    "--worker-class",
                    "gthread",
                    "--threads",
                    str(self.threads),
                    "--timeout",
                    "120",
                    "webapp:create_app()",
                ],
                env=self.env,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 300) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}:\n{self.log.read_text()[-4000:]}")
            try:
                if requests.get(f"{self.url}/health", timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"gunicorn not ready after {timeout:.0f} s:\n{self.log.read_text()[-4000:]}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        except ProcessLookupError:
            pass


ARCHITECTURES = {"small": SMALL_ARCHITECTURE, "large": BGE_M3_ARCHITECTURE}
ARCH_DESCRIPTIONS = {
    "small": "small XLM-R architecture (6 layers, 384 hidden, real XLM-R vocabulary, random weights)",
    "large": "bge-reranker-v2-m3's architecture (24 layers, 1024 hidden, 250k-token XLM-R vocabulary, random weights)",
}


def model_dir(arch: str, cache: Path | None) -> Path:
    """The random-weight model of ``arch``: in ``cache`` (built there once), else small in a temp dir as before,
    large in ``bench/.models/large-load`` (2.3 GB; built once, gitignored)."""
    if cache is None:
        cache = (
            REPO / "bench" / ".models" / "large-load"
            if arch == "large"
            else Path(tempfile.mkdtemp(prefix="shoprank-load-small-"))
        )
    if not (cache / "config.json").exists():
        print(f"building the {arch} XLM-R cross-encoder in {cache} ...", file=sys.stderr)
        build_random_cross_encoder(cache, ARCHITECTURES[arch])
    return cache


def ensure_onnx_export(env: dict[str, str], model: Path) -> None:
    """The INT8 ONNX export the onnx backend loads (``MODEL/onnx``), made once with the operator's command."""
    from reranking.onnx_export import find_onnx_export

    if find_onnx_export(model, int8=True) is None:
        print(f"exporting {model} to ONNX INT8 ...", file=sys.stderr)
        shoprank(env, "model", "export-onnx", "--model", str(model), "--out", str(model / "onnx"))


def process_threads(pid: int) -> dict[str, Any]:
    """OS threads a process runs now and the thread variables it was started with (from /proc)."""
    info: dict[str, Any] = {"pid": pid}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Threads:"):
                info["os_threads"] = int(line.split()[1])
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        wanted = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
        start_env = dict(item.decode(errors="replace").split("=", 1) for item in environ if b"=" in item)
        info["start_environment"] = {k: start_env[k] for k in wanted if k in start_env}
    except OSError as exc:
        info["error"] = str(exc)
    return info


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def stack_threads(web: Gunicorn, worker: WorkerProcess, stack: StackProbe, web_log: Path) -> dict[str, Any]:
    """What each process of the stack runs: OS threads, thread variables, the worker's intra-op threads, and
    the compute threads each gunicorn worker logged after its fork."""
    ad = stack.worker_advertisement()
    worker_pid = worker.process.pid if worker.process else 0
    web_pids = children(web.process.pid) if web.process else []
    return {
        "worker": {
            **process_threads(worker_pid),
            "intra_op_threads": ad.get("torch_threads"),
            "backend": ad.get("backend"),
            "dtype": ad.get("dtype"),
            "log": [line for line in worker.log_text().splitlines() if "rerank worker threads" in line][-1:],
            "children": [process_threads(c) for c in children(worker_pid)],
        },
        "web": [process_threads(pid) for pid in web_pids],
        "web_log": [line for line in web_log.read_text(errors="replace").splitlines() if "compute threads" in line][
            -4:
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=120.0, help="seconds per phase (cold, then warm)")
    parser.add_argument("--shoppers", type=int, default=20, help="concurrent shopper threads")
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--web-threads", type=int, default=8, help="threads per gunicorn worker")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--model-cache", type=Path, help="directory to keep the generated model in")
    parser.add_argument("--arch", choices=tuple(ARCHITECTURES), default="small", help="random-weight model shape")
    parser.add_argument(
        "--backend", choices=("torch", "onnx"), default="torch", help="worker INT8 path (onnx: ONNX Runtime)"
    )
    parser.add_argument("--worker-threads", type=int, help="SHOPRANK_RERANKER_THREADS (default: cores / processes)")
    parser.add_argument("--web-compute-threads", type=int, help="SHOPRANK_WEB_COMPUTE_THREADS (default 1)")
    parser.add_argument("--wait-policy", choices=("passive", "active", "default"), help="SHOPRANK_OMP_WAIT_POLICY")
    parser.add_argument("--deadline-ms", type=int, default=3000, help="SHOPRANK_RERANK_DEADLINE_MS")
    parser.add_argument("--warm-top", type=int, default=50, help="head queries the head_warmed phase warms")
    parser.add_argument("--warm-budget", type=int, default=5000, help="pair budget of the warm-head run")
    parser.add_argument("--output", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    # SIGTERM (``timeout``, a CI cancel) unwinds like Ctrl-C, so the finally below stops the stack and drops the DB.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    redis_url = os.environ.get("SHOPRANK_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    admin_url = os.environ.get("SHOPRANK_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    queries = [json.loads(line) for line in DEMO_QUERIES.read_text(encoding="utf-8").splitlines() if line.strip()]
    run_id = uuid.uuid4().hex[:8]
    logs = Path(tempfile.mkdtemp(prefix="shoprank-load-logs-"))
    model = model_dir(args.arch, args.model_cache)
    tuning = {
        "SHOPRANK_RERANKER_BACKEND": args.backend,
        "SHOPRANK_RERANK_DEADLINE_MS": str(args.deadline_ms),
    }
    if args.worker_threads:
        tuning["SHOPRANK_RERANKER_THREADS"] = str(args.worker_threads)
    if args.web_compute_threads:
        tuning["SHOPRANK_WEB_COMPUTE_THREADS"] = str(args.web_compute_threads)
    if args.wait_policy:
        tuning["SHOPRANK_OMP_WAIT_POLICY"] = args.wait_policy
    database = PrivateDatabase(admin_url)
    prefix = f"load-{run_id}:"
    env = isolated_environment(
        redis_url,
        prefix,
        SHOPRANK_DATABASE_URL=database.url,
        SHOPRANK_RERANKER_MODEL=str(model),
        SHOPRANK_RERANKER_ALLOW_DOWNLOAD="false",
        SHOPRANK_PUBLIC_RATE_LIMIT_PER_MINUTE="0",
        SHOPRANK_API_RATE_LIMIT_PER_MINUTE="0",
        SHOPRANK_SECRET_KEY=uuid.uuid4().hex,
        SHOPRANK_OPS_WINDOW_SIZE="100000",  # every search of the run, for the per-phase cache hit rate
        **tuning,
    )
    for name in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(name, None)  # each process of the stack takes its own from the settings (reranking.threads)
    worker = WorkerProcess(
        # Every search in flight inside the worker (20 shoppers), where the model thread scores them side by side;
        # with fewer slots the rest would wait in the broker queue, first come first served.
        ["--device", "cpu", "--model", str(model), "--hostname", f"load-{run_id}@localhost", "--jobs-in-flight", "32"],
        env,
        logs / "worker.log",
    )
    web = Gunicorn(env, free_port(), args.web_workers, args.web_threads, logs / "gunicorn.log")
    load_at_start = load_average()
    try:
        database.create()
        setup_started = time.monotonic()
        shoprank(env, "db", "upgrade")
        shoprank(env, "catalog", "import", str(DEMO_CATALOG))
        if args.backend == "onnx":
            ensure_onnx_export(env, model)
        worker.start()
        web.start()
        worker.wait_ready(timeout=600)
        web.wait_ready()
        setup_s = time.monotonic() - setup_started
        stack = StackProbe(env)
        stack.worker_threads = stack.worker_advertisement().get("torch_threads")
        scripts = [shopper_script(queries, n, args.seed) for n in range(args.shoppers)]
        cold, searched = run_phase("cold", web.url, scripts, args.duration, run_id, database.url, stack)
        threads = stack_threads(web, worker, stack, logs / "gunicorn.log")  # pools exist once they have run
        # Warm: each shopper repeats its own cold-phase searches in order (cycling through them when it gets
        # further): every (query, product) pair it asks for was scored in the cold phase and is in the cache.
        warm_scripts = [(script[: max(1, searched.get(n, 1))] * 10_000)[:10_000] for n, script in enumerate(scripts)]
        warm, _ = run_phase("warm", web.url, warm_scripts, args.duration, run_id, database.url, stack)
        # Head warmed: an empty pair cache, then the warm-head job from the impression log so far, then new shoppers.
        phases = [cold, warm]
        try:
            cleared = stack.clear_pair_cache()
            baseline = stack.background_pairs()
            warm_started = time.monotonic()
            warming = warm_head_cli(env, args.warm_top, args.warm_budget)
            warming.update(stack.wait_for_warming(baseline, warming["pairs"], timeout=600), cache_keys_cleared=cleared)
            warming["seconds_total"] = round(time.monotonic() - warm_started, 1)
            head_scripts = [shopper_script(queries, n, args.seed + 1) for n in range(args.shoppers)]
            head, _ = run_phase("head_warmed", web.url, head_scripts, args.duration, run_id, database.url, stack)
            head["warm_head"] = warming
            phases.append(head)
        except Exception as exc:  # report the cold and warm phases even so
            print(f"head_warmed phase failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        report = {
            "benchmark": "load",
            "machine": {
                "cores": available_cores(),
                "cpu": cpu_info(),
                "load_average_at_start": load_at_start,
                "load_average_at_end": load_average(),
                "note": "os.getloadavg() 1/5/15 min; other work on the machine shares these cores",
            },
            "stack": {
                "web": f"gunicorn {args.web_workers} workers x {args.web_threads} threads (gthread), "
                "webapp:create_app()",
                "worker": f"shoprank worker --device cpu --jobs-in-flight 32 ({args.backend} INT8, cross-request "
                "batching), 1 process",
                "arch": args.arch,
                "backend": args.backend,
                "model": ARCH_DESCRIPTIONS[args.arch],
                "settings": tuning,
                "threads": threads,
                "redis": redis_url,
                "database": "PostgreSQL (private database, dropped afterwards)",
                "catalog": DEMO_CATALOG.name,
                "queries": f"{len(queries)} multilingual demo queries",
                "rerank_deadline_ms": args.deadline_ms,
                "setup_s": round(setup_s, 1),
            },
            "phases": phases,
            "goals": goals(cold, phases, args.deadline_ms),
        }
        output = json.dumps(report, indent=2, ensure_ascii=False)
        print(output)
        if args.output:
            args.output.parent.mkdir(parents=True, exist_ok=True)
            args.output.write_text(output + "\n")
        summary = " | ".join(
            f"{p['phase']}: {p['requests_per_s']} req/s, search p50/p95/p99 "
            f"{p['search_latency'].get('p50_ms')}/{p['search_latency'].get('p95_ms')}/"
            f"{p['search_latency'].get('p99_ms')} ms, events p50/p95/p99 {p['events_latency'].get('p50_ms')}/"
            f"{p['events_latency'].get('p95_ms')}/{p['events_latency'].get('p99_ms')} ms, "
            f"fallback {p['fallback_rate']}, depth>=10 {p['reranked_depth_10_plus']}, shed {p['shed_share']}, "
            f"pairs/model-s {p['worker_throughput']['pairs_per_model_s']}, "
            f"cache hits {p['score_cache_hit_rate']['rate']}, late worker s {p['worker'].get('late_seconds')}, "
            f"errors {p['errors']}, 5xx {p['5xx']}, events {p['events_sent']} sent / {p['events_stored']} stored"
            for p in phases
        )
        print(
            f"load ({args.arch}, {args.backend}, {args.shoppers} shoppers, {args.duration:.0f} s/phase, "
            f"load {load_at_start}): {summary}",
            file=sys.stderr,
        )
    finally:
        web.stop()
        worker.stop()
        delete_prefixed_keys(redis_url, prefix)
        try:
            database.drop()
        except Exception as exc:  # report, but never hide the run's own error
            print(f"could not drop {database.name}: {exc}", file=sys.stderr)


if __name__ == "__main__":
    main()
