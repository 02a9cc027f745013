"""Lexical matching shoppers expect (issue 21, item 3): Snowball stems across inflections, compound words
matching their parts, typo tolerance with "did you mean", and none of it touching model numbers or CJK.

Small synthetic catalogs in several languages go through the real build (``search.index_files``) and the
real first stage; the assertions read the lexical retriever's own hits, so random vectors cannot help.
"""

from __future__ import annotations

import numpy as np
import pytest

from catalog.vectors import embedder
from search.compounds import split_compound
from search.index import CatalogIndex
from search.lexicon import VocabularyBuilder, document_terms
from search.spelling import Speller, common_word, typos
from search.stemming import query_language, stem
from search.tokenize import tokenize_forms
from shoprank import migrate
from shoprank.db import Database
from tests.test_catalog_index import add_products, wait_until

CATALOG = [
    {"sku": "ES1", "title": "Zapatillas de running Nimbus", "language": "es"},
    {"sku": "ES2", "title": "Zapatilla trail Cumbre", "language": "es"},
    {"sku": "DE1", "title": "Kopfhörer Studio mit Bluetooth", "language": "de"},
    {"sku": "DE2", "title": "Fahrrad Helm für Kinder", "language": "de"},
    {"sku": "DE3", "title": "Fahrradhelm Urban", "language": "de"},
    {"sku": "DE4", "title": "Kissen aus Wolle", "language": "de"},
    {"sku": "RU1", "title": "Беспроводные наушники Звук", "language": "ru"},
    {"sku": "FR1", "title": "Chaussures de randonnée", "language": "fr"},
    {"sku": "EN1", "title": "Wireless headphones with noise cancelling", "language": "en"},
    {"sku": "EN2", "title": "Road bicycle aluminium frame", "language": "en"},
    {"sku": "EN3", "title": "Sony WH-1000XM5 over-ear", "language": "en", "brand": "Sony"},
    {"sku": "EN4", "title": "Bicycle pump", "language": "en"},
    {"sku": "EN5", "title": "Headphones stand", "language": "en"},
    {"sku": "NL1", "title": "Fiets achterlicht verlichting", "language": "nl"},
    {"sku": "NL2", "title": "Fietsverlichting set LED", "language": "nl"},
    {"sku": "SV1", "title": "Cykel hjälm för vuxna", "language": "sv"},
    {"sku": "ZH1", "title": "无线降噪耳机", "language": "zh"},
    {"sku": "EN6", "title": "Trekking pole carbon", "language": "en"},
    {"sku": "PT1", "title": "Milho de pipoca mais crocante", "language": "pt"},
]


def _catalog(tmp):
    url = f"sqlite:///{tmp / 'catalog.db'}"
    migrate.upgrade(url)
    db = Database(url)
    add_products(db, [{**spec, "description": ""} for spec in CATALOG], np.random.default_rng(3))
    return db, CatalogIndex(db, embedder(), tmp / "index", poll_interval=0.0)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    db, index = _catalog(tmp_path_factory.mktemp("lexical"))
    yield db, index
    db.dispose()


@pytest.fixture
def own_catalog(tmp_path):
    db, index = _catalog(tmp_path)
    yield db, index
    db.dispose()


def lexical(index: CatalogIndex, query: str, language: str | None = None) -> tuple[list[str], str | None]:
    """The skus the lexical retriever found (best first) and the first stage's "did you mean"."""
    found = index.refresh_if_changed().first_stage(query, 50, language=language)
    ranked = sorted((h for h in found.hits if "lexical" in h.ranks), key=lambda h: h.ranks["lexical"])
    return [h.sku for h in ranked], found.did_you_mean


# --- the pieces ------------------------------------------------------------------------------------------


def test_snowball_stems_meet_across_inflections():
    assert stem("zapatilla", "es") == stem("zapatillas", "es")
    assert stem("kopfhorer", "de") == stem("kopfhorers", "de")
    assert stem("наушники", "ru") == stem("наушников", "ru")
    assert stem("chaussure", "fr") == stem("chaussures", "fr")
    assert stem("headphone", "en") == stem("headphones", "en")
    # unknown language, model codes, CJK: as written
    assert stem("zapatillas", None) == "zapatillas"
    assert stem("1000xm5", "en") == "1000xm5" and stem("耳机", "zh") == "耳机"
    assert query_language("наушников", None) == "ru" and query_language("سماعات", None) == "ar"
    assert query_language("zapatillas", None) is None and query_language("x", "pt-BR") == "pt"


