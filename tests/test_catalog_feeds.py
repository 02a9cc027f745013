"""Real feeds in: Merchant Center TSV/XML, Shopify CSV, our JSONL with aliases; delta feeds; chunked resume.

Fixtures in tests/fixtures/feeds/ are hand-written the way merchants' exports look:
display-name categories and paths, extra columns, HTML bodies, prices with currency
text, Shopify variants under one handle. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from catalog.categories import category_name, category_names, parse_category, slugify
from catalog.embedding import LocalEmbedding, count_stale, embed_catalog, vector_is_current
from catalog.importer import CatalogFileError, ImportOptions, import_feed, import_file
from catalog.models import ImportJob, Product, ProductEmbedding
from catalog.progress import Progress
from catalog.vectors import dense_text, is_current
from shopctl.cli import cli
from shoprank import migrate
from shoprank.db import Database
from tests.shop_support import CountingEmbedder

FEEDS = Path(__file__).parent / "fixtures" / "feeds"


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    factory = None if request.param == "sqlite" else request.getfixturevalue("postgres_factory")
    url = f"sqlite:///{tmp_path / 'feeds.db'}" if factory is None else factory.create()
    migrate.upgrade(url)
    database = Database(url)
    yield database
    database.dispose()
    if factory is not None:
        factory.drop(url)


#: Parsing does not depend on the database: these run on SQLite only (each PostgreSQL database costs seconds).
sqlite_only = pytest.mark.parametrize("db", ["sqlite"], indirect=True)


def products(db) -> dict[str, Product]:
    with db.session() as session:
        found = {p.sku: p for p in session.scalars(select(Product))}
        session.expunge_all()
    return found


def test_merchant_center_tsv(db):
    report = import_file(db, FEEDS / "merchant.tsv", None, options=ImportOptions(language="en"))
    assert (report.fmt, report.inserted) == ("merchant-tsv", 3)
    assert report.warnings == [
        "field(s) outside the schema, kept as attributes: custom_label_0 (1 rows), shipping_label (1 rows)"
    ]
    stored = products(db)
    espresso = stored["MC-ESP-01"]
    assert (espresso.price, espresso.currency) == (Decimal("299.00"), "USD")  # sale_price wins
    assert espresso.attributes["regular_price"] == "349.00 USD" and espresso.attributes["shipping_label"] == "oversize"
    assert espresso.category == "coffee-makers" and espresso.stock == 1 and espresso.language == "en"
    assert espresso.description.startswith("<p>15-bar pump.</p><ul>")  # HTML kept; passages clean it
    mat = stored["MC-YOGA-BLU-S"]
    assert (mat.price, mat.currency, mat.stock, mat.category) == (Decimal("1249.50"), "USD", 0, "sports-fitness")
    assert mat.attributes["item_group_id"] == "YOGA-MAT" == stored["MC-YOGA-GRN-S"].attributes["item_group_id"]
    assert (stored["MC-YOGA-GRN-S"].price, stored["MC-YOGA-GRN-S"].currency) == (Decimal("29.90"), "EUR")
    with db.session() as session:
        assert category_name(session, "coffee-makers") == "Coffee Makers"
        assert category_name(session, "sports-fitness") == "Sports & Fitness"
        assert category_name(session, "running-shoes") == "Running shoes"  # never named: the slug's words
        assert set(category_names(session)) == {"coffee-makers", "sports-fitness"}


@sqlite_only
@pytest.mark.parametrize("name", ["merchant.xml", "merchant_atom.xml"])
def test_merchant_center_rss_and_atom(db, name):
    report = import_file(db, FEEDS / name, None, options=ImportOptions(language="en"))
    assert report.fmt == "merchant-xml" and report.inserted == 2
    stored = products(db)
    if name == "merchant.xml":
        kettle, tent = stored["RSS-KETTLE-1"], stored["RSS-TENT-2"]
        assert (kettle.title, kettle.brand, kettle.category, kettle.price, kettle.currency) == (
            "Gooseneck Kettle 1 L",
            "Pourfect",
            "kettles",
            Decimal("59.00"),
            "GBP",
        )
        assert "<b>temperature control</b>" in kettle.description and kettle.attributes["link"].endswith("/kettle")
        assert "energy_label (1 rows)" in report.warnings[0]
        assert (tent.price, tent.stock, tent.category) == (Decimal("149.99"), 0, "google-category-1013")
    else:
        lamp = stored["ATOM-LAMP-1"]
        assert (lamp.title, lamp.description, lamp.category) == (
            "Arc Floor Lamp",
            "Brass arc lamp, dimmable.",
            "floor-lamps",
        )
        assert lamp.attributes["link"] == "https://shop.example/lamp" and report.warnings == []


def test_shopify_variants_are_grouped_under_their_handle(db):
    report = import_file(db, FEEDS / "shopify.csv", None, options=ImportOptions(language="en", currency="USD"))
    assert report.fmt == "shopify" and report.inserted == 4  # 3 tee variants + 1 mug; the image-only row adds none
    assert "Care Instructions (1 rows)" in report.warnings[0]
    stored = products(db)
    tees = [stored[s] for s in ("TEE-RED-M", "TEE-RED-L", "TEE-BLU-M")]
    assert [t.title for t in tees] == [
        "Organic Cotton Tee - Red / M",
        "Organic Cotton Tee - Red / L",
        "Organic Cotton Tee - Blue / M",
    ]
    assert {(t.brand, t.category, t.description[:8]) for t in tees} == {("Loomwell", "t-shirts", "<p>Soft ")}
    assert {t.attributes["item_group_id"] for t in tees} == {"organic-tee"}
    assert [t.stock for t in tees] == [12, 0, 5]  # oversold (-2) counts as none
    assert [t.price for t in tees] == [Decimal("25.00"), Decimal("25.00"), Decimal("27.00")]
    assert tees[0].attributes["regular_price"] == "30.00" and "regular_price" not in tees[2].attributes
    assert tees[2].image == "https://cdn.example/tee-blue.jpg" and tees[1].image == "https://cdn.example/tee-red.jpg"
    assert (tees[0].attributes["Color"], tees[0].attributes["Size"]) == ("Red", "M")
    mug = stored["MUG-350"]
    assert (mug.title, mug.category, mug.attributes.get("gtin")) == ("Stoneware Mug", "mugs", "4006381333931")
    with db.session() as session:
        assert category_name(session, "mugs") == "Mugs"


@sqlite_only
def test_marketplace_jsonl_with_aliases_and_display_names(db):
    """The export refused in issue 12: ``lang``, ``id``, ``name``, ``Baby``, extra fields — now imported."""
    report = import_file(db, FEEDS / "marketplace.jsonl", None)
    assert report.inserted == 3 and "seller_rating (2 rows)" in report.warnings[0]
    stored = products(db)
    assert (stored["MK-BABY-001"].category, stored["MK-BABY-001"].language, stored["MK-BABY-001"].stock) == (
        "baby",
        "en",
        7,
    )
    assert stored["MK-BABY-001"].attributes == {"seller_rating": 4.8}
    skillet = stored["MK-KIT-002"]
    assert (skillet.price, skillet.currency, skillet.category) == (Decimal("39.90"), "EUR", "cookware")
    assert stored["MK-ZH-003"].category.startswith("c-")
    with db.session() as session:
        assert category_name(session, stored["MK-ZH-003"].category) == "婴儿用品"


def test_category_names_and_paths_become_slugs():
    assert parse_category("sports-fitness").slug == "sports-fitness"
    ref = parse_category("Home & Garden > Kitchen > Coffee Makers")
    assert (ref.slug, ref.name, ref.path) == (
        "coffee-makers",
        "Coffee Makers",
        "Home & Garden > Kitchen > Coffee Makers",
    )
    assert slugify("Crème Brûlée & Co.") == "creme-brulee-co" and slugify("Baby") == "baby"
    assert slugify("婴儿用品") == slugify("婴儿用品") != slugify("宠物用品")


@sqlite_only
def test_bad_rows_get_line_errors_and_feeds_without_language_are_refused(db, tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text(
        "id\ttitle\tprice\tproduct_type\n"
        "A-1\tGood\t10.00 USD\tToys\n"
        "A-2\tBad price\tcheap USD\tToys\n"
        "A-3\tNo currency\t10.00\tToys\n"
        "A-1\tAgain\t5.00 USD\tToys\n",
        encoding="utf-8",
    )
    with pytest.raises(CatalogFileError) as caught:
        import_feed(db, bad, ImportOptions(language="en"))
    errors = {e.line: " ".join(e.problems) for e in caught.value.errors}
    assert set(errors) == {3, 4, 5}
    assert "price: 'cheap USD'" in errors[3] and "currency: required" in errors[4] and "line 2" in errors[5]
    assert products(db) == {}
    with pytest.raises(ValueError, match="--language"):
        import_feed(db, FEEDS / "merchant.tsv", ImportOptions())
    with pytest.raises(ValueError, match="--currency"):
        import_feed(db, FEEDS / "shopify.csv", ImportOptions(language="en"))

    report = import_feed(db, bad, ImportOptions(language="en", skip_invalid=True))
    assert (report.inserted, report.skipped, len(report.errors)) == (1, 3, 3)

    orphan = tmp_path / "orphan.csv"
    orphan.write_text("Handle,Title,Variant Price\nmug,,5.00\n", encoding="utf-8")
    with pytest.raises(CatalogFileError) as caught:
        import_feed(db, orphan, ImportOptions(language="en", currency="USD"))
    assert "not right after its product row" in str(caught.value.errors[0])


def test_dense_text_leaves_out_price_and_stock():
    product = {"title": "Mug", "brand": "Claybird", "category": "mugs", "description": "<p>350 ml</p>", "price": 5}
    text = dense_text(product)
    assert text == "Title: Claybird Mug\nCategory: mugs\nDescription: 350 ml"
    assert dense_text({**product, "price": 9, "stock": 0, "currency": "EUR"}) == text
    assert "Kitchen > Mugs" in dense_text({**product, "category_path": "Kitchen > Mugs"})
    offer = {"availability": "in stock", "regular_price": "9.00 USD", "link": "https://x.example/m", "rating": "4.5"}
    described = dense_text({**product, "attributes": {"compatible_with": "Moka pot", "color": "Blue", **offer}})
    assert described.endswith("Description: 350 ml (color: Blue; compatible_with: Moka pot)")


def test_price_and_stock_changes_never_re_embed(db, tmp_path):
    embed = CountingEmbedder()
    import_file(db, FEEDS / "merchant.tsv", embed, options=ImportOptions(language="en"))
    assert len(embed.texts) == 3 and all("Price" not in t and "299" not in t for t in embed.texts)
    with db.session() as session:
        before = {e.product_id: (e.text_hash, e.vector) for e in session.scalars(select(ProductEmbedding))}
        current = session.scalar(
            select(func.count()).select_from(Product).join(ProductEmbedding).where(vector_is_current())
        )
    assert current == 3

    delta = CountingEmbedder()
    report = import_file(db, FEEDS / "prices.csv", delta, options=ImportOptions(fmt="csv", delta=True))
    assert (report.updated, report.unchanged, report.skipped) == (2, 0, 1)
    assert "title (1 rows)" in report.warnings[0] and "NOT-IN-CATALOG" in report.warnings[1]
    stored = products(db)
    assert (
        stored["MC-ESP-01"].price == Decimal("279.00") and stored["MC-ESP-01"].title == "Barista Pro Espresso Machine"
    )
    assert stored["MC-YOGA-BLU-S"].stock == 1 and stored["MC-YOGA-BLU-S"].attributes["availability"] == "in stock"
    assert delta.texts == []  # not one text embedded
    with db.session() as session:
        after = {e.product_id: (e.text_hash, e.vector) for e in session.scalars(select(ProductEmbedding))}
        assert count_stale(session) == 0
    assert after == before

    # A full feed whose only changes are price and stock: updated rows, still no embedding.
    changed = (FEEDS / "merchant.tsv").read_text(encoding="utf-8").replace("299.00 USD", "289.00 USD")
    changed = changed.replace("in stock", "out of stock")
    full = CountingEmbedder()
    report = import_file(db, _write(tmp_path / "m2.tsv", changed), full, options=ImportOptions(language="en"))
    assert report.updated == 2 and full.texts == []
    # A text change does re-embed exactly that product.
    retitled = changed.replace(
        "CloudFlex Yoga Mat\tNon-slip mat, 6 mm.\thttps://shop.example/mat\thttps://shop.example/img/mat.jpg",
        "CloudFlex Travel Mat\tNon-slip mat, 6 mm.\thttps://shop.example/mat\thttps://shop.example/img/mat.jpg",
    )
    report = import_file(db, _write(tmp_path / "m3.tsv", retitled), full, options=ImportOptions(language="en"))
    assert report.updated == 1 and len(full.texts) == 1 and "CloudFlex Travel Mat" in full.texts[0]


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


class StopAfter(Progress):
    """Interrupts the writing stage after ``chunks`` committed chunks, like a killed process would."""

    def __init__(self, chunks: int) -> None:
        self.chunks = chunks
        self.writing = False

    def stage(self, name, total):
        self.writing = name == "writing"

    def advance(self, count):
        if self.writing and count:
            self.chunks -= 1
            if self.chunks < 0:
                raise KeyboardInterrupt


def test_an_interrupted_import_resumes_after_its_last_committed_chunk(db, tmp_path):
    rows = [
        {"sku": f"R-{i:03d}", "title": f"Thing {i}", "price": "1.00 USD", "category": "Toys & Games", "lang": "en"}
        for i in range(25)
    ]
    path = _write(tmp_path / "big.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    options = ImportOptions(chunk_size=10)
    with pytest.raises(KeyboardInterrupt):
        import_feed(db, path, options, StopAfter(chunks=1))
    assert len(products(db)) == 20  # the interrupted chunk is not there; the two before it are whole
    with db.session() as session:
        job = session.scalars(select(ImportJob)).one()
        assert (job.status, job.rows_done, job.inserted) == ("failed", 20, 20) and "KeyboardInterrupt" in job.error

    report = import_feed(db, path, options)
    assert (report.resumed_from, report.inserted, report.unchanged) == (20, 5, 0)
    assert len(products(db)) == 25
    with db.session() as session:
        job = session.scalars(select(ImportJob)).one()
        assert (job.status, job.rows_done, job.inserted) == ("done", 25, 25)
    again = import_feed(db, path, options)  # a finished job is not resumed: a new one finds nothing to change
    assert (again.resumed_from, again.unchanged) == (0, 25)


@sqlite_only
def test_stored_vectors_are_current_only_for_the_products_current_text(db):
    embed = CountingEmbedder()
    import_file(db, FEEDS / "merchant_atom.xml", embed, options=ImportOptions(language="en"))
    with db.session() as session:
        product, stored = session.execute(select(Product, ProductEmbedding).join(ProductEmbedding)).first()
        assert is_current(stored.model_id, stored.passage_format_version, stored.text_hash, product.dense_hash)
        assert not is_current(stored.model_id, 2, stored.text_hash, product.dense_hash)  # old passage-format vectors
        assert not is_current(stored.model_id, stored.passage_format_version, stored.text_hash, None)
        product.dense_hash = None  # a row imported before dense_hash existed: stale until the embed stage runs
    with db.session() as session:
        assert count_stale(session) == 1
    assert embed_catalog(db, LocalEmbedding(embed)).embedded == 1
    with db.session() as session:
        assert count_stale(session) == 0


def test_cli_imports_feeds_without_embedding_then_embeds(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    env = {"SHOPRANK_DATABASE_URL": url}
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "upgrade"], env=env).exit_code == 0
    result = runner.invoke(
        cli,
        ["catalog", "import", str(FEEDS / "shopify.csv"), "--language", "en", "--currency", "USD", "--no-embed"],
        env=env,
    )
    assert result.exit_code == 0, result.output
    assert "4 new" in result.output and "not embedded" in result.output and "Care Instructions" in result.output
    refused = runner.invoke(cli, ["catalog", "import", str(FEEDS / "merchant.tsv")], env=env)
    assert refused.exit_code == 1 and "--language" in refused.output
    result = runner.invoke(cli, ["catalog", "embed", "--embed-on", "local"], env=env)
    assert result.exit_code == 0, result.output
    assert "4 embedded on this process" in result.output
    db = Database(url)
    with db.session() as session:
        assert count_stale(session) == 0
    db.dispose()


def test_xml_feeds_stream_in_bounded_memory(tmp_path):
    """Items already read are dropped from the tree: memory does not grow with the number of items."""
    import tracemalloc

    from catalog.feeds.merchant import xml_rows

    def feed(items: int) -> Path:
        path = tmp_path / f"feed-{items}.xml"
        with path.open("w", encoding="utf-8") as handle:
            handle.write('<?xml version="1.0"?><rss xmlns:g="http://base.google.com/ns/1.0"><channel><title>t</title>')
            for i in range(items):
                handle.write(
                    f"<item><g:id>X-{i}</g:id><g:title>Product {i} {'word ' * 40}</g:title>"
                    f"<g:price>{i}.00 USD</g:price><g:product_type>A &gt; B</g:product_type></item>"
                )
            handle.write("</channel></rss>")
        return path

    peaks = {}
    for items in (300, 3000):
        path = feed(items)
        tracemalloc.start()
        assert sum(1 for _ in xml_rows(path)) == items
        peaks[items] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peaks[3000] < 2 * peaks[300] and peaks[3000] < path.stat().st_size / 4, peaks


def test_stored_vector_is_current_reads_the_products_dense_hash():
    from catalog.vectors import DENSE_TEXT_VERSION, EMBEDDING_MODEL_ID, dense_hash, stored_vector_is_current

    product = {"title": "Mug", "category": "mugs", "description": "350 ml", "price": 5}
    digest = dense_hash(product)
    assert stored_vector_is_current(product, EMBEDDING_MODEL_ID, DENSE_TEXT_VERSION, digest)
    assert stored_vector_is_current({**product, "price": 7, "stock": 0}, EMBEDDING_MODEL_ID, DENSE_TEXT_VERSION, digest)
    assert not stored_vector_is_current({**product, "title": "Cup"}, EMBEDDING_MODEL_ID, DENSE_TEXT_VERSION, digest)
    assert stored_vector_is_current({"dense_hash": "abc"}, EMBEDDING_MODEL_ID, DENSE_TEXT_VERSION, "abc")
    assert not stored_vector_is_current({**product, "dense_hash": None}, EMBEDDING_MODEL_ID, DENSE_TEXT_VERSION, digest)
    assert not stored_vector_is_current(product, EMBEDDING_MODEL_ID, 2, digest)  # vectors of the old passage
