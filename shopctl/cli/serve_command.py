"""``shoprank serve``: the shop on a real WSGI server (waitress); ``--demo`` sets up the embedded defaults first."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import click

from shopctl.cli import context
from shopctl.cli.data_commands import run_embed, run_import
from shopctl.cli.index_build import build_index
from shoprank import migrate
from shoprank.config import Settings

if TYPE_CHECKING:  # annotations only: the command imports the app lazily, so `shoprank --help` stays fast
    from flask import Flask

    from shopctl.demo import DemoSetup
    from webapp.services import AppServices

REPO_ROOT = Path(__file__).resolve().parents[2]


def _demo_catalog_path(configured: str) -> Path:
    path = Path(configured)
    if not path.is_absolute() and not path.exists():
        path = REPO_ROOT / configured
    if not path.exists():
        raise click.ClickException(f"demo catalog {configured} not found (set SHOPRANK_DEMO_CATALOG)")
    return path


def _stale_vectors(settings: Settings) -> int:
    from catalog.embedding import count_stale

    with context.database(settings, require_schema=False) as db, db.session() as session:
        return count_stale(session)


def _catalog_is_empty(settings: Settings) -> bool:
    from sqlalchemy import func, select

    from catalog.models import Product

    with context.database(settings, require_schema=False) as db, db.session() as session:
        return not session.scalar(select(func.count(Product.id)))


def _prepare_demo_experiments(services: AppServices) -> DemoSetup:
    """Demo login and experiments (created only when missing: a restart keeps its data and is not seeded again)."""
    from shopctl.demo import ensure_demo

    setup = ensure_demo(services.db)
    services.search.resolver.invalidate()
    return setup


def _seed_demo_traffic(app: Flask, services: AppServices, experiments: list[str], users: int) -> None:
    """New demo experiments get simulated shoppers in the background: the server is already listening, and the
    dashboard shows a notice until the seeding is done."""
    from shopctl.demo import start_demo_traffic

    if not experiments or not users:
        return
    start_demo_traffic(app, users, services.background, report=click.echo)
    click.echo(
        f"demo experiments {', '.join(experiments)}: simulating {users} shoppers in the background "
        "(the shop answers meanwhile; the dashboard shows the progress)"
    )


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--threads", default=8, show_default=True, type=click.IntRange(1, 256), help="Waitress worker threads.")
@click.option(
    "--demo",
    is_flag=True,
    help="Migrate, import the demo catalog if empty, set up demo experiments, serve; new demo experiments get "
    "simulated traffic in the background.",
)
@click.option(
    "--demo-users",
    type=click.IntRange(0, 100_000),
    default=1000,
    show_default=True,
    help="Simulated shoppers for a fresh demo (only when the demo experiments are created).",
)
def serve(host: str, port: int, threads: int, demo: bool, demo_users: int) -> None:
    """Start the shop, the JSON API and the rerank APIs."""
    from webapp import create_app
    from webapp.waitress_server import create_waitress_server

    logging.getLogger("bm25s").setLevel(logging.WARNING)
    for name in ("shoprank", "webapp", "search", "catalog", "experiments", "reranking", "workers"):
        logging.getLogger(name).setLevel(min(logging.getLogger(name).getEffectiveLevel(), logging.INFO))
    settings = context.settings()
    url = settings.resolved_database_url
    if demo:
        migrate.upgrade(url)
        if _catalog_is_empty(settings):
            run_import(settings, _demo_catalog_path(settings.demo_catalog), None)
        elif _stale_vectors(settings):  # e.g. vectors stored before the dense text dropped the price
            click.echo(f"embedding: {run_embed(settings)}")
            build_index(settings)
    else:
        context.check_schema(url)

    app = create_app(settings)
    services = app.extensions["shoprank"]
    index = services.index.refresh_if_changed()  # maps the current version (built once if there is none)
    demo_login = _prepare_demo_experiments(services) if demo else None
    # The first shopper should not pay for lazy initialisation, nor wait behind the warm-up: the index and query
    # encoder warm here (seconds), the reranker in the background at low priority (a live search goes first).
    warmed_in = services.warm()
    services.warm_scorer()
    logging.getLogger(__name__).info(
        "warm-up: first stage ready in %.1f s; reranker warming in the background", warmed_in
    )
    scorer = services.scorer_info() or {}
    mode = services.dispatcher.describe().get("mode", "?")
    click.echo(f"catalog: {index.size} products · database: {services.db.dialect} · reranking: {mode}")
    if scorer:
        line = f"scorer: {scorer.get('model_id')} [{scorer.get('kind')}]"
        if scorer.get("kind") == "bi-encoder-fallback":
            line += " -- FALLBACK: cross-encoder weights not on this machine (see docs/reranking.md, Models)"
        click.echo(line)
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # nosec B104 - display only, binds nothing
    if demo_login is not None:
        click.echo(
            f"dashboard: http://{shown_host}:{port}/dashboard/  login {demo_login.email}  password "
            f"{demo_login.password}  (demo only; a new password at every demo start)"
        )
        click.echo(
            f"ops page:  http://{shown_host}:{port}/dashboard/ops  login {demo_login.ops_email}  password "
            f"{demo_login.ops_password}  (demo only)"
        )
    server = create_waitress_server(app, host=host, port=port, threads=threads)  # listening from here on
    click.echo(f"shoprank is running at http://{shown_host}:{port}/  (API: /api/search, /v2/rerank; Ctrl-C to stop)")
    if demo_login is not None:
        _seed_demo_traffic(app, services, demo_login.created_experiments, demo_users)
    server.run()