def test_compounds_split_only_into_vocabulary_words_covering_them():
    vocabulary = {"fahrrad", "helm", "fiets", "verlichting", "cykel", "hjalm", "kopf", "kissen"}
    assert split_compound("fahrradhelm", vocabulary, "de") == ["fahrrad", "helm"]
    assert split_compound("fahrradhelme", vocabulary, "de") == ["fahrrad", "helm"]  # inflected last part
    assert split_compound("fietsverlichting", vocabulary, "nl") == ["fiets", "verlichting"]
    assert split_compound("cykelhjalm", vocabulary, "sv") == ["cykel", "hjalm"]
    assert split_compound("kopfkissen", vocabulary, "de") == ["kopf", "kissen"]
    assert split_compound("kopfhorer", vocabulary, "de") is None  # "horer" is no word of this catalog
    assert split_compound("fahrradhelm", {"fahrradhelm"}, "de") is None  # a word is not a split of itself
    assert split_compound("helm", vocabulary, "de") is None


def test_index_side_parts_are_words_of_the_same_language():
    builder = VocabularyBuilder()
    builder.add(tokenize_forms("Märchenschloss Schloss Fahrradhelm Fahrrad Helm"), "de")
    builder.add(tokenize_forms("Marche rapide"), "fr")  # French "marche" is no part of a German word
    assert builder.compounds() == {"fahrradhelm": ["fahrrad", "helm"]}


def test_typos_follow_the_usual_limits_and_prefer_the_frequent_word():
    speller = Speller([("headphones", 30), ("headphone", 3), ("bicycle", 5), ("bicycles", 2), ("lamp", 9),
                       ("lamps", 1), ("camp", 4)])  # fmt: skip
    assert speller.correct("hedphones") == "headphones"
    assert speller.correct("bycicle") == "bicycle"  # letters swapped across one: one typo
    assert typos("bycicle", "bicycle") == 1 and typos("bicycle", "bicycel") == 1
    assert speller.correct("lampp") == "lamp"  # lamp and lamps are one edit away: the more frequent wins
    assert speller.correct("headphones") is None  # known
    assert speller.correct("lap") is None  # 3 letters: no typo allowed
    assert speller.correct("xyzzyqwerty") is None
    assert speller.correct("1000xm4") is None and speller.correct("降噪耳朵") is None


def test_document_terms_hold_tokens_stems_and_parts():
    terms = document_terms(["fahrradhelme", "urban"], "de", {"fahrradhelme": ["fahrrad", "helm"]}, None)
    assert terms["fahrradhelme"] == 1.0 and terms[stem("fahrradhelme", "de")] == 1.0
    assert terms["fahrrad"] == terms["helm"] == 0.5
    assert document_terms(["1000xm5", "耳机"], "en") == {"1000xm5": 1.0, "耳机": 1.0}


# --- through the built index -----------------------------------------------------------------------------


def test_stemming_matches_inflections_in_the_index(catalog):
    _, index = catalog
    assert lexical(index, "zapatilla", "es")[0][:2] == ["ES2", "ES1"]  # exact first, then the plural
    assert lexical(index, "zapatillas", "es")[0][:2] == ["ES1", "ES2"]
    assert lexical(index, "Kopfhörers", "de")[0][:1] == ["DE1"]
    assert lexical(index, "наушников", None)[0][:1] == ["RU1"]  # Cyrillic: Russian stems without a UI language
    assert lexical(index, "chaussure", "fr")[0][:1] == ["FR1"]
    assert set(lexical(index, "headphone", "en")[0][:2]) == {"EN1", "EN5"}


def test_compound_words_match_their_parts_both_ways(catalog):
    _, index = catalog
    found, did_you_mean = lexical(index, "Fahrradhelm", "de")
    assert found[0] == "DE3" and "DE2" in found[:2] and did_you_mean is None  # a split is no correction
    assert lexical(index, "helm", "de")[0][:2] == ["DE2", "DE3"]  # the compound listing, below "Helm" itself
    assert set(lexical(index, "fietsverlichting", "nl")[0][:2]) == {"NL1", "NL2"}
    assert lexical(index, "verlichting", "nl")[0][:2] == ["NL1", "NL2"]
    assert lexical(index, "cykelhjälm", "sv")[0][:1] == ["SV1"]
    found, did_you_mean = lexical(index, "Kopfhörer unter 100 Euro", "de")
    assert found[:1] == ["DE1"] and did_you_mean is None


