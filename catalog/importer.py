"""``shoprank catalog import FILE``: check the whole feed, then commit it in chunks that a re-run resumes.

Pass 1 streams the file and validates every row (duplicates included) without
writing: a file with bad rows is refused with every problem listed (line and field)
and nothing is written — unless ``skip_invalid`` asks to import the good rows and
report the bad ones. Pass 2 streams it again and commits ``chunk_size`` products per
transaction, recording in ``import_jobs`` how many of the file's rows are committed.
An interrupted import therefore leaves whole committed chunks visible, never half a
chunk, and running the same file again resumes after the last committed chunk.

Embedding is a separate stage (``catalog.embedding``): products are
searchable lexically as soon as their chunk commits, densely once their vector lands.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
from sqlalchemy import select

from catalog.delta import DeltaRecord, ignored_fields, validate_delta, write_deltas
from catalog.feeds import NEEDS_CURRENCY, NEEDS_LANGUAGE, detect_format, feed_rows
from catalog.models import ImportJob
from catalog.progress import Progress
from catalog.validation import ProductRecord, RowProblems, extra_fields, validate_row
from catalog.writer import ChunkCounts, write_products
from shoprank.db import Database, analyze, utcnow

DEFAULT_CHUNK_SIZE = 1000
#: Problems listed in full; beyond this only the count is kept (a broken 1M-row file must not fill memory).
MAX_LISTED_ERRORS = 1000
Record = ProductRecord | DeltaRecord


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    problems: list[str]

    def __str__(self) -> str:
        return f"line {self.line}: " + "; ".join(self.problems)


class CatalogFileError(ValueError):
    """The file was rejected before anything was written; ``errors`` has the bad lines (the first 1,000)."""

    def __init__(self, path: str, errors: list[RowError], count: int | None = None) -> None:
        count = len(errors) if count is None else count
        super().__init__(f"{path}: {count} invalid row(s); nothing was imported")
        self.path = path
        self.errors = errors
        self.count = count


@dataclass(frozen=True)
class ImportOptions:
    fmt: str | None = None
    language: str | None = None  # for feeds without a language column
    currency: str | None = None  # for feeds without a currency (Shopify)
    delta: bool = False  # price/stock/availability only
    skip_invalid: bool = False  # import the valid rows, report the others
    chunk_size: int = DEFAULT_CHUNK_SIZE

    def defaults(self) -> dict[str, str]:
        return {k: v for k, v in (("language", self.language), ("currency", self.currency)) if v}


@dataclass
class ImportReport:
    fmt: str = ""
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0  # invalid rows (with skip_invalid) and delta rows for unknown skus
    embedded: int = 0
    resumed_from: int = 0  # rows already committed by an earlier, interrupted run
    job_id: int | None = None
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list, repr=False)

    def summary(self) -> str:
        resumed = f" (resumed after row {self.resumed_from})" if self.resumed_from else ""
        skipped = f", {self.skipped} skipped" if self.skipped else ""
        return (
            f"{self.rows} rows{resumed}: {self.inserted} new, {self.updated} updated, {self.unchanged} unchanged"
            f"{skipped}; {self.embedded} embedded in {self.seconds:.1f} s"
        )


@dataclass
class FeedCheck:
    fmt: str
    rows: int = 0
    errors: list[RowError] = field(default_factory=list)
    error_count: int = 0
    duplicate_lines: set[int] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)


def file_fingerprint(path: Path, options: ImportOptions, fmt: str) -> str:
    """Identifies one (file content, interpretation) pair: a re-run with the same pair resumes its job."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    digest.update(repr((fmt, options.delta, options.language, options.currency, options.skip_invalid)).encode())
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class _Row:
    line: int
    record: Record | None
    error: RowError | None
    extras: list[str]  # fields outside the schema (kept as attributes, or ignored by a delta feed)


def _validated(path: Path, fmt: str, options: ImportOptions) -> Iterator[_Row]:
    defaults = options.defaults()
    for row in feed_rows(path, fmt, options.delta):
        if row.problems or row.fields is None:
            yield _Row(row.line, None, RowError(row.line, row.problems or ["unreadable row"]), [])
            continue
        extras = ignored_fields(row.fields) if options.delta else extra_fields(row.fields)
        try:
            record = validate_delta(row.fields) if options.delta else validate_row(row.fields, defaults)
        except RowProblems as exc:
            yield _Row(row.line, None, RowError(row.line, exc.problems), extras)
            continue
        yield _Row(row.line, record, None, extras)


