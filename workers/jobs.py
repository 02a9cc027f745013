"""The wire format of a rerank job and its result: strict validation both ways.

The web tier validates before it enqueues (a bad job never costs a broker round
trip) and the worker validates again on receipt, because anything that can write to
Redis can enqueue a job. Both use these functions, so the rules cannot drift apart.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, fields
from typing import Any

from reranking.dispatch import DispatchResult, RerankJob, RerankRejected
from reranking.passage_budget import MAX_PASSAGE_TOKENS, MIN_PASSAGE_TOKENS

JOB_FIELDS = tuple(f.name for f in fields(RerankJob))
DEVICE_PREFERENCES = (None, "cpu", "cuda")


def validate_job_payload(payload: Any, max_documents: int, max_query_chars: int) -> RerankJob:
    """A ``RerankJob`` from a JSON object, or ``RerankRejected`` naming exactly what is wrong."""
    if not isinstance(payload, Mapping):
        raise RerankRejected(f"job must be a JSON object, got {type(payload).__name__}")
    unknown = sorted(set(payload) - set(JOB_FIELDS))
    if unknown:
        raise RerankRejected(f"unknown job field(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(JOB_FIELDS)}")
    query = payload.get("query")
    if not isinstance(query, str) or not query.strip():
        raise RerankRejected("job.query must be a non-empty string")
    if len(query) > max_query_chars:
        raise RerankRejected(f"job.query has {len(query)} characters; the limit is {max_query_chars}")
    passages = payload.get("passages")
    if not isinstance(passages, list):
        raise RerankRejected(f"job.passages must be a list of strings, got {type(passages).__name__}")
    if len(passages) > max_documents:
        raise RerankRejected(f"job.passages has {len(passages)} entries; the limit is {max_documents}")
    for index, passage in enumerate(passages):
        if not isinstance(passage, str):
            raise RerankRejected(f"job.passages[{index}] must be a string, got {type(passage).__name__}")
    for name in ("model", "request_id"):
        value = payload.get(name)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise RerankRejected(f"job.{name} must be a non-empty string or null")
    preference = payload.get("device_preference")
    if preference not in DEVICE_PREFERENCES:
        raise RerankRejected(f"job.device_preference must be 'cpu', 'cuda' or null, got {preference!r}")
    deadline_at = payload.get("deadline_at")
    if deadline_at is not None and (
        isinstance(deadline_at, bool) or not isinstance(deadline_at, int | float) or not math.isfinite(deadline_at)
    ):
        raise RerankRejected("job.deadline_at must be a number of seconds since the epoch or null")
    min_depth = payload.get("min_depth")
    if min_depth is not None and (isinstance(min_depth, bool) or not isinstance(min_depth, int) or min_depth < 0):
        raise RerankRejected("job.min_depth must be a non-negative integer or null")
    passage_tokens = payload.get("passage_tokens")
    if passage_tokens is not None and (
        isinstance(passage_tokens, bool)
        or not isinstance(passage_tokens, int)
        or not MIN_PASSAGE_TOKENS <= passage_tokens <= MAX_PASSAGE_TOKENS
    ):
        raise RerankRejected(
            f"job.passage_tokens must be a whole number from {MIN_PASSAGE_TOKENS} to {MAX_PASSAGE_TOKENS} or null"
        )
    return RerankJob(
        query=query,
        passages=list(passages),
        model=payload.get("model"),
        request_id=payload.get("request_id"),
        device_preference=preference,
        deadline_at=None if deadline_at is None else float(deadline_at),
        min_depth=min_depth,
        passage_tokens=passage_tokens,
    )


def validate_task_arguments(args: Any, kwargs: Any) -> tuple[Mapping[str, Any], float | None]:
    """The task is called as ``rerank_job(job={...}, enqueued_at=<unix seconds>)`` and nothing else."""
    if args:
        raise RerankRejected("the rerank task takes keyword arguments only: job={...}, enqueued_at=<seconds>")
    kwargs = dict(kwargs or {})
    if "job" not in kwargs:
        raise RerankRejected("missing keyword argument 'job'")
    extra = sorted(set(kwargs) - {"job", "enqueued_at"})
    if extra:
        raise RerankRejected(f"unexpected keyword argument(s) {', '.join(map(repr, extra))}")
    enqueued_at = kwargs.get("enqueued_at")
    if enqueued_at is not None and (
        isinstance(enqueued_at, bool) or not isinstance(enqueued_at, int | float) or not math.isfinite(enqueued_at)
    ):
        raise RerankRejected("enqueued_at must be a number of seconds since the epoch")
    return kwargs["job"], None if enqueued_at is None else float(enqueued_at)


def result_to_payload(result: DispatchResult) -> dict[str, Any]:
    return asdict(result)


def result_from_payload(payload: Any) -> DispatchResult:
    """The worker's answer as the same ``DispatchResult`` the in-process path returns."""
    if not isinstance(payload, Mapping):
        raise ValueError(f"worker result must be an object, got {type(payload).__name__}")
    known = {f.name for f in fields(DispatchResult)}
    return DispatchResult(**{k: v for k, v in payload.items() if k in known})
