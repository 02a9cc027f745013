"""Catalog import: strict validation (every bad line reported, nothing written), upsert by sku, embeddings reuse."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from catalog.embedding import LocalEmbedding, embed_catalog
from catalog.importer import CatalogFileError, import_file, read_catalog
from catalog.models import Product, ProductEmbedding
from catalog.vectors import EMBEDDING_DIM, EMBEDDING_MODEL_ID
from shopctl.cli import cli
from shoprank import migrate
from shoprank.db import Database
from tests.shop_support import MINI_CATALOG, CountingEmbedder

ROWS = [json.loads(line) for line in MINI_CATALOG.read_text(encoding="utf-8").splitlines()][:6]


@pytest.fixture
def db(tmp_path):
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    migrate.upgrade(url)
    database = Database(url)
    yield database
    database.dispose()


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    return path


def write_csv(path: Path, rows) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: json.dumps(v, ensure_ascii=False) if k == "attributes" else v for k, v in row.items()})
    return path


def count(db, model) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(model))


@pytest.mark.parametrize("writer", [write_jsonl, write_csv])
def test_jsonl_and_csv_import_the_same_products(db, tmp_path, writer):
    path = writer(tmp_path / ("c.jsonl" if writer is write_jsonl else "c.csv"), ROWS)
    embed = CountingEmbedder()
    report = import_file(db, path, embed)
    assert (report.inserted, report.updated, report.embedded) == (6, 0, 6)
    with db.session() as session:
        stored = {p.sku: p for p in session.scalars(select(Product))}
        embeddings = session.scalars(select(ProductEmbedding)).all()
    assert set(stored) == {r["sku"] for r in ROWS}
    accessory = next(r for r in ROWS if r["attributes"])
    assert stored[accessory["sku"]].attributes == accessory["attributes"]
    assert str(stored["HP-SONY-XM5"].price) == "399.00" and stored["HP-CASE-ZH"].language == "zh"
    assert {e.model_id for e in embeddings} == {EMBEDDING_MODEL_ID}
    assert all(len(e.vector) == EMBEDDING_DIM * 4 for e in embeddings)


def test_reimport_upserts_by_sku_and_reembeds_only_changed_products(db, tmp_path):
    import_file(db, write_jsonl(tmp_path / "a.jsonl", ROWS), CountingEmbedder())
    changed = [dict(r) for r in ROWS]
    changed[0]["title"] = changed[0]["title"] + " (2024 edition)"
    changed[1]["stock"] = 3  # stock is not in the passage: no re-embedding needed
    embed = CountingEmbedder()
    report = import_file(db, write_jsonl(tmp_path / "b.jsonl", changed), embed)
    assert (report.inserted, report.updated, report.unchanged, report.embedded) == (0, 2, 4, 1)
    assert "(2024 edition)" in embed.texts[0]
    assert count(db, Product) == 6 and count(db, ProductEmbedding) == 6
    assert import_file(db, write_jsonl(tmp_path / "c.jsonl", changed), CountingEmbedder()).embedded == 0


def test_every_bad_row_is_reported_and_nothing_is_written(db, tmp_path):
    rows = [dict(r) for r in ROWS]
    rows[1]["price"] = -5
    rows[2]["language"] = "klingon"
    rows[3]["currency"] = "DOLLARS"
    rows[4]["sku"] = rows[0]["sku"]
    rows[5]["title"] = " "  # (an unknown field like "pirce" is no longer an error: it is kept and warned about)
    path = write_jsonl(tmp_path / "bad.jsonl", rows)
    with path.open("a", encoding="utf-8") as handle:
        handle.write("{not json\n")
    with pytest.raises(CatalogFileError) as caught:
        import_file(db, path, CountingEmbedder())
    errors = {e.line: " ".join(e.problems) for e in caught.value.errors}
    assert set(errors) == {2, 3, 4, 5, 6, 7}
    assert "price" in errors[2] and "language" in errors[3] and "currency" in errors[4]
    assert "already appears on line 1" in errors[5] and "title: required" in errors[6] and "invalid JSON" in errors[7]
    assert count(db, Product) == 0


def test_a_failure_while_embedding_keeps_the_products_and_a_rerun_embeds_them(db, tmp_path):
    """Embedding is its own stage: rows stay committed (lexically searchable), vectors land on the next run."""

    def broken(texts):
        raise RuntimeError("embedding engine crashed")

    with pytest.raises(RuntimeError, match="crashed"):
        import_file(db, write_jsonl(tmp_path / "a.jsonl", ROWS), broken)
    assert count(db, Product) == 6 and count(db, ProductEmbedding) == 0
    embed = CountingEmbedder()
    assert embed_catalog(db, LocalEmbedding(embed)).embedded == 6 and len(embed.texts) == 6
    assert count(db, ProductEmbedding) == 6
    assert embed_catalog(db, LocalEmbedding(embed)).embedded == 0


def test_non_utf8_and_csv_header_problems_are_reported(tmp_path):
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(json.dumps(ROWS[0]).encode() + b"\n" + '{"title": "Caf\xe9"}'.encode("latin-1") + b"\n")
    with pytest.raises(CatalogFileError) as caught:
        read_catalog(latin)
    assert caught.value.errors[0].line == 2 and "UTF-8" in caught.value.errors[0].problems[0]

    header = tmp_path / "h.csv"
    header.write_text("sku,title,cost\nA,Thing,3\n", encoding="utf-8")
    with pytest.raises(CatalogFileError) as caught:
        read_catalog(header)
    message = " ".join(caught.value.errors[0].problems)
    assert "missing column(s) price" in message and "cost" not in message  # extra columns only warn


def test_cli_imports_with_progress_and_rejects_bad_files(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    env = {"SHOPRANK_DATABASE_URL": url}
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "upgrade"], env=env).exit_code == 0
    good = write_jsonl(tmp_path / "good.jsonl", ROWS[:2])
    result = runner.invoke(cli, ["catalog", "import", str(good)], env=env)
    assert result.exit_code == 0, result.output
    assert "2 new" in result.output and "2 embedded" in result.output

    bad = write_jsonl(tmp_path / "bad.jsonl", [{**ROWS[0], "sku": "NEW-1"}, {**ROWS[1], "price": "cheap"}])
    result = runner.invoke(cli, ["catalog", "import", str(bad)], env=env)
    assert result.exit_code == 1
    assert "line 2: price: 'cheap' is not a number" in result.output and "nothing was imported" in result.output
    db = Database(url)
    assert count(db, Product) == 2
    db.dispose()


# --- issue 22 items 5-7: the importer applies the storable-text rule and the APIs' limits, before writing --------


def _many_rows(n: int) -> list[dict]:
    base = ROWS[0]
    return [dict(base, sku=f"HARD-{i}", title=f"{base['title']} {i}") for i in range(n)]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("title", "Kopfhörer\x00"),
        ("description", "bad\x00 text"),
        ("brand", "Ac\x00me"),
        ("category", "Elec\x00tronics"),
        ("title", "ESC \x1b[31m red"),
        ("title", "DEL \x7f"),
        ("title", "lone \ud800 surrogate"),
    ],
)
def test_unstorable_text_in_any_field_rejects_the_whole_file(db, tmp_path, field, value):
    rows = _many_rows(9)
    rows[6][field] = value  # line 7
    path = tmp_path / "nul.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")  # \u escapes, as feeds do
    from catalog.importer import ImportOptions

    with pytest.raises(CatalogFileError) as caught:
        import_file(db, path, CountingEmbedder(), options=ImportOptions(chunk_size=2))
    errors = {e.line: " ".join(e.problems) for e in caught.value.errors}
    assert set(errors) == {7} and field in errors[7] and "U+" in errors[7], errors
    assert count(db, Product) == 0


@pytest.mark.parametrize(
    "attributes",
    [
        {"colour": "red\x00"},
        {"bad\x00key": "x"},
        {"size": "x" * 20_000},
        {f"a{i}": i for i in range(200)},
        {"deep": json.loads("[" * 50 + "]" * 50)},
        {"n": float("inf")},
    ],
    ids=["nul-value", "nul-key", "huge-value", "too-many", "too-deep", "infinite"],
)
def test_attributes_are_bounded_like_the_apis(db, tmp_path, attributes):
    rows = _many_rows(3)
    rows[1]["attributes"] = attributes
    path = tmp_path / "attrs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    with pytest.raises(CatalogFileError) as caught:
        import_file(db, path, CountingEmbedder())
    errors = {e.line: " ".join(e.problems) for e in caught.value.errors}
    assert set(errors) == {2} and "attributes" in errors[2], errors
    assert count(db, Product) == 0


def test_hostile_feeds_are_line_numbered_problems_not_tracebacks(db, tmp_path):
    from catalog.importer import ImportOptions

    header = "id\ttitle\tprice\tproduct_type\n"
    tsv = tmp_path / "big.tsv"
    tsv.write_text(header + "A-1\tok\t1.00 EUR\tAudio\n" + "A-2\t" + "x" * 140_000 + "\t1.00 EUR\tAudio\n")
    with pytest.raises(CatalogFileError) as caught:
        import_file(db, tsv, CountingEmbedder(), options=ImportOptions(fmt="merchant-tsv", language="en"))
    assert [e.line for e in caught.value.errors] == [3], caught.value.errors
    deep = tmp_path / "deep.jsonl"
    deep.write_text(json.dumps(ROWS[0]) + "\n" + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(CatalogFileError) as caught:
        import_file(db, deep, CountingEmbedder())
    assert [e.line for e in caught.value.errors] == [2] and "deep" in str(caught.value.errors[0])
    surrogate = tmp_path / "surrogate.jsonl"
    surrogate.write_text(json.dumps(ROWS[0]) + "\n" + json.dumps(dict(ROWS[1], sku="SUR-\ud800")) + "\n")
    with pytest.raises(CatalogFileError) as caught:
        import_file(db, surrogate, CountingEmbedder())
    assert [e.line for e in caught.value.errors] == [2] and "sku" in str(caught.value.errors[0])
    assert count(db, Product) == 0


def test_an_import_leaves_fresh_planner_statistics(db, tmp_path):
    """Issue 22: plans must not wait for autovacuum; the import runs ANALYZE (SQLite's fills sqlite_stat1)."""
    from sqlalchemy import text

    import_file(db, write_jsonl(tmp_path / "ok.jsonl", _many_rows(5)), CountingEmbedder())
    with db.engine.connect() as connection:
        analysed = connection.execute(text("SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'products'")).scalar()
    assert analysed and analysed > 0
