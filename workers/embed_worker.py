"""Embed workers: Celery processes that turn chunks of product texts into first-stage vectors.

They consume only ``embed.cpu`` (never rerank jobs), hold only the e5 embedder (no
cross-encoder, no database access: the coordinator, ``shoprank catalog embed``, reads
texts and writes vectors), and answer each chunk with float32 vectors in base64. A
chunk is idempotent — the same texts give the same vectors — so a chunk redelivered
after its worker died is simply computed again.

``--concurrency N`` forks N processes, each loading its own engine after the fork with
cores/N OpenMP threads; every process advertises itself in the embed registry
(``<prefix>embed:shoprank:workers``), which the coordinator reads to decide whether
to send work here at all.
"""

from __future__ import annotations

import base64
import logging
import os
import socket
from typing import Any

import numpy as np
from celery import Celery, signals
from kombu import Queue

from reranking.threads import available_cores
from shoprank.config import ConfigError, Settings
from workers.celery_app import Role, create_celery_app
from workers.registry import Heartbeat, WorkerRegistry
from workers.worker_main import EXIT_BAD_OPTIONS

log = logging.getLogger(__name__)

#: Catalog embedding chunks; rerank workers never consume this queue.
EMBED_TASK_NAME = "shoprank.embed_chunk"
QUEUE_EMBED = "embed.cpu"
MAX_TEXTS_PER_CHUNK = 1024
MAX_TEXT_CHARS = 20_000
_state: dict[str, Any] = {}


class EmbedRejected(ValueError):
    """The chunk is malformed; retrying it cannot help."""


def embed_registry(settings: Settings) -> WorkerRegistry:
    """Embed workers' own registry: rerank routing never sees them."""
    return WorkerRegistry.from_url(settings.redis_url or "", f"{settings.queue_prefix}embed:")


def create_embed_app(settings: Settings, role: Role) -> Celery:
    """The shared Celery configuration plus the embed queue (declared only where embedding happens)."""
    app = create_celery_app(settings, role)
    app.conf.task_queues = [*app.conf.task_queues, Queue(QUEUE_EMBED)]
    app.conf.task_routes = {**app.conf.task_routes, EMBED_TASK_NAME: {"queue": QUEUE_EMBED}}
    return app


def validate_texts(texts: Any) -> list[str]:
    if not isinstance(texts, list) or not texts:
        raise EmbedRejected("texts must be a non-empty list of strings")
    if len(texts) > MAX_TEXTS_PER_CHUNK:
        raise EmbedRejected(f"{len(texts)} texts in one chunk; the limit is {MAX_TEXTS_PER_CHUNK}")
    for index, text in enumerate(texts):
        if not isinstance(text, str) or len(text) > MAX_TEXT_CHARS:
            raise EmbedRejected(f"texts[{index}] must be a string of at most {MAX_TEXT_CHARS} characters")
    return texts


def encode_vectors(vectors: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(vectors, dtype="<f4").tobytes()).decode("ascii")


def decode_vectors(data: str, rows: int, dim: int) -> np.ndarray:
    vectors = np.frombuffer(base64.b64decode(data), dtype="<f4")
    if vectors.size != rows * dim:
        raise ValueError(f"worker sent {vectors.size} values for {rows} texts of dimension {dim}")
    return vectors.reshape(rows, dim).astype(np.float32)


def _engine() -> Any:
    """This process's e5 engine, loaded once (after any fork) and warmed up."""
    if "engine" not in _state:
        from reranking.scorers.bi_encoder import shared_e5

        engine = shared_e5()
        engine.passage(["warm up"])
        _state["engine"] = engine
    return _state["engine"]


def register_embed_task(app: Celery, settings: Settings) -> None:
    soft = max(10.0, settings.broker_visibility_timeout_seconds * 0.8)

    # celery takes float time limits; celery-types says int, so no overload matches (and the task is untyped)
    @app.task(  # type: ignore[call-overload,untyped-decorator]  # float time limits, see above
        name=EMBED_TASK_NAME, soft_time_limit=soft, time_limit=soft + 5, throws=(EmbedRejected,)
    )
    def embed_chunk(texts: Any) -> dict[str, Any]:
        from catalog.vectors import EMBEDDING_DIM, EMBEDDING_MODEL_ID

        texts = validate_texts(texts)
        vectors = np.asarray(_engine().passage(texts), dtype=np.float32).reshape(len(texts), EMBEDDING_DIM)
        _state["chunks"] = _state.get("chunks", 0) + 1
        return {
            "model_id": EMBEDDING_MODEL_ID,
            "dim": EMBEDDING_DIM,
            "vectors": encode_vectors(vectors),
            "pid": os.getpid(),
        }


def _start_process(settings: Settings, node: str) -> None:
    """Load the engine, then advertise this process (readiness means: model loaded)."""
    from catalog.vectors import EMBEDDING_MODEL_ID

    _engine()
    entry = f"{node}#{os.getpid()}"

    def describe() -> dict[str, Any]:
        served = _state.get("chunks", 0)
        return {
            "node": node,
            "pid": os.getpid(),
            "role": "embed",
            "model_id": EMBEDDING_MODEL_ID,
            "chunks_served": served,
        }

    heartbeat = Heartbeat(embed_registry(settings), entry, describe)
    heartbeat.start()
    _state["heartbeat"] = heartbeat
    log.info("embed worker ready: node=%s pid=%d omp_threads=%s", node, os.getpid(), os.environ.get("OMP_NUM_THREADS"))


def _stop_process(**_: Any) -> None:
    heartbeat = _state.pop("heartbeat", None)
    if heartbeat is not None:
        heartbeat.stop()


def run_embed_worker(settings: Settings, concurrency: int = 1, hostname: str | None = None) -> int:
    """Run an embed worker until stopped; the return value is the exit status."""
    try:
        app = create_embed_app(settings, role="worker")
    except ConfigError as exc:
        log.critical("FATAL: embed worker not started: %s", exc)
        return EXIT_BAD_OPTIONS
    register_embed_task(app, settings)
    node = hostname or f"embed@{socket.gethostname()}"
    # Each process gets its share of the cores; set before any engine (and OpenMP) exists, so children inherit it.
    os.environ["OMP_NUM_THREADS"] = str(max(1, available_cores() // concurrency))
    if concurrency > 1:
        signals.worker_process_init.connect(lambda **_: _start_process(settings, node), weak=False)
        signals.worker_process_shutdown.connect(_stop_process, weak=False)
    else:
        _engine()  # one process: load before consuming, advertise once Celery consumes
        signals.worker_ready.connect(lambda **_: _start_process(settings, node), weak=False)
        signals.worker_shutdown.connect(_stop_process, weak=False)
    worker = app.Worker(
        hostname=node,
        pool_cls="prefork" if concurrency > 1 else "solo",
        concurrency=concurrency,
        queues=[QUEUE_EMBED],
        loglevel="WARNING",
        quiet=True,
        without_gossip=True,
        without_mingle=True,
        without_heartbeat=True,
        optimization="fair",
        prefetch_multiplier=1,
        redirect_stdouts=False,
    )
    worker.start()
    return int(worker.exitcode or 0)
