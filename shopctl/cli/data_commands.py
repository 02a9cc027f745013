"""Database, catalog and API-key commands: ``shoprank db …``, ``shoprank catalog import``, ``shoprank apikey …``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from sqlalchemy import select

from catalog.feeds import FORMATS
from catalog.progress import Progress
from shopctl.cli import context
from shopctl.cli.index_build import build_index
from shoprank import migrate
from shoprank.config import Settings


@click.group("db")
def db_group() -> None:
    """Schema migrations (Alembic) on SHOPRANK_DATABASE_URL."""


@db_group.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Upgrade the schema to REVISION (default: head)."""
    url = context.settings().resolved_database_url
    migrate.upgrade(url, revision)
    click.echo(f"database at revision {migrate.current_revision(url)}")


@db_group.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Downgrade the schema to REVISION ('-1' for one step, 'base' for empty)."""
    url = context.settings().resolved_database_url
    migrate.downgrade(url, revision)
    click.echo(f"database at revision {migrate.current_revision(url) or 'base (empty)'}")


@db_group.command("current")
def db_current() -> None:
    """Print the schema revision of the database and of the code."""
    url = context.settings().resolved_database_url
    click.echo(f"database: {migrate.current_revision(url) or 'base (empty)'}  code: {migrate.head_revision()}")


@click.group("catalog")
def catalog_group() -> None:
    """Product catalog."""


class BarProgress(Progress):
    """tqdm bars for the import stages (checking, writing, embedding): one bar per stage."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.bar: Any = None

    def stage(self, name: str, total: int | None) -> None:
        from tqdm import tqdm

        self.close()
        unit = "row" if name != "embedding" else "product"
        self.bar = tqdm(total=total, unit=unit, desc=name, disable=self.quiet, leave=False, mininterval=0.5)

    def advance(self, count: int) -> None:
        if self.bar is not None and count:
            self.bar.update(count)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _embedding_backend(settings: Settings, embed_on: str) -> tuple[Any, str]:
    """Celery embed workers when asked for (or, with ``auto``, when any is alive); else this process."""
    from catalog.embedding import LocalEmbedding
    from catalog.vectors import embedder

    if embed_on != "local" and settings.redis_url:
        from workers.embed_client import CeleryEmbedding, live_embed_processes

        processes = live_embed_processes(settings)
        if processes:
            return CeleryEmbedding.from_settings(settings, processes), f"{processes} embed worker process(es)"
        if embed_on == "workers":
            raise click.ClickException("no live embed worker (start one: shoprank embed-worker)")
    elif embed_on == "workers":
        raise click.ClickException("--embed-on workers needs SHOPRANK_REDIS_URL (the broker and worker registry)")
    return LocalEmbedding(embedder().passages), "this process"


def run_embed(
    settings: Settings, embed_on: str = "auto", *, limit: int | None = None, progress: BarProgress | None = None
) -> str:
    """Embed every product whose stored vector is not current; returns a one-line summary."""
    from catalog.embedding import embed_catalog

    backend, where = _embedding_backend(settings, embed_on)
    progress = progress or BarProgress()
    try:
        with context.database(settings, require_schema=False) as db:  # the callers checked the schema
            report = embed_catalog(db, backend, limit=limit, progress=progress)
    finally:
        progress.close()
        if hasattr(backend, "close"):
            backend.close()
    return f"{report.embedded} embedded on {where} in {report.seconds:.1f} s ({report.per_second:.1f}/s)"


def run_import(
    settings: Settings,
    path: Path,
    fmt: str | None,
    *,
    quiet: bool = False,
    options: Any = None,
    embed: bool = True,
    embed_on: str = "auto",
) -> None:
    """Shared by ``catalog import`` and ``serve --demo``: check, commit in chunks, then embed, with progress bars."""
    from catalog.importer import CatalogFileError, ImportOptions, import_feed

    options = options or ImportOptions(fmt=fmt)
    with context.database(settings) as db:
        progress = BarProgress(quiet)
        try:
            report = import_feed(db, path, options, progress)
        except CatalogFileError as exc:
            for error in exc.errors[:50]:
                click.echo(f"{path}: {error}", err=True)
            if exc.count > 50:
                click.echo(f"… and {exc.count - 50} more", err=True)
            raise click.ClickException(str(exc)) from None
        except (ValueError, OSError) as exc:
            raise click.ClickException(str(exc)) from None
        finally:
            progress.close()
    for warning in report.warnings:
        click.echo(f"{path}: warning: {warning}", err=True)
    for error in report.errors[:50]:
        click.echo(f"{path}: skipped {error}", err=True)
    click.echo(f"imported {path.name} ({report.fmt}): {report.summary()}")
    if embed:
        click.echo(f"embedding: {run_embed(settings, embed_on, progress=BarProgress(quiet))}")
    else:
        click.echo("not embedded (--no-embed): searchable lexically now; run `shoprank catalog embed` for dense search")
    build_index(settings, quiet=quiet)  # a new index version: running servers switch to it within a second


