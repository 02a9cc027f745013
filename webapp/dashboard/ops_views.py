"""``/dashboard/ops``: live rerank workers, queue depth, cache hit rate, latency percentiles, fallback rate.

Ops (and admins) only; merchandisers get 403. Workers and queues are read from Redis (the same registry
routing uses); latency, cache and fallback numbers come from the rolling window of recent searches
(``shoprank.observability.window``), shared by all web processes when Redis is configured.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import render_template

from webapp.context import app_services
from webapp.dashboard import auth_users
from webapp.dashboard.blueprint import bp
from webapp.dashboard.ops_charts import format_ms, latency_bars, latency_series

log = logging.getLogger(__name__)

#: A heartbeat older than this (seconds) is shown as late; entries expire from the registry at 15 s.
LATE_HEARTBEAT_SECONDS = 10.0


def worker_rows(entries: list[dict[str, Any]], now: float) -> list[dict[str, Any]]:
    """One row per model process, GPU first, with the heartbeat age."""
    rows = []
    for entry in entries:
        beat = entry.get("heartbeat_at")
        age = max(0.0, now - float(beat)) if isinstance(beat, int | float) else None
        rows.append(
            {
                "node": entry.get("node"),
                "host": entry.get("host"),
                "pid": entry.get("pid"),
                "device": entry.get("device"),
                "device_family": entry.get("device_family"),
                "queue": entry.get("queue"),
                "model": entry.get("model_id") or entry.get("model"),
                "backend": entry.get("backend"),
                "dtype": entry.get("dtype"),
                "max_length": entry.get("max_length"),
                "jobs_served": entry.get("jobs_served"),
                "pairs_per_second": entry.get("pairs_per_second"),
                "expired_jobs": (entry.get("batches") or {}).get("expired_jobs"),
                "partial_jobs": (entry.get("batches") or {}).get("partial_jobs"),
                "late_seconds": (entry.get("batches") or {}).get("late_seconds"),
                "heartbeat_age": age,
                "late": age is not None and age > LATE_HEARTBEAT_SECONDS,
                "uptime": None if not entry.get("started_at") else now - float(entry["started_at"]),
            }
        )
    return sorted(rows, key=lambda r: (r["device_family"] != "cuda", str(r["node"]), r["pid"] or 0))


def gather_ops(app_services: Any, now: float | None = None) -> dict[str, Any]:
    """Everything the page shows; each source fails on its own (an error string instead of data)."""
    now = time.time() if now is None else now
    settings = app_services.settings
    data: dict[str, Any] = {"mode": "celery" if settings.resolved_broker_url else "in-process", "now": now}
    if data["mode"] == "celery":
        from workers.ops import live_worker_entries, queue_depths

        try:
            data["workers"] = worker_rows(live_worker_entries(settings), now)
        except Exception as exc:  # Redis down: say so, keep the rest of the page
            data["workers"], data["workers_error"] = [], f"{type(exc).__name__}: {exc}"
        try:
            data["queues"] = queue_depths(settings)
        except Exception as exc:
            data["queues"], data["queues_error"] = {}, f"{type(exc).__name__}: {exc}"
    else:
        described = app_services.dispatcher.describe()
        scorers = described.get("scorers") or {}
        blank = dict.fromkeys(
            ("host", "pid", "queue", "jobs_served", "heartbeat_age", "uptime", "expired_jobs", "partial_jobs"), None
        )
        data["workers"] = [
            blank
            | {
                "late": False,
                "node": "in-process (web)",
                "model": info.get("model_id"),
                "device": info.get("device"),
                "device_family": "cuda" if str(info.get("device", "")).startswith("cuda") else "cpu",
                "backend": info.get("backend"),
                "dtype": info.get("dtype"),
                "max_length": info.get("max_length"),
                "kind": info.get("kind"),
                "fallback_reason": info.get("fallback_reason"),
                "pairs_per_second": described.get("pairs_per_second"),
                "late_seconds": None,
            }
            for info in scorers.values()
        ]
        data["queues"] = {}
    per_device: dict[str, set[str]] = {"cuda": set(), "cpu": set()}
    for row in data["workers"]:
        per_device.setdefault(row.get("device_family") or "cpu", set()).add(str(row.get("node")))
    data["workers_per_device"] = {device: len(nodes) for device, nodes in per_device.items()}
    window = app_services.window
    data["window"] = window.summary(now) if window is not None else None
    data["shipped"] = _shipped(app_services)
    # A scorer that fell back (cross-encoder weights missing) still "reranks" every search without a fallback
    # status, so the fallback-rate card alone would stay green while no search sees the cross-encoder.
    data["fallback_scorers"] = [row for row in data["workers"] if row.get("kind") == "bi-encoder-fallback"]
    return data


def _shipped(app_services: Any) -> list[dict[str, Any]] | None:
    """Shipped ranking defaults, newest (the one serving) first; None when the database cannot say."""
    from experiments.ship import shipped_history

    try:
        with app_services.db.session() as session:
            return [
                {
                    "experiment": row.experiment_key,
                    "variant": row.variant_key,
                    "rerank": row.rerank,
                    "model": row.model,
                    "first_stage_top_k": row.first_stage_top_k,
                    "device_preference": row.device_preference,
                    "rerank_max_depth": row.rerank_max_depth,
                    "by": row.shipped_by,
                    "at": row.shipped_at,
                    "note": row.note,
                }
                for row in shipped_history(session)
            ]
    except Exception:  # the ops page must render while the database is down
        log.exception("could not read the shipped ranking defaults")
        return None


@bp.get("/ops")
@auth_users.login_required("ops")
def ops() -> Any:
    data = gather_ops(app_services())
    window = data["window"] or {}
    return render_template(
        "dashboard/ops.html",
        ops=data,
        window=window,
        latency_chart=latency_bars(window.get("latency_ms") or {}, title="Search latency by stage (p50 / p95 / p99)"),
        series_chart=latency_series(window.get("series") or []),
        window_size=app_services().settings.ops_window_size,
    )


@bp.app_template_filter("ms")
def ms(value: float | None) -> str:
    return format_ms(value)


@bp.app_template_filter("age")
def age(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"{seconds:.0f} s ago" if seconds >= 1 else "just now"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


@bp.app_template_filter("duration")
def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"