def test_typos_are_corrected_against_the_catalog_and_said(catalog):
    _, index = catalog
    found, did_you_mean = lexical(index, "hedphones", "en")
    assert did_you_mean == "headphones" and set(found[:2]) == {"EN1", "EN5"}
    found, did_you_mean = lexical(index, "bycicle pump", "en")
    assert did_you_mean == "bicycle pump" and found[0] == "EN4"
    assert lexical(index, "Kopfhörr", "de")[1] == "Kopfhörer"  # the catalog's spelling, the shopper's capital
    assert lexical(index, "Zapatilas", "es")[1] == "Zapatillas"


def test_common_words_of_the_shoppers_language_are_no_typos(catalog):
    """Cross-lingual queries are the rule: a real word the catalog lacks is not "corrected" into a listing word."""
    _, index = catalog
    assert common_word("Maus", ["de"]) and common_word("pelo", ["es"]) and not common_word("hedphones", ["en"])
    assert lexical(index, "kabellose Maus", "de")[1] is None  # not "mais" (PT1)
    assert Speller([("pole", 1)]).correct("pelo") == "pole"  # one typo away, so only the language rule keeps it
    found, did_you_mean = lexical(index, "secador de pelo", "es")
    assert "EN6" not in found and did_you_mean is None
    assert lexical(index, "Trekking pol", "en")[1] is None  # 3 letters: no typo allowed


def test_model_numbers_correct_words_and_cjk_are_left_alone(catalog):
    _, index = catalog
    found, did_you_mean = lexical(index, "WH-1000XM5", "en")
    assert found[:1] == ["EN3"] and did_you_mean is None
    # another model is not "corrected" into this one (only the shared "wh" finds EN3)
    assert lexical(index, "WH-1000XM4", "en")[1] is None
    assert index.state.version.lexicon.query_terms("WH-1000XM4", "en").terms == ["wh", "1000xm4"]
    assert lexical(index, "headphones", "en")[1] is None
    assert lexical(index, "wireless headphones", None)[1] is None
    found, did_you_mean = lexical(index, "降噪耳机", None)
    assert found[:1] == ["ZH1"] and did_you_mean is None
    assert lexical(index, "降噪耳朵", None)[1] is None


def test_delta_documents_are_analysed_like_built_ones(own_catalog):
    """A product added after the build scores exactly like its twin in the version: same stems, same parts."""
    db, index = own_catalog
    original_id = index.get(["DE3"])[0].id
    version = index.state.version.name
    add_products(db, [{"sku": "DE3-TWIN", "title": "Fahrradhelm Urban", "language": "de", "description": ""}],
                 np.random.default_rng(5))  # fmt: skip
    for query in ("helm", "Fahrradhelme", "fahrradhelm urban"):

        def twin_scores(query: str = query) -> dict[str, float]:
            found = index.refresh_if_changed().first_stage(query, 50, language="de")
            return {h.sku: h.score for h in found.hits if "lexical" in h.ranks and h.sku.startswith("DE3")}

        wait_until(lambda query=query: len(twin_scores(query)) == 2)
        state = index.state
        terms = state.version.lexicon.query_terms(query, "de").terms
        rows, scores = state.version.lexical.search(terms, 50)
        indexed = dict(zip(np.asarray(state.version.product_id)[rows].tolist(), scores.tolist(), strict=True))
        twin = next(d for d in state.delta.docs.values() if d.item.sku == "DE3-TWIN")
        assert state.version.lexical.weigh(terms, twin.terms, twin.length) == pytest.approx(
            indexed[original_id], rel=1e-5
        )
    assert index.state.version.name == version


# --- over HTTP ---------------------------------------------------------------------------------------------


def test_did_you_mean_in_the_api_and_on_the_page(client):
    body = client.get("/api/search?q=hedphones&lang=en").get_json()
    assert body["did_you_mean"] == "headphones" and body["results"]
    priced = client.get("/api/search?q=hedphones+under+100+dollars&lang=en").get_json()
    assert priced["did_you_mean"] == "headphones under 100 dollars"  # the price words stay in the suggestion
    assert priced["applied_filters"]["price_from_query"]["text"] == "under 100 dollars"
    assert client.get("/api/search?q=headphones&lang=en").get_json()["did_you_mean"] is None
    assert client.get("/api/search?q=WH-1000XM5&lang=en").get_json()["did_you_mean"] is None
    page = client.get("/search?q=hedphones&lang=de").get_data(as_text=True)
    assert 'id="did-you-mean"' in page and "Meinten Sie" in page and "q=headphones" in page
    assert 'id="did-you-mean"' not in client.get("/search?q=headphones").get_data(as_text=True)
