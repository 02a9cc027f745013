"""``shoprank`` console script: one click group, commands grouped by area in sibling modules."""

from __future__ import annotations

import os

import click

from reranking.threads import apply_wait_policy
from shopctl.cli.data_commands import apikey_group, catalog_group, db_group
from shopctl.cli.experiment_commands import simulate, user_group
from shopctl.cli.index_commands import index_group
from shopctl.cli.model_commands import model_group
from shopctl.cli.rerank_commands import demo_trap, rerank, score
from shopctl.cli.serve_command import serve
from shopctl.cli.worker_commands import embed_worker, warm_head_command, worker, worker_health, worker_status
from shoprank.config import LOG_FORMATS, LOG_LEVELS
from shoprank.observability.logs import configure_logging, settings_for_logging


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--log-level",
    default="WARNING",
    show_default=True,
    envvar="SHOPRANK_LOG_LEVEL",
    type=click.Choice(list(LOG_LEVELS), case_sensitive=False),
)
@click.option(
    "--log-format",
    default="text",
    show_default=True,
    envvar="SHOPRANK_LOG_FORMAT",
    type=click.Choice(list(LOG_FORMATS)),
    help="json: one JSON object per line (ts, level, logger, message, request_id).",
)
def cli(log_level: str, log_format: str) -> None:
    """shoprank: multilingual product search reranking with A/B testing."""
    configure_logging(settings_for_logging().replace(log_format=log_format), level=log_level)
    try:  # before any command loads an OpenMP runtime (e5 engine, torch): no spin-waiting on shared cores
        apply_wait_policy(os.environ.get("SHOPRANK_OMP_WAIT_POLICY", "passive").strip() or "passive")
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc


cli.add_command(score)
cli.add_command(rerank)
cli.add_command(demo_trap)
cli.add_command(db_group)
cli.add_command(catalog_group)
cli.add_command(index_group)
cli.add_command(apikey_group)
cli.add_command(serve)
for command in (worker, worker_health, worker_status, embed_worker, warm_head_command):
    cli.add_command(command)
cli.add_command(model_group)
cli.add_command(user_group)
cli.add_command(simulate)


def main() -> None:
    cli()
