"""``shoprank`` console script: one click group, commands grouped by area in sibling modules."""

from __future__ import annotations

import logging

import click

from shoprank.cli.data_commands import apikey_group, catalog_group, db_group
from shoprank.cli.experiment_commands import simulate, user_group
from shoprank.cli.model_commands import model_group
from shoprank.cli.rerank_commands import demo_trap, rerank, score
from shoprank.cli.serve_command import serve
from shoprank.cli.worker_commands import worker, worker_health, worker_status
from shoprank.redaction import install_redaction


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--log-level",
    default="WARNING",
    show_default=True,
    envvar="SHOPRANK_LOG_LEVEL",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
def cli(log_level: str) -> None:
    """shoprank: multilingual product search reranking with A/B testing."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_redaction()  # after the handlers exist: mask tokens, passwords, SECRET_KEY in everything logged


cli.add_command(score)
cli.add_command(rerank)
cli.add_command(demo_trap)
cli.add_command(db_group)
cli.add_command(catalog_group)
cli.add_command(apikey_group)
cli.add_command(serve)
for command in (worker, worker_health, worker_status):
    cli.add_command(command)
cli.add_command(model_group)
cli.add_command(user_group)
cli.add_command(simulate)


def main() -> None:
    cli()
