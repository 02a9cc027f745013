"""What Celery + Redis cost a rerank request, and what cross-request batching buys.

One run, one machine, side by side (interleaved, so load from anything else on the
machine hits both sides alike):

1. **Overhead**: 100 pairs on the small XLM-R architecture (6 layers, 384 wide, real
   XLM-R vocabulary), CPU INT8 both ways: a direct in-process call
   (``execute_job``) vs the same job through ``CeleryDispatcher`` → Redis → worker →
   Redis. Every request has a fresh query, so neither side hits a cache.
2. **Cache-warm**: the same request again: every pair is in the Redis cache, the model
   is not touched.
3. **Cross-request batching**: rounds of 8 concurrent requests (fresh queries) to a
   worker that merges jobs vs an otherwise identical worker started with
   ``--no-batching``; throughput in pairs/s.

Needs Redis (``SHOPRANK_BENCH_REDIS_URL``, default ``redis://127.0.0.1:6379/0``); starts
its own workers under a unique key prefix and removes everything it wrote.

    python bench/workers.py                # JSON on stdout, one-line summary on stderr
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

# The repository root goes first: this file's own name would otherwise shadow the ``workers`` package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchstats import percentile  # noqa: E402  (bench/ is the script directory)

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # as in the workers, so both sides tokenize alike

from reranking import NullScoreCache, Reranker, format_passage, load_scorer  # noqa: E402
from reranking.dispatch import RerankJob, execute_job  # noqa: E402
from reranking.testing import small_model_dir  # noqa: E402
from workers.client import CeleryDispatcher  # noqa: E402
from workers.testing import WorkerProcess, delete_prefixed_keys, isolated_environment, settings_for  # noqa: E402
from workers.worker_main import available_cores  # noqa: E402

GOALS = {"celery_overhead_p50_ms": 15.0, "cache_warm_p50_ms": 10.0, "batching_throughput_ratio": 1.3}

_VOCABULARY = (
    "wireless noise cancelling headphones bluetooth battery running shoes cushioning waterproof stainless steel "
    "bottle insulated espresso machine grinder backpack hiking laptop sleeve charger usb-c fast charging "
    "auriculares inalámbricos zapatillas mochila impermeable Kopfhörer Laufschuhe wasserdicht "
    "casque sans fil aspirateur robot 耳机 降噪 水筒 保温 наушники кофемашина سماعات لاسلكية"
)
_WORDS = _VOCABULARY.split()
_QUERIES = [
    "wireless noise cancelling headphones",
    "zapatillas para correr mujer",
    "无线降噪耳机",
    "Laufschuhe Herren wasserdicht",
    "кофемашина с капучинатором",
    "waterproof hiking backpack 30l",
]


def make_passages(n: int, seed: int = 0) -> list[str]:
    """Product passages of mixed length (about 35–170 tokens, ~100 on average), formatted as production does."""
    rng = random.Random(seed)
    passages = []
    for i in range(n):
        description = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(10, 60)))
        title = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 9))).title()
        passages.append(
            format_passage({"title": title, "description": description, "price": 10 + i, "currency": "EUR"})
        )
    return passages


def summary(values_ms: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(values_ms), 2),
        "p95_ms": round(percentile(values_ms, 95), 2),
        "mean_ms": round(statistics.fmean(values_ms), 2),
        "n": len(values_ms),
    }


def model_dir(cache: Path | None) -> Path:
    return small_model_dir(cache, prefix="shoprank-bench-small-")


def timed(fn: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    value = fn()
    return (time.perf_counter() - started) * 1000, value


def run_round(dispatcher: CeleryDispatcher, jobs: list[RerankJob]) -> tuple[float, list[Any]]:
    """All jobs at once from separate threads (as concurrent searches would); wall seconds and results."""
    results: list[Any] = [None] * len(jobs)

    def call(i: int) -> None:
        results[i] = dispatcher.dispatch(jobs[i], deadline_seconds=300)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(jobs))]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--requests", type=int, default=40, help="requests per side for overhead and cache-warm")
    parser.add_argument("--concurrent", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=6, help="rounds of concurrent requests per worker")
    parser.add_argument("--model-cache", type=Path, help="directory to keep the generated small model in")
    parser.add_argument("--output", type=Path, help="also write the JSON here")
    args = parser.parse_args()

    redis_url = os.environ.get("SHOPRANK_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    model = model_dir(args.model_cache)
    passages = make_passages(args.pairs)
    cores = available_cores()
    logs = Path(tempfile.mkdtemp(prefix="shoprank-bench-logs-"))

    # Eight 100-pair jobs queue behind each other inside a slow shared CPU: give them minutes, not 30 s.
    limits = {
        "SHOPRANK_RERANK_SOFT_TIME_LIMIT_SECONDS": "900",
        "SHOPRANK_RERANK_HARD_TIME_LIMIT_SECONDS": "950",
        "SHOPRANK_BROKER_VISIBILITY_TIMEOUT_SECONDS": "1000",
    }
    batched_env = isolated_environment(redis_url, f"bench-{uuid.uuid4().hex[:8]}:", **limits)
    unbatched_env = isolated_environment(redis_url, f"bench-{uuid.uuid4().hex[:8]}:", **limits)
    common = ["--device", "cpu", "--model", str(model), "--jobs-in-flight", str(args.concurrent)]
    batched = WorkerProcess([*common, "--hostname", "bench-batched@localhost"], batched_env, logs / "batched.log")
    unbatched = WorkerProcess(
        [*common, "--no-batching", "--hostname", "bench-unbatched@localhost"], unbatched_env, logs / "unbatched.log"
    )
    try:
        batched.start()
        unbatched.start()
        batched.wait_ready(timeout=600)
        unbatched.wait_ready(timeout=600)
        via_batched = CeleryDispatcher.from_settings(settings_for(batched_env))
        via_unbatched = CeleryDispatcher.from_settings(settings_for(unbatched_env))

        # Same model, precision and thread count as the worker.
        scorer = load_scorer(model=str(model), device="cpu", int8=True, num_threads=cores, allow_fallback=False)
        direct = Reranker(scorer, NullScoreCache())
        scorer.warm_up()
        for i in range(3):  # warm both paths
            execute_job(direct, RerankJob(f"warm {i}", passages))
            via_batched.dispatch(RerankJob(f"warm {i}", passages), deadline_seconds=300)

        direct_ms, celery_ms, paired, added_ms, worker_job_ms = [], [], [], [], []
        for i in range(args.requests):
            query = f"{_QUERIES[i % len(_QUERIES)]} {i}"
            d_ms, _ = timed(lambda q=query: execute_job(direct, RerankJob(q + " direct", passages)))
            c_ms, result = timed(lambda q=query: via_batched.dispatch(RerankJob(q + " celery", passages), 300))
            assert result.cache_misses == len(passages), "overhead requests must miss the cache"
            direct_ms.append(d_ms)
            celery_ms.append(c_ms)
            paired.append(c_ms - d_ms)
            added_ms.append(c_ms - result.compute_seconds * 1000)  # everything but the worker's own job time
            worker_job_ms.append(result.compute_seconds * 1000)

        warm_job = RerankJob(f"{_QUERIES[0]} 0 celery", passages)  # scored above: every pair is cached
        warm_ms = []
        for _ in range(args.requests):
            ms, result = timed(lambda: via_batched.dispatch(warm_job, 300))
            assert result.cache_hits == len(passages)
            warm_ms.append(ms)

        throughput: dict[str, list[float]] = {"batched": [], "unbatched": []}
        latency: dict[str, list[float]] = {"batched": [], "unbatched": []}
        round_jobs: list[int] = []
        for r in range(args.rounds):
            order = [("batched", via_batched), ("unbatched", via_unbatched)]
            if r % 2:
                order.reverse()
            for name, dispatcher in order:
                jobs = [
                    RerankJob(f"round {r} {name} {k} {_QUERIES[k % len(_QUERIES)]}", passages)
                    for k in range(args.concurrent)
                ]
                seconds, results = run_round(dispatcher, jobs)
                assert all(res.cache_misses == len(passages) for res in results)
                throughput[name].append(args.concurrent * len(passages) / seconds)
                latency[name].extend(res.extra["client_seconds"] * 1000 for res in results)
                if name == "batched":
                    round_jobs.extend(res.extra["batch_jobs"] for res in results)

        overhead_p50 = statistics.median(added_ms)
        overhead_p95 = percentile(added_ms, 95)
        ratio = statistics.fmean(throughput["batched"]) / statistics.fmean(throughput["unbatched"])
        report = {
            "benchmark": "workers",
            "machine": {"cores": cores, "torch_threads": cores},
            "model": {
                "architecture": "small (6 layers, 384 hidden, XLM-R vocabulary)",
                "device": "cpu",
                "dtype": "int8",
            },
            "pairs_per_request": len(passages),
            "overhead": {
                "direct_in_process": summary(direct_ms),
                "through_celery_redis": summary(celery_ms),
                "worker_time_inside_the_job": summary(worker_job_ms),
                # End-to-end difference: honest but carries the model's run-to-run noise on a shared machine.
                "end_to_end_difference_p50_ms": round(statistics.median(celery_ms) - statistics.median(direct_ms), 2),
                "end_to_end_difference_p95_ms": round(percentile(celery_ms, 95) - percentile(direct_ms, 95), 2),
                "paired_difference": summary(paired),
                # Per request: caller's wall time minus the worker's time inside the job (validation, cache,
                # scoring). What Celery + Redis add: enqueue, delivery, result store and notification.
                "celery_redis_added": summary(added_ms),
                "overhead_p50_ms": round(overhead_p50, 2),
                "overhead_p95_ms": round(overhead_p95, 2),
            },
            "cache_warm_repeat": summary(warm_ms),
            "cross_request_batching": {
                "concurrent_requests": args.concurrent,
                "rounds": args.rounds,
                "batched_pairs_per_s": round(statistics.fmean(throughput["batched"]), 1),
                "unbatched_pairs_per_s": round(statistics.fmean(throughput["unbatched"]), 1),
                "throughput_ratio": round(ratio, 3),
                "batched_request_latency": summary(latency["batched"]),
                "unbatched_request_latency": summary(latency["unbatched"]),
                "jobs_per_round_seen_by_batched_requests": round(statistics.fmean(round_jobs), 2),
            },
            "goals": {
                "celery_overhead_p50_ms": {
                    "goal": f"< {GOALS['celery_overhead_p50_ms']}",
                    "met": overhead_p50 < GOALS["celery_overhead_p50_ms"],
                },
                "cache_warm_p50_ms": {
                    "goal": f"< {GOALS['cache_warm_p50_ms']}",
                    "met": statistics.median(warm_ms) < GOALS["cache_warm_p50_ms"],
                },
                "batching_throughput_ratio": {
                    "goal": f">= {GOALS['batching_throughput_ratio']}",
                    "met": ratio >= GOALS["batching_throughput_ratio"],
                },
            },
        }
        text = json.dumps(report, indent=2)
        print(text)
        if args.output:
            args.output.parent.mkdir(parents=True, exist_ok=True)
            args.output.write_text(text + "\n")
        print(
            f"workers: celery overhead p50 {overhead_p50:.1f} ms / p95 {overhead_p95:.1f} ms "
            f"(direct p50 {statistics.median(direct_ms):.1f} ms), cache-warm p50 {statistics.median(warm_ms):.1f} ms, "
            f"cross-request batching {ratio:.2f}x throughput at {args.concurrent} concurrent",
            file=sys.stderr,
        )
        via_batched.close()
        via_unbatched.close()
    finally:
        batched.stop()
        unbatched.stop()
        for env in (batched_env, unbatched_env):
            delete_prefixed_keys(redis_url, env["SHOPRANK_QUEUE_PREFIX"])


if __name__ == "__main__":
    main()
