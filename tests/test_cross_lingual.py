"""Cross-lingual search through the real first stage (e5 embeddings + BM25) and the JSON API.

A shopper typing Chinese or Arabic must find the English listing they mean.
"""

from __future__ import annotations

import json

import pytest

from tests.shop_support import DEMO_CATALOG, DEMO_QUERIES


def _english_skus(path) -> set[str]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {r["sku"] for r in rows if r["language"] == "en"}


def demo_cases(language: str) -> list[tuple[str, set[str]]]:
    """Demo queries in ``language`` whose well-matching (grade ≥ 2) products include English listings."""
    english = _english_skus(DEMO_CATALOG)
    cases = []
    for line in DEMO_QUERIES.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        query = json.loads(line)
        wanted = {sku for sku, grade in query["relevant"].items() if grade >= 2 and sku in english}
        if query["language"] == language and wanted:
            cases.append((query["query"], wanted))
    return cases


MINI_CASES = {
    "zh": [("无线降噪耳机", {"HP-SONY-XM5", "HP-BOSE-QCU"})],
    "ar": [("سماعات لاسلكية", {"HP-SONY-XM5", "HP-BOSE-QCU", "HP-JBL-T520"})],
}
#: Flagship queries: the English headphones must be on the first page the shopper sees.
FLAGSHIP = {"zh": "无线降噪耳机", "ar": "سماعات رأس لاسلكية"}


def cases_for(language: str) -> list[tuple[str, set[str]]]:
    return demo_cases(language) if DEMO_CATALOG.exists() and DEMO_QUERIES.exists() else MINI_CASES[language]


@pytest.mark.parametrize("language", ["zh", "ar"])
def test_first_stage_recalls_the_english_products_queries_mean(shop_services, language):
    cases = cases_for(language)
    assert cases, f"no {language} queries with English answers"
    wanted_total = found_total = 0
    for query, wanted in cases:
        candidates = {h.sku for h in shop_services.index.first_stage(query, 100).hits}
        wanted_total += len(wanted)
        found_total += len(wanted & candidates)
    assert found_total / wanted_total >= 0.9, (found_total, wanted_total)  # measured: ~0.97 on the demo catalog


@pytest.mark.parametrize("language", ["zh", "ar"])
def test_query_returns_the_english_product_it_means(client, language):
    query, wanted = next(((q, w) for q, w in cases_for(language) if q == FLAGSHIP[language]), cases_for(language)[0])
    body = client.get("/api/search", query_string={"q": query, "lang": language, "limit": 10}).get_json()
    english_hits = [r for r in body["results"] if r["sku"] in wanted]
    assert english_hits, [r["sku"] for r in body["results"]]
    assert all(r["language"] == "en" for r in english_hits)


@pytest.mark.parametrize(("language", "minimum"), [("zh", 0.75), ("ar", 0.75)])
def test_most_queries_show_an_english_answer_on_the_first_page(shop_services, language, minimum, record_property):
    """The whole flow (first stage + fallback reranker in the language-centred space), top 10.

    Measured on the demo catalog: zh 14/17, ar 12/14 (before language centering: 5/17 and 9/14).
    """
    cases = cases_for(language)
    hits = 0
    for query, wanted in cases:
        result = shop_services.search.search(query, limit=10, language=language)
        hits += bool(wanted & {h.item.sku for h in result.hits})
    share = hits / len(cases)
    record_property(f"{language}_english_answer_in_top10", share)
    print(f"{language}: {hits}/{len(cases)} queries show an English answer in the top 10")
    assert share >= minimum, f"{hits}/{len(cases)}"
