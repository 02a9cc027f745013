"""gunicorn settings for the web tier: ``gunicorn -c python:webapp.gunicorn_conf "webapp:create_app()"``.

Sizing comes from the environment (compose sets it): ``GUNICORN_WORKERS`` processes (default 2) of
``GUNICORN_THREADS`` threads (default 8; searches mostly wait on the database, Redis and rerank workers),
bound to ``GUNICORN_BIND`` (default 0.0.0.0:8000). Each worker process builds its own app (catalog index,
dispatcher) after the fork: ``preload_app`` stays off so no Redis or database socket is shared across forks.

Prometheus in several processes: set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory (compose uses a
tmpfs). ``on_starting`` empties it (stale files from a previous run would be summed into the new one) and
``child_exit`` marks a dead worker's files so its live gauges disappear; counters it wrote stay counted.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from reranking.threads import apply_thread_environment, available_cores, limit_loaded_pools, plan_threads
from shoprank.config import Settings
from shoprank.observability.logs import configure_logging, settings_for_logging


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


def web_compute_threads(settings: Settings) -> dict[str, object]:
    """This web process's OpenMP/BLAS width and wait policy (``reranking.threads``; docs/cpu-serving.md).

    Called in each worker right after the fork, before the app loads the e5 engine (whose OpenMP
    runtime reads the variables once, when it loads); numpy's OpenBLAS, loaded by the master already,
    is capped in place.
    """
    plan = plan_threads(
        "web", available_cores(), web_threads=settings.web_compute_threads, wait_policy=settings.omp_wait_policy
    )
    environment = apply_thread_environment(plan)
    return {"threads": plan.threads, "environment": environment, "pools": limit_loaded_pools(plan.threads)}


bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = _int("GUNICORN_WORKERS", 2)
threads = _int("GUNICORN_THREADS", 8)
worker_class = "gthread"
timeout = _int("GUNICORN_TIMEOUT", 60)  # a request past this is stuck, not slow: searches have deadlines in ms
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = 5
max_requests = _int("GUNICORN_MAX_REQUESTS", 0)  # 0 = never recycle workers
max_requests_jitter = max_requests // 10
preload_app = False
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# gunicorn's own loggers propagate to the root handler that configure_logging installs (JSON or text, with
# request ids); access lines are INFO, so they appear with SHOPRANK_LOG_LEVEL=INFO.
logconfig_dict = {
    "root": {"level": "WARNING", "handlers": []},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": [], "propagate": True},
        "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": True},
    },
}
# Heartbeat files off the container's disk (gunicorn's advice for Docker); gunicorn creates them unlinked, mode 0600.
worker_tmp_dir = "/dev/shm" if Path("/dev/shm").is_dir() else None  # nosec B108 - see above


def on_starting(server: Any) -> None:
    """Master start-up: one log format for gunicorn too, and an empty multi-process metrics directory."""
    configure_logging(settings_for_logging())
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        path = Path(directory)
        if path.exists():
            for child in path.iterdir():
                if child.is_dir():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        path.mkdir(parents=True, exist_ok=True)


def post_fork(server: Any, worker: Any) -> None:
    configure_logging(settings_for_logging())
    threads = web_compute_threads(Settings.from_env())
    server.log.info("web worker %s compute threads: %s", worker.pid, threads)


def post_worker_init(worker: Any) -> None:
    """Warm the worker's app (catalog index, query encoder) before it accepts its first connection."""
    from webapp.context import app_services

    seconds = app_services(worker.wsgi).warm()
    worker.log.info("worker %s warmed in %.1f s", worker.pid, seconds)


def child_exit(server: Any, worker: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
