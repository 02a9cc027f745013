"""Database, catalog and API-key commands: ``shoprank db …``, ``shoprank catalog import``, ``shoprank apikey …``."""

from __future__ import annotations

from pathlib import Path

import click
from sqlalchemy import select

from shoprank import migrate
from shoprank.config import ConfigError, Settings


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _require_schema(url: str) -> None:
    if not migrate.is_up_to_date(url):
        raise click.ClickException(
            f"database schema is at {migrate.current_revision(url) or 'nothing'}, code expects "
            f"{migrate.head_revision()}; run `shoprank db upgrade` first"
        )


@click.group("db")
def db_group() -> None:
    """Schema migrations (Alembic) on SHOPRANK_DATABASE_URL."""


@db_group.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Upgrade the schema to REVISION (default: head)."""
    url = _settings().resolved_database_url
    migrate.upgrade(url, revision)
    click.echo(f"database at revision {migrate.current_revision(url)}")


@db_group.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Downgrade the schema to REVISION ('-1' for one step, 'base' for empty)."""
    url = _settings().resolved_database_url
    migrate.downgrade(url, revision)
    click.echo(f"database at revision {migrate.current_revision(url) or 'base (empty)'}")


@db_group.command("current")
def db_current() -> None:
    """Print the schema revision of the database and of the code."""
    url = _settings().resolved_database_url
    click.echo(f"database: {migrate.current_revision(url) or 'base (empty)'}  code: {migrate.head_revision()}")


@click.group("catalog")
def catalog_group() -> None:
    """Product catalog."""


def run_import(settings: Settings, path: Path, fmt: str | None, *, quiet: bool = False) -> None:
    """Shared by ``catalog import`` and ``serve --demo``: validate, upsert, embed with a progress bar."""
    from shoprank.catalog.importer import CatalogFileError, import_records, read_catalog
    from shoprank.db import Database
    from shoprank.search.embeddings import embedder

    try:
        records = read_catalog(path, fmt)
    except CatalogFileError as exc:
        for error in exc.errors[:50]:
            click.echo(f"{path}: {error}", err=True)
        if len(exc.errors) > 50:
            click.echo(f"… and {len(exc.errors) - 50} more", err=True)
        raise click.ClickException(str(exc)) from None
    except (ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None

    db = Database.from_settings(settings)
    _require_schema(settings.resolved_database_url)
    from tqdm import tqdm

    progress = tqdm(total=0, unit="product", desc="embedding", disable=quiet, leave=False)

    def start(total: int) -> None:
        progress.reset(total=total)

    try:
        report = import_records(db, records, embedder().passages, on_embed_start=start, on_progress=progress.update)
    finally:
        progress.close()
        db.dispose()
    click.echo(f"imported {path.name}: {report.summary()}")
    from shoprank.cli.index_commands import build_index

    build_index(settings, quiet=quiet)


@catalog_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), help="Default: from the file extension.")
def catalog_import(file: Path, fmt: str | None) -> None:
    """Validate FILE (JSONL or CSV), upsert its products by sku and precompute their embeddings.

    Nothing is written unless every row is valid; all problems are listed with their line.
    """
    run_import(_settings(), file, fmt)


@click.group("apikey")
def apikey_group() -> None:
    """Bearer keys for the rerank APIs (stored hashed)."""


@apikey_group.command("create")
@click.option("--name", required=True, help="Who or what uses the key (shown in listings).")
def apikey_create(name: str) -> None:
    """Create a key and print it once."""
    from shoprank.apikeys import create_api_key
    from shoprank.db import Database

    settings = _settings()
    _require_schema(settings.resolved_database_url)
    db = Database.from_settings(settings)
    try:
        with db.session() as session:
            key, plaintext = create_api_key(session, name)
            key_id = key.id
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        db.dispose()
    click.echo(f"created API key #{key_id} ({name}); it is shown only now:", err=True)
    click.echo(plaintext)


@apikey_group.command("list")
def apikey_list() -> None:
    """List keys (never their secrets)."""
    from shoprank.apikeys import ApiKey
    from shoprank.db import Database

    db = Database.from_settings(_settings())
    try:
        with db.session() as session:
            for key in session.scalars(select(ApiKey).order_by(ApiKey.id)):
                state = "revoked" if key.revoked_at else "active"
                used = key.last_used_at.isoformat(timespec="seconds") if key.last_used_at else "never"
                click.echo(f"#{key.id}  {key.display_prefix}…  {state:<8} last used {used}  {key.name}")
    finally:
        db.dispose()


@apikey_group.command("revoke")
@click.argument("key_id", type=int)
def apikey_revoke(key_id: int) -> None:
    """Revoke key KEY_ID; requests using it get 401 from now on."""
    from shoprank.apikeys import revoke_api_key
    from shoprank.db import Database

    db = Database.from_settings(_settings())
    try:
        with db.session() as session:
            if not revoke_api_key(session, key_id):
                raise click.ClickException(f"no active API key #{key_id}")
    finally:
        db.dispose()
    click.echo(f"revoked API key #{key_id}")
