"""First stage: multilingual tokens, BM25, dense e5, reciprocal-rank fusion."""

from __future__ import annotations

import numpy as np
import pytest

from search.retrieval import DenseRetriever, Hit, HybridRetriever, LexicalRetriever, rrf_fuse
from search.tokenize import tokenize


def test_cjk_becomes_bigrams_and_other_scripts_words():
    assert tokenize("无线降噪耳机") == ["无线", "线降", "降噪", "噪耳", "耳机"]
    assert tokenize("Sony WH-1000XM5 Café") == ["sony", "wh", "1000xm5", "cafe"]
    assert tokenize("Ёлка ЁЖИК") == ["елка", "ежик"]
    assert tokenize("ＡＢＣ１２３") == ["abc123"]  # full-width forms fold to ASCII


def test_arabic_normalisation_strips_article_and_diacritics_but_not_word_starts():
    assert tokenize("السَّمّاعات") == ["سماعات"]
    assert tokenize("إلغاء الضوضاء") == ["الغاء", "ضوضاء"]  # "إلغاء" keeps its first letters
    assert tokenize("مكتبة") == ["مكتبه"]


def test_rrf_sums_reciprocal_ranks():
    fused = rrf_fuse({"dense": [Hit("a", 0.9), Hit("b", 0.8)], "lexical": [Hit("b", 7.0), Hit("c", 3.0)]}, k=60)
    assert [h.sku for h in fused] == ["b", "a", "c"]
    assert fused[0].score == pytest.approx(1 / 62 + 1 / 61)
    assert fused[0].ranks == {"dense": 2, "lexical": 1}


def test_lexical_finds_model_numbers_and_only_matching_documents():
    retriever = LexicalRetriever(
        ["xm5", "qc", "stand"],
        ["Sony WH-1000XM5 headphones", "Bose QuietComfort headphones", "Desk stand"],
    )
    assert [h.sku for h in retriever.retrieve("WH-1000XM5", 10)] == ["xm5"]
    assert {h.sku for h in retriever.retrieve("headphones", 10)} == {"xm5", "qc"}
    assert retriever.retrieve("   ", 10) == [] and retriever.retrieve("zzz", 10) == []


def test_dense_is_cross_lingual_and_hybrid_fuses():
    from catalog.vectors import embedder

    e5 = embedder()
    texts = [
        "Title: Sony WH-1000XM5 Wireless Noise Cancelling Headphones",
        "Title: Stainless steel kitchen knife set",
        "Title: Garden hose 30 m",
    ]
    skus = ["headphones", "knives", "hose"]
    dense = DenseRetriever(skus, e5.passages(texts), e5)
    assert dense.retrieve("无线降噪耳机", 3)[0].sku == "headphones"
    assert dense.retrieve("سماعات لاسلكية", 3)[0].sku == "headphones"
    hybrid = HybridRetriever([dense, LexicalRetriever(skus, texts)])
    result = hybrid.retrieve("noise cancelling headphones", 2)
    assert [h.sku for h in result.hits][0] == "headphones" and len(result.hits) == 2
    assert set(result.timings_ms) == {"dense", "lexical", "fusion"}


def test_dense_rejects_a_matrix_of_the_wrong_shape():
    from catalog.vectors import embedder

    with pytest.raises(ValueError, match="shape"):
        DenseRetriever(["a"], np.zeros((2, 384), np.float32), embedder())
