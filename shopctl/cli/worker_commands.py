"""Rerank workers from the command line: run one, check its health, read queues and workers."""

from __future__ import annotations

import json
import logging
import socket
import sys
from typing import Any

import click

from shopctl.cli import context


def _parse_autoscale(_: click.Context, __: click.Parameter, value: str | None) -> tuple[int, int] | None:
    if not value:
        return None
    try:
        high, low = (int(part) for part in value.split(","))
    except ValueError:
        raise click.BadParameter("expected MAX,MIN, e.g. 4,1") from None
    return high, low


@click.command()
@click.option(
    "--device", type=click.Choice(["cpu", "cuda"]), required=True, help="cuda: fp16, one process per GPU; cpu: INT8."
)
@click.option(
    "--concurrency",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="CPU: model processes; each gets cores/N torch threads (prefork when N > 1). CUDA: must be 1.",
)
@click.option(
    "--jobs-in-flight",
    type=click.IntRange(1),
    default=8,
    show_default=True,
    help="Jobs one process takes at once and merges into shared batches (single-process layout).",
)
@click.option("--no-batching", is_flag=True, help="Score each job on its own (for comparison).")
@click.option(
    "--autoscale", callback=_parse_autoscale, metavar="MAX,MIN", help="CPU prefork: grow/shrink processes with load."
)
@click.option("--model", help="Hub id or local directory of the cross-encoder [env SHOPRANK_RERANKER_MODEL].")
@click.option("--max-length", type=click.IntRange(16, 8192), help="Token limit per (query, passage) pair.")
@click.option("--no-int8", is_flag=True, help="On CPU, run fp32 instead of INT8 dynamic quantization.")
@click.option("--hostname", help="Celery node name [default: rerank-<device>@<host>].")
def worker(
    device: str,
    concurrency: int,
    jobs_in_flight: int,
    no_batching: bool,
    autoscale: tuple[int, int] | None,
    model: str | None,
    max_length: int | None,
    no_int8: bool,
    hostname: str | None,
) -> None:
    """Run a Celery rerank worker on the rerank.gpu (cuda) or rerank.cpu (cpu) queue."""
    from workers.worker_main import WorkerOptions, run_worker

    for name in ("workers", "reranking", "shoprank"):
        logger = logging.getLogger(name)
        # Pinned explicitly: start-up, readiness, model and per-job lines must reach the log, and Celery later
        # resets the root logger's level to its own --loglevel (WARNING), which these loggers must not inherit.
        logger.setLevel(min(logger.getEffectiveLevel(), logging.INFO))
    options = WorkerOptions(
        device=device,
        concurrency=concurrency,
        jobs_in_flight=jobs_in_flight,
        batching=not no_batching,
        model=model,
        max_length=max_length,
        int8=False if no_int8 else None,
        hostname=hostname,
        autoscale=autoscale,
    )
    sys.exit(run_worker(options, context.settings()))


@click.command("worker-health")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), help="Node rerank-<device>@<this host> (default: any).")
@click.option("--hostname", "node", help="Exact Celery node name to check.")
@click.option("--timeout", type=float, default=3.0, show_default=True)
def worker_health(device: str | None, node: str | None, timeout: float) -> None:
    """Exit 0 when this host's worker has a fresh heartbeat (model loaded) and answers a Celery ping."""
    from workers.celery_app import create_celery_app
    from workers.ops import live_worker_entries

    settings = context.settings()
    host = socket.gethostname()
    try:
        entries = live_worker_entries(settings)
    except Exception as exc:  # any failure to read the registry is unhealthy
        raise click.ClickException(f"cannot read the worker registry: {exc}") from None
    wanted = {node} if node else ({f"rerank-{device}@{host}"} if device else None)
    mine = {e["node"] for e in entries if (e["node"] in wanted if wanted else e.get("host") == host)}
    if not mine:
        raise click.ClickException(f"no live rerank worker heartbeat from {node or device or host}")
    app = create_celery_app(settings, role="client")
    try:
        replies = app.control.ping(destination=sorted(mine), timeout=timeout)
    except Exception as exc:  # broker down
        raise click.ClickException(f"ping failed: {exc}") from None
    answered = {name for reply in replies or [] for name in reply}  # None only when asked for no reply
    if not mine <= answered:
        raise click.ClickException(f"no ping reply from {', '.join(sorted(mine - answered))}")
    click.echo(f"ok: {', '.join(sorted(mine))}")


