"""The coordinator's side of Celery embedding: ``CeleryEmbedding`` is an ``EmbeddingBackend``.

It keeps a bounded window of chunks in flight (enough to keep every live embed
process busy) and yields each chunk's vectors as it lands, so the coordinator
commits vectors continuously and an interruption loses at most the window.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Iterator
from typing import Any

import numpy as np
from celery import Celery
from celery.result import AsyncResult

from catalog.embedding import DenseItem
from catalog.vectors import EMBEDDING_DIM, EMBEDDING_MODEL_ID
from shoprank.config import Settings
from workers.embed_worker import EMBED_TASK_NAME, QUEUE_EMBED, create_embed_app, decode_vectors, embed_registry

log = logging.getLogger(__name__)

#: Chunks in flight per live embed process: one computing, one waiting in the queue.
IN_FLIGHT_PER_PROCESS = 2
CHUNK_TIMEOUT_SECONDS = 600.0


def live_embed_processes(settings: Settings) -> int:
    """Embed worker processes with a fresh heartbeat (0 when Redis is not configured or not reachable)."""
    if not settings.redis_url:
        return 0
    try:
        return len(embed_registry(settings).live())
    except Exception as exc:  # Redis down: no workers, embed in-process
        log.warning("cannot read the embed worker registry: %s", exc)
        return 0


class CeleryEmbedding:
    def __init__(self, app: Celery, processes: int, timeout: float = CHUNK_TIMEOUT_SECONDS) -> None:
        self.app = app
        self.window = max(1, processes) * IN_FLIGHT_PER_PROCESS
        self.timeout = timeout
        self.served: Counter[int] = Counter()  # chunks per worker process id

    @classmethod
    def from_settings(cls, settings: Settings, processes: int) -> CeleryEmbedding:
        return cls(create_embed_app(settings, role="client"), processes)

    def _send(self, chunk: list[DenseItem]) -> AsyncResult[Any]:
        return self.app.send_task(EMBED_TASK_NAME, kwargs={"texts": [item.text for item in chunk]}, queue=QUEUE_EMBED)

    def _receive(self, chunk: list[DenseItem], result: AsyncResult[Any]) -> np.ndarray:
        try:
            answer: Any = result.get(timeout=self.timeout, propagate=True)
        finally:
            result.forget()
        if answer.get("model_id") != EMBEDDING_MODEL_ID or answer.get("dim") != EMBEDDING_DIM:
            raise RuntimeError(
                f"embed worker runs {answer.get('model_id')} (dim {answer.get('dim')}); "
                f"this catalog needs {EMBEDDING_MODEL_ID} (dim {EMBEDDING_DIM})"
            )
        self.served[int(answer.get("pid") or 0)] += 1
        return decode_vectors(answer["vectors"], len(chunk), EMBEDDING_DIM)

    def embed_chunks(self, chunks: Iterator[list[DenseItem]]) -> Iterator[tuple[list[DenseItem], np.ndarray]]:
        pending: deque[tuple[list[DenseItem], AsyncResult[Any]]] = deque()
        try:
            for chunk in chunks:
                pending.append((chunk, self._send(chunk)))
                if len(pending) >= self.window:
                    done, result = pending.popleft()
                    yield done, self._receive(done, result)
            while pending:
                done, result = pending.popleft()
                yield done, self._receive(done, result)
        finally:
            for _, result in pending:  # interrupted: nobody will read these
                result.revoke()
                result.forget()

    def close(self) -> None:
        self.app.close()