def _require_defaults(fmt: str, options: ImportOptions) -> None:
    if fmt in NEEDS_LANGUAGE and not options.language and not options.delta:
        raise ValueError(f"{fmt} feeds carry no language per product; pass --language (e.g. --language en)")
    if fmt in NEEDS_CURRENCY and not options.currency and not options.delta:
        raise ValueError(f"{fmt} exports carry no currency; pass --currency (e.g. --currency USD)")


def check_feed(path: Path, options: ImportOptions, progress: Progress | None = None) -> FeedCheck:
    """Pass 1: every row validated, duplicates found, extra columns counted; nothing written.

    Memory stays bounded: 12 bytes per row for the duplicate check (a sorted array of
    sku hashes and lines), at most ``MAX_LISTED_ERRORS`` problems kept in full.
    """
    fmt = detect_format(path, options.fmt)
    _require_defaults(fmt, options)
    check = FeedCheck(fmt)
    extras: Counter[str] = Counter()
    unknown_stock = 0
    hashes = _GrowingArray(np.uint64)
    lines = _GrowingArray(np.uint32)
    progress = progress or Progress()
    progress.stage("checking", None)
    for row in _validated(path, fmt, options):
        check.rows += 1
        extras.update(row.extras)
        if row.error is not None:
            _add_error(check, row.error)
        else:
            assert row.record is not None
            if isinstance(row.record, ProductRecord) and row.record.stock is None:
                unknown_stock += 1
            digest = hashlib.blake2b(row.record.sku.encode(), digest_size=8).digest()
            hashes.append(int.from_bytes(digest, "little"))
            lines.append(row.line)
        if check.rows % 1000 == 0:
            progress.advance(1000)
    progress.advance(check.rows % 1000)
    _find_duplicates(check, hashes.array(), lines.array())
    if extras:
        kept = "ignored" if options.delta else "kept as attributes"
        listed = ", ".join(f"{name} ({count} rows)" for name, count in sorted(extras.items()))
        check.warnings.append(f"field(s) outside the schema, {kept}: {listed}")
    if unknown_stock:
        check.warnings.append(unknown_stock_warning(unknown_stock))
    if check.rows == 0 and not check.error_count:
        _add_error(check, RowError(1, ["the file has no products"]))
    return check


def unknown_stock_warning(count: int) -> str:
    """One warning per file (not per row): a stock-less feed is common and not an error, but the operator
    should know that these products show no stock badge and stay buyable (``catalog.stock``)."""
    return (
        f"{count} product(s) had no stock information (no stock or availability value) and were imported as "
        "availability unknown: buyable, shown without a stock badge, kept by 'in stock only'"
    )


def _add_error(check: FeedCheck, error: RowError) -> None:
    check.error_count += 1
    if len(check.errors) < MAX_LISTED_ERRORS:
        check.errors.append(error)


def _find_duplicates(check: FeedCheck, hashes: np.ndarray, lines: np.ndarray) -> None:
    """A sku seen again is an error on the later line, naming the first one."""
    if hashes.size < 2:
        return
    order = np.argsort(hashes, kind="stable")
    ordered = hashes[order]
    repeats = np.nonzero(ordered[1:] == ordered[:-1])[0] + 1
    if repeats.size == 0:
        return
    first_of_run: dict[int, int] = {}
    for position in repeats.tolist():
        value = int(ordered[position])
        first = first_of_run.setdefault(value, int(lines[order[position - 1]]))
        line = int(lines[order[position]])
        check.duplicate_lines.add(line)
        _add_error(check, RowError(line, [f"sku already appears on line {first}"]))
    check.errors.sort(key=lambda e: e.line)


class _GrowingArray:
    """An append-only numpy array: 8 (or 4) bytes per value instead of a Python int's ~32."""

    def __init__(self, dtype: Any) -> None:
        self._data = np.empty(1024, dtype=dtype)
        self._size = 0

    def append(self, value: int) -> None:
        if self._size == self._data.size:
            self._data = np.resize(self._data, self._data.size * 2)
        self._data[self._size] = value
        self._size += 1

    def array(self) -> np.ndarray:
        return self._data[: self._size]


def read_catalog(path: Path, fmt: str | None = None, **options: Any) -> list[ProductRecord]:
    """Every row validated into a list (small files, tests); ``CatalogFileError`` lists every problem."""
    opts = ImportOptions(fmt=fmt, **options)
    check = check_feed(path, opts)
    if check.error_count:
        raise CatalogFileError(str(path), check.errors, check.error_count)
    return [row.record for row in _validated(path, check.fmt, opts) if isinstance(row.record, ProductRecord)]


