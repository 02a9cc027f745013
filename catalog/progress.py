"""How long catalog stages report progress: the CLI draws bars from it, tests and benchmarks pass nothing."""

from __future__ import annotations


class Progress:
    """A no-op reporter; subclasses draw (``shopctl.cli.data_commands.BarProgress``)."""

    def stage(self, name: str, total: int | None) -> None:
        """A stage starts: ``checking``, ``writing`` or ``embedding``, with its total (None: unknown)."""

    def advance(self, count: int) -> None:
        """``count`` more units of the current stage are done."""