_EMBED_ON = click.Choice(["auto", "local", "workers"])


@catalog_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(list(FORMATS)), help="Default: from the extension and header.")
@click.option("--language", help="Language of every product, for feeds without one (Merchant Center, Shopify).")
@click.option("--currency", help="Currency of every price, for feeds without one (Shopify).")
@click.option("--delta", is_flag=True, help="Price/stock/availability only: never touches text or vectors.")
@click.option("--skip-invalid", is_flag=True, help="Import the valid rows and list the invalid ones.")
@click.option("--chunk-size", type=click.IntRange(1, 100_000), default=1000, show_default=True)
@click.option("--no-embed", is_flag=True, help="Skip the embedding stage (run `shoprank catalog embed` later).")
@click.option(
    "--embed-on", type=_EMBED_ON, default="auto", show_default=True, help="auto: embed workers when any is alive."
)
def catalog_import(
    file: Path,
    fmt: str | None,
    language: str | None,
    currency: str | None,
    delta: bool,
    skip_invalid: bool,
    chunk_size: int,
    no_embed: bool,
    embed_on: str,
) -> None:
    """Check FILE, upsert its products by sku in committed chunks, then embed what changed.

    A file with invalid rows is refused whole (every problem listed with its line) unless
    --skip-invalid. An interrupted import leaves whole chunks committed; running it again resumes.
    """
    from catalog.importer import ImportOptions

    options = ImportOptions(
        fmt=fmt, language=language, currency=currency, delta=delta, skip_invalid=skip_invalid, chunk_size=chunk_size
    )
    run_import(context.settings(), file, fmt, options=options, embed=not (no_embed or delta), embed_on=embed_on)


@catalog_group.command("embed")
@click.option("--embed-on", type=_EMBED_ON, default="auto", show_default=True, help="auto: workers when any is alive.")
@click.option("--limit", type=click.IntRange(1), help="Embed at most this many products (then stop).")
def catalog_embed(embed_on: str, limit: int | None) -> None:
    """Compute the vector of every product whose stored vector is missing or stale; resumable."""
    settings = context.settings()
    context.check_schema(settings.resolved_database_url)
    click.echo(f"embedding: {run_embed(settings, embed_on, limit=limit)}")
    build_index(settings)  # fold the new vectors into an index version instead of every process's delta


@click.group("apikey")
def apikey_group() -> None:
    """Bearer keys for the rerank APIs (stored hashed)."""


@apikey_group.command("create")
@click.option("--name", required=True, help="Who or what uses the key (shown in listings).")
def apikey_create(name: str) -> None:
    """Create a key and print it once."""
    from shoprank.apikeys import create_api_key

    with context.database(context.settings()) as db:
        try:
            with db.session() as session:
                key, plaintext = create_api_key(session, name)
                key_id = key.id
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"created API key #{key_id} ({name}); it is shown only now:", err=True)
    click.echo(plaintext)


@apikey_group.command("list")
def apikey_list() -> None:
    """List keys (never their secrets)."""
    from shoprank.apikeys import ApiKey

    with context.database(context.settings(), require_schema=False) as db, db.session() as session:
        for key in session.scalars(select(ApiKey).order_by(ApiKey.id)):
            state = "revoked" if key.revoked_at else "active"
            used = key.last_used_at.isoformat(timespec="seconds") if key.last_used_at else "never"
            click.echo(f"#{key.id}  {key.display_prefix}…  {state:<8} last used {used}  {key.name}")


@apikey_group.command("revoke")
@click.argument("key_id", type=int)
def apikey_revoke(key_id: int) -> None:
    """Revoke key KEY_ID; requests using it get 401 from now on."""
    from shoprank.apikeys import revoke_api_key

    with context.database(context.settings(), require_schema=False) as db, db.session() as session:
        if not revoke_api_key(session, key_id):
            raise click.ClickException(f"no active API key #{key_id}")
    click.echo(f"revoked API key #{key_id}")
