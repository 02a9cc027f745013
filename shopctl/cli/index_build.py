"""Building a search index version: shared by ``shoprank index build``, ``catalog import|embed`` and ``serve --demo``.

In its own module so that the catalog commands (which build after an import) and the index commands (which
register ``catalog delete`` on the catalog group) can both use it without importing each other.
"""

from __future__ import annotations

import click

from shopctl.cli.context import database
from shoprank.config import Settings


def build_index(settings: Settings, *, quiet: bool = False) -> None:
    """Build a new index version from the database and switch every reader to it (shared with the importer)."""
    from tqdm import tqdm

    from catalog.vectors import embedder
    from experiments.store.currency import parse_rates
    from search.filters import FxRates
    from search.index_files import build_lock, build_version

    with database(settings) as db:
        progress = tqdm(total=0, unit="product", desc="indexing", disable=quiet, leave=False)

        def advance(done: int, total: int) -> None:
            progress.total = total
            progress.update(done - progress.n)

        try:
            with build_lock(settings.resolved_index_dir):
                report = build_version(
                    db,
                    settings.resolved_index_dir,
                    fx=FxRates(parse_rates(settings.fx_rates)),
                    embed_missing=embedder().passages,
                    progress=advance,
                )
        finally:
            progress.close()
    click.echo(
        f"index {report.version}: {report.rows} products ({report.with_vector} with vectors) "
        f"in {report.seconds:.1f} s → {report.path}"
    )