def _open_job(db: Database, path: Path, fingerprint: str, check: FeedCheck, options: ImportOptions) -> ImportJob:
    """The unfinished job for this exact file and options (to resume), or a new one."""
    with db.session() as session:
        job = session.scalars(
            select(ImportJob)
            .where(ImportJob.fingerprint == fingerprint, ImportJob.status != "done")
            .order_by(ImportJob.id.desc())
            .limit(1)
        ).first()
        now = utcnow()
        if job is None:
            job = ImportJob(
                source=str(path)[-1000:],
                fingerprint=fingerprint,
                format=check.fmt,
                mode="delta" if options.delta else "full",
                status="writing",
                rows_total=check.rows,
                rows_done=0,
                inserted=0,
                updated=0,
                unchanged=0,
                skipped=0,
                warnings=check.warnings,
                started_at=now,
                updated_at=now,
            )
            session.add(job)
        else:
            job.status = "writing"
            job.error = None
            job.updated_at = now
        session.flush()
        session.expunge(job)
        return job


def _commit_chunk(db: Database, job_id: int, chunk: Sequence[Record], rows_done: int, report: ImportReport) -> None:
    """Write one chunk and the job's progress in the same transaction: both land, or neither."""
    now = utcnow()
    with db.session() as session:
        if chunk and isinstance(chunk[0], DeltaRecord):
            deltas = cast(Sequence[DeltaRecord], chunk)  # a chunk is one feed's rows: all of one kind
            updated, unchanged, unknown = write_deltas(session, deltas, now)
            counts = ChunkCounts(0, updated, unchanged)
            if unknown:
                report.skipped += len(unknown)
                if len(report.warnings) < 20:
                    report.warnings.append(f"sku(s) not in the catalog, skipped: {', '.join(unknown[:10])}")
        else:
            products = cast(Sequence[ProductRecord], chunk)  # one kind per chunk, and not deltas
            counts = write_products(session, products, now) if chunk else ChunkCounts()
        job = session.get(ImportJob, job_id)
        assert job is not None
        job.rows_done = rows_done
        job.inserted += counts.inserted
        job.updated += counts.updated
        job.unchanged += counts.unchanged
        job.skipped = report.skipped
        job.updated_at = now
    report.inserted += counts.inserted
    report.updated += counts.updated
    report.unchanged += counts.unchanged


def _finish_job(db: Database, job_id: int, status: str, error: str | None = None) -> None:
    with db.session() as session:
        job = session.get(ImportJob, job_id)
        if job is not None:
            job.status = status
            job.error = error[:2000] if error else None
            job.updated_at = utcnow()


def import_feed(db: Database, path: Path, options: ImportOptions, progress: Progress | None = None) -> ImportReport:
    """Check ``path``, then commit it chunk by chunk (resuming an interrupted run of the same file)."""
    started = time.perf_counter()
    progress = progress or Progress()
    check = check_feed(path, options, progress)
    if check.error_count and not options.skip_invalid:
        raise CatalogFileError(str(path), check.errors, check.error_count)
    report = ImportReport(fmt=check.fmt, rows=check.rows, warnings=list(check.warnings), errors=check.errors)
    job = _open_job(db, path, file_fingerprint(path, options, check.fmt), check, options)
    report.job_id, report.resumed_from = job.id, job.rows_done
    report.skipped = job.skipped
    progress.stage("writing", check.rows)
    progress.advance(job.rows_done)
    chunk: list[Record] = []
    position = 0
    try:
        for row in _validated(path, check.fmt, options):
            position += 1
            if position <= job.rows_done:
                continue
            if row.error is not None or row.line in check.duplicate_lines:
                report.skipped += 1
            else:
                assert row.record is not None
                chunk.append(row.record)
            if len(chunk) >= options.chunk_size:
                _commit_chunk(db, job.id, chunk, position, report)
                progress.advance(len(chunk))
                chunk = []
        _commit_chunk(db, job.id, chunk, position, report)
        progress.advance(len(chunk))
    except BaseException as exc:
        _finish_job(db, job.id, "failed", f"{type(exc).__name__}: {exc}")
        raise
    _finish_job(db, job.id, "done")
    analyze(db, ("products", "import_jobs"))  # fresh planner statistics, whatever autovacuum does
    report.seconds = time.perf_counter() - started
    return report


Embed = Callable[[Sequence[str]], np.ndarray]


def import_file(
    db: Database,
    path: Path,
    embed: Embed | None,
    fmt: str | None = None,
    *,
    options: ImportOptions | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Import ``path`` and, unless ``embed`` is None, embed every product whose vector is not current, in-process."""
    from catalog.embedding import LocalEmbedding, embed_catalog

    started = time.perf_counter()
    options = options or ImportOptions(fmt=fmt)
    report = import_feed(db, path, options, progress)
    if embed is not None:
        report.embedded = embed_catalog(db, LocalEmbedding(embed), progress=progress).embedded
    report.seconds = time.perf_counter() - started
    return report
