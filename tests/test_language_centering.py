"""Language centering of e5 vectors: fitted on labelled vectors, applied without labels."""

from __future__ import annotations

import numpy as np
import pytest

from reranking.language_centering import LanguageCentering
from reranking.scorers.bi_encoder import E5FallbackScorer, shared_embedder
from search.retrieval import Hit, rrf_fuse

PRODUCTS = {
    "en": [
        "Title: Wireless noise cancelling headphones",
        "Title: Stainless steel water bottle 1 l",
        "Title: Women's road running shoes",
        "Title: Espresso machine with milk frother",
        "Title: 2-person camping tent",
        "Title: Mechanical gaming keyboard",
    ],
    "ar": [
        "Title: حذاء جري للنساء",
        "Title: خيمة تخييم لشخصين",
        "Title: ماكينة قهوة إسبريسو",
        "Title: زجاجة ماء من الفولاذ",
        "Title: لوحة مفاتيح ألعاب",
        "Title: حافظة هاتف سيليكون",
    ],
    "zh": [
        "Title: 不锈钢保温杯 1升",
        "Title: 女士跑步鞋",
        "Title: 双人露营帐篷",
        "Title: 意式咖啡机",
        "Title: 机械游戏键盘",
        "Title: 手机硅胶保护壳",
    ],
}


@pytest.fixture(scope="module")
def fitted():
    embedder = shared_embedder()
    texts = [t for lang in PRODUCTS for t in PRODUCTS[lang]]
    labels = [lang for lang in PRODUCTS for _ in PRODUCTS[lang]]
    vectors = embedder.passages(texts)
    return LanguageCentering.fit(vectors, labels), vectors, labels


def test_detects_languages_without_labels(fitted):
    centering, vectors, labels = fitted
    assert centering.detect(vectors) == labels
    assert centering.detect(shared_embedder().queries(["سماعات لاسلكية", "无线耳机"])) == ["ar", "zh"]


def test_transform_is_unit_length_and_deterministic(fitted):
    centering, vectors, _ = fitted
    out = centering.transform(vectors)
    assert np.allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5)
    assert np.array_equal(out, centering.transform(vectors))


def test_centering_narrows_the_same_language_advantage(fitted):
    """An Arabic query about headphones should move toward the English headphones, away from unrelated Arabic."""
    centering, _, _ = fitted
    embedder = shared_embedder()
    query = embedder.queries(["سماعات لاسلكية بخاصية إلغاء الضوضاء"])
    answer, arabic_noise = embedder.passages([PRODUCTS["en"][0], PRODUCTS["ar"][5]])
    raw_margin = float(query[0] @ answer - query[0] @ arabic_noise)
    q, a, n = centering.transform(np.vstack([query, answer, arabic_noise]))
    assert float(q @ a - q @ n) > raw_margin


def test_fit_needs_two_languages_with_enough_vectors():
    vectors = np.random.default_rng(0).normal(size=(12, 8)).astype(np.float32)
    assert LanguageCentering.fit(vectors, ["en"] * 12) is None
    assert LanguageCentering.fit(vectors, ["en"] * 8 + ["ar"] * 4) is None  # 4 < the minimum of 5
    assert LanguageCentering.fit(vectors, ["en"] * 6 + ["ar"] * 6).languages == ["ar", "en"]
    with pytest.raises(ValueError):
        LanguageCentering.fit(vectors, ["en"] * 3)


def test_fallback_scorer_revision_follows_the_centering(fitted):
    centering, _, _ = fitted
    scorer = E5FallbackScorer(fallback_reason="test")
    raw_namespace = scorer.info.cache_namespace
    pairs = [("wireless headphones", PRODUCTS["en"][0]), ("wireless headphones", PRODUCTS["ar"][0])]
    raw = scorer.score_pairs(pairs)
    scorer.use_centering(centering)
    assert scorer.info.cache_namespace != raw_namespace and centering.fingerprint in scorer.info.revision
    assert not np.allclose(scorer.score_pairs(pairs), raw)
    scorer.use_centering(None)
    assert scorer.info.cache_namespace == raw_namespace
    assert np.allclose(scorer.score_pairs(pairs), raw)


def test_weighted_rrf():
    dense = [Hit("a", 1), Hit("b", 1), Hit("c", 1)]
    lexical = [Hit("d", 1), Hit("e", 1)]
    equal = rrf_fuse({"dense": dense, "lexical": lexical})
    assert [h.sku for h in equal] == ["a", "d", "b", "e", "c"]  # rank 1 of either list ties at 1/61
    damped = rrf_fuse({"dense": dense, "lexical": lexical}, weights={"lexical": 0.25})
    assert [h.sku for h in damped] == ["a", "b", "c", "d", "e"]  # 0.25/61 < 1/63
    assert damped[3].score == pytest.approx(0.25 / 61)
    assert damped[3].ranks == {"lexical": 1}
