"""``shoprank index build|status``, ``shoprank catalog delete``: the search index as a job, not a web-process chore."""

from __future__ import annotations

import json

import click

from shopctl.cli import context
from shopctl.cli.data_commands import catalog_group
from shopctl.cli.index_build import build_index


@click.group("index")
def index_group() -> None:
    """The first-stage search index (memory-mapped versions under SHOPRANK_INDEX_DIR)."""


@index_group.command("build")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def index_build(quiet: bool) -> None:
    """Build a new index version from the database; running servers switch to it within a second.

    Run it after large imports, on a schedule (it folds the changes each process holds in memory into
    the files), or on one node of many, then copy the version directory and CURRENT to the others.
    """
    build_index(context.settings(), quiet=quiet)


@index_group.command("status")
def index_status() -> None:
    """The live version's manifest (rows, watermark, build time) as JSON."""
    from search.index_files import current_version

    directory = context.settings().resolved_index_dir
    name = current_version(directory)
    if name is None:
        raise click.ClickException(f"no index version in {directory}; run `shoprank index build`")
    manifest = json.loads((directory / name / "manifest.json").read_text())
    summary = {k: manifest[k] for k in ("version", "rows", "with_vector", "ivf_lists", "watermark", "built_at")}
    click.echo(json.dumps({"directory": str(directory), **summary}, indent=2))


@catalog_group.command("delete")
@click.argument("skus", nargs=-1, required=True)
def catalog_delete(skus: tuple[str, ...]) -> None:
    """Delete products by SKU; searches stop showing them within seconds (no index build needed)."""
    from catalog.removal import delete_products

    with context.database(context.settings()) as db, db.session() as session:
        deleted = delete_products(session, skus)
    click.echo(f"deleted {len(deleted)} product(s); {len(skus) - len(deleted)} unknown sku(s) ignored")