@click.command("worker-status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def worker_status(as_json: bool) -> None:
    """Queue depth per queue and live workers per device, with what each serves."""
    from workers.ops import ops_snapshot

    try:
        snapshot: dict[str, Any] = ops_snapshot(context.settings())
    except Exception as exc:  # unreachable Redis, no Redis configured
        raise click.ClickException(f"cannot read queues/workers: {exc}") from None
    if as_json:
        click.echo(json.dumps(snapshot, indent=2, sort_keys=True))
        return
    for queue, depth in snapshot["queues"].items():
        click.echo(f"queue {queue:<11} waiting={depth}")
    for family, count in snapshot["workers_per_device"].items():
        click.echo(f"device {family:<5} workers={count} processes={snapshot['processes_per_device'].get(family, 0)}")
    for w in snapshot["workers"]:
        click.echo(
            f"  {w['node']}: {w['device']} {w['dtype']} {w['model_id']} max_length={w['max_length']} "
            f"processes={w['processes']} jobs_served={w['jobs_served']}"
        )


@click.command("embed-worker")
@click.option("--concurrency", type=click.IntRange(1), default=1, show_default=True, help="Embedding processes.")
@click.option("--hostname", help="Celery node name [default: embed@<host>].")
def embed_worker(concurrency: int, hostname: str | None) -> None:
    """Run a Celery embed worker on the embed.cpu queue (chunks from `shoprank catalog embed` / import)."""
    from workers.embed_worker import run_embed_worker

    for name in ("workers", "shoprank"):
        logger = logging.getLogger(name)
        logger.setLevel(min(logger.getEffectiveLevel(), logging.INFO))
    sys.exit(run_embed_worker(context.settings(), concurrency, hostname))


@click.command("warm-head")
@click.option("--top", type=click.IntRange(1, 10_000), default=50, show_default=True, help="Head queries to warm.")
@click.option("--hours", type=click.FloatRange(0.01), default=24.0, show_default=True, help="Impression log window.")
@click.option(
    "--depth", type=click.IntRange(1, 1000), default=None, help="Candidates per query [default: RERANK_MAX_DEPTH]."
)
@click.option(
    "--budget-pairs", type=click.IntRange(1), default=5000, show_default=True, help="Most pairs queued in one run."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--every",
    type=click.FloatRange(1.0),
    default=None,
    help="Repeat every this many seconds until stopped (the compose service runs it so); a failed round is retried.",
)
@click.option("--rounds", type=click.IntRange(1), default=None, help="With --every: stop after this many rounds.")
def warm_head_command(
    top: int, hours: float, depth: int | None, budget_pairs: int, as_json: bool, every: float | None, rounds: int | None
) -> None:
    """Queue the most frequent recent queries' first-stage heads for scoring in the workers' idle time.

    Run it periodically (``--every 600``, or cron); the workers score the pairs at low priority into the shared
    score cache, so searches for those queries are answered from the cache at full depth.
    """
    from search.warm_head import WarmReport, head_queries, repeat_rounds, since_hours, warm_head
    from webapp.services import build_services

    settings = context.settings()
    if not settings.resolved_broker_url:
        raise click.ClickException(
            "warm-head queues work for Celery workers: set SHOPRANK_REDIS_URL (embedded mode warms nothing)"
        )
    services = build_services(settings)

    def run_once() -> WarmReport:
        head = head_queries(services.db, since=since_hours(hours), limit=top)
        return warm_head(
            head,
            services.search.head_passages,
            services.dispatcher.warm,
            depth=depth or settings.rerank_max_depth,
            budget_pairs=budget_pairs,
        )

    def show(report: WarmReport) -> None:
        if as_json:
            click.echo(json.dumps(report.as_dict(), sort_keys=True))
        else:
            click.echo(
                f"queued {report.pairs} pairs for {report.queries} head queries "
                f"({report.over_budget} over budget, {report.failed} failed)"
            )

    try:
        if every is not None:
            repeat_rounds(run_once, every_seconds=every, rounds=rounds, report=show)
            return
        try:
            report = run_once()
        except Exception as exc:  # unreachable Redis or database
            raise click.ClickException(f"cannot warm the head: {type(exc).__name__}: {exc}") from None
        show(report)
    finally:
        services.close()
