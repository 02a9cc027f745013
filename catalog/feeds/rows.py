"""The normalised row every feed parser yields, and the line/table readers the parsers share."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(slots=True)
class FeedRow:
    """One product from a feed: ``fields`` to validate, or ``problems`` found while parsing it."""

    line: int  # line number (item number for XML feeds)
    fields: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)


class FeedError(ValueError):
    """The file cannot be read further (bad encoding, broken XML, unusable header)."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


def decoded_lines(path: Path) -> Iterator[str]:
    """The file's lines as text, one at a time; ``FeedError`` names the first line that is not UTF-8."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise FeedError(number, f"not UTF-8 (byte {exc.start} of the line)") from None
            yield text.removeprefix("\ufeff") if number == 1 else text


def blank_to_none(row: dict[str, Any]) -> dict[str, Any]:
    return {key: (None if isinstance(value, str) and not value.strip() else value) for key, value in row.items()}


def table_rows(
    path: Path, required: Sequence[str], delimiter: str = ",", column: Callable[[str], str] = str.strip
) -> Iterator[FeedRow]:
    """Rows of a CSV/TSV file as ``{column(header name): cell or None}``; header and cell-count problems as rows.

    ``required`` is checked against the renamed header once, so a file missing a column
    gets one message instead of one per row.
    """
    try:
        reader = csv.reader(decoded_lines(path), delimiter=delimiter)
        header = list(dict.fromkeys(column(name) for name in next(reader, [])))
        missing = [name for name in required if name not in header]
        if missing:
            yield FeedRow(1, problems=[f"header: missing column(s) {', '.join(missing)}"])
            return
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) > len(header):
                yield FeedRow(reader.line_num, problems=[f"{len(cells) - len(header)} more cell(s) than the header"])
                continue
            yield FeedRow(reader.line_num, blank_to_none(dict(zip(header, cells, strict=False))))
    except FeedError as exc:
        yield FeedRow(exc.line, problems=[str(exc)])
    except csv.Error as exc:  # e.g. a cell past the csv module's 131,072-character field limit: the file stops here
        yield FeedRow(reader.line_num or 1, problems=[f"unreadable row ({exc}); the rest of the file was not read"])
