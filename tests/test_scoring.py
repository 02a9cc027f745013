"""Cross-encoder semantics (DESIGN.md §2) on a real, tiny XLM-R cross-encoder."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from reranking import ModelUnavailableError, load_scorer
from reranking.batching import plan_batches
from reranking.scorers.base import sigmoid
from reranking.tokenization import PairEncoder

QUERIES = [
    "wireless noise cancelling headphones",
    "无线降噪耳机",
    "zapatillas para correr mujer",
    "سماعات لاسلكية",
    "кофемашина",
    "ステンレス 水筒",
]
PASSAGES = [
    "Title: Sony WH-1000XM5\nDescription: Over-ear headphones with active noise cancellation.\nPrice: $399.00",
    "Title: Headphone stand\nPrice: $19.99",
    "Title: Nike Pegasus 41 Women's Road Running Shoes\nDescription: " + "Responsive foam. " * 30,
    "Title: 咖啡机 全自动\nPrice: CN¥1,999.00",
    "Title: Garden hose 20 m",
    "Title: Thermos stainless steel bottle 500 ml\nDescription: " + "Keeps drinks hot for 12 hours. " * 12,
]
PAIRS = [(q, p) for q in QUERIES for p in PASSAGES]


def test_batch_size_invariance_fp32(tiny_scorer_fp32):
    one = np.array(tiny_scorer_fp32.compute_score(PAIRS, batch_size=1))
    many = np.array(tiny_scorer_fp32.compute_score(PAIRS, batch_size=32))
    assert np.abs(one - many).max() < 1e-5
    assert one.std() > 0.05, "scores should differ between pairs, else the test proves nothing"


def test_input_order_restored_under_length_sorting(tiny_scorer_fp32):
    singles = np.array([tiny_scorer_fp32.compute_score(list(pair)) for pair in PAIRS])
    batched = np.array(tiny_scorer_fp32.compute_score(PAIRS))
    assert np.allclose(singles, batched, atol=1e-5)
    permutation = list(range(len(PAIRS)))
    random.Random(7).shuffle(permutation)
    shuffled = np.array(tiny_scorer_fp32.compute_score([PAIRS[i] for i in permutation]))
    assert np.allclose(shuffled, batched[permutation], atol=1e-5)


def test_single_pair_returns_float_and_list_returns_list(tiny_scorer_fp32):
    assert isinstance(tiny_scorer_fp32.compute_score(["q", "p"]), float)
    assert isinstance(tiny_scorer_fp32.compute_score([["q", "p"]]), list)
    assert tiny_scorer_fp32.compute_score([]) == []
    with pytest.raises(ValueError):
        tiny_scorer_fp32.compute_score(["only one"])


def test_truncation_never_errors_on_huge_inputs(tiny_scorer_fp32):
    huge_passage = "Title: " + ("laptop sleeve 15 inch " * 1000)[:20_000]
    huge_query = "wireless headphones " * 400
    scores = tiny_scorer_fp32.compute_score(
        [["headphones", huge_passage], [huge_query, huge_passage], [huge_query, "short"]]
    )
    assert all(np.isfinite(scores))


def test_query_capped_at_three_quarters_and_passage_fills_the_rest(tiny_scorer_fp32):
    encoder: PairEncoder = tiny_scorer_fp32.encoder
    tokenizer = encoder.tokenizer
    long_query = "wireless headphones " * 400
    long_passage = "laptop sleeve " * 2000
    (encoded,) = encoder.encode([(long_query, long_passage)])
    assert len(encoded.input_ids) == encoder.max_length == 512
    query_tokens = tokenizer(long_query, add_special_tokens=False)["input_ids"][: 512 * 3 // 4]
    assert encoded.input_ids[1 : 1 + len(query_tokens)] == query_tokens  # the query survives, capped at 384


def test_pair_encoding_matches_the_tokenizers_own_pair_truncation(tiny_scorer_fp32):
    """For queries under the cap, our id-level joining equals `tokenizer(q, p, truncation='only_second')`."""
    encoder: PairEncoder = tiny_scorer_fp32.encoder
    tokenizer = encoder.tokenizer
    for query, passage in PAIRS + [("headphones", "x " * 3000)]:
        expected = tokenizer(query, passage, truncation="only_second", max_length=512)["input_ids"]
        (ours,) = encoder.encode([(query, passage)])
        assert ours.input_ids == expected


def test_normalize_is_sigmoid_in_float32_within_unit_interval_and_monotone(tiny_scorer_fp32):
    raw = np.array(tiny_scorer_fp32.compute_score(PAIRS))
    normalized = np.array(tiny_scorer_fp32.compute_score(PAIRS, normalize=True))
    assert ((normalized > 0) & (normalized < 1)).all()
    order = np.argsort(raw)
    assert (np.diff(normalized[order]) >= 0).all()
    assert np.allclose(normalized, 1 / (1 + np.exp(-raw)), atol=1e-6)


def test_float32_sigmoid_keeps_high_logits_apart_where_fp16_would_tie():
    logits = np.array([8.0, 9.0, 10.0], dtype=np.float16)
    fp16 = 1 / (1 + np.exp(-logits))  # computed in float16
    assert len(set(fp16.tolist())) < 3
    assert len(set(sigmoid(logits).tolist())) == 3


def test_int8_agrees_with_fp32_on_the_tiny_model(tiny_scorer_fp32, tiny_scorer_int8, record_property):
    fp32 = np.array(tiny_scorer_fp32.compute_score(PAIRS))
    int8 = np.array(tiny_scorer_int8.compute_score(PAIRS))
    rho = spearmanr(fp32, int8).statistic
    spread = float(fp32.std())
    mean_diff, max_diff = float(np.abs(fp32 - int8).mean()), float(np.abs(fp32 - int8).max())
    top10_overlap = len(set(np.argsort(-fp32)[:10]) & set(np.argsort(-int8)[:10])) / 10
    record_property("int8_spearman", rho)
    record_property("int8_max_abs_diff", max_diff)
    print(
        f"INT8 vs fp32 on tiny model: spearman={rho:.4f} mean|diff|={mean_diff:.4f} max|diff|={max_diff:.4f} "
        f"(score std {spread:.4f}) top10={top10_overlap:.1f}"
    )
    assert tiny_scorer_int8.info.quantized and tiny_scorer_int8.info.dtype == "int8"
    # Seen on three seeds: spearman >= 0.98, mean|diff| <= 0.2 std, max|diff| <= 0.5 std. A 32-wide model
    # quantizes coarsely (per-tensor INT8 over 32 dims); real-size models agree more closely (bench/).
    assert rho >= 0.95
    assert mean_diff <= 0.3 * spread
    assert max_diff <= 0.75 * spread
    assert top10_overlap >= 0.8


def test_describe_reports_the_real_model(tiny_scorer_int8, tiny_model_dir):
    info = tiny_scorer_int8.describe()
    assert info["kind"] == "cross-encoder"
    assert info["model_id"] == str(tiny_model_dir)
    assert info["device"] == "cpu" and info["dtype"] == "int8" and info["quantized"] is True
    assert info["max_length"] == 512 and info["fallback_reason"] is None


def test_cpu_never_runs_fp16(tiny_model_dir):
    with pytest.raises(ValueError, match="CPU"):
        load_scorer(model=str(tiny_model_dir), device="cpu", precision="fp16", allow_fallback=False)


def test_missing_model_dir_falls_back_to_e5_and_says_so(tmp_path, caplog):
    missing = tmp_path / "no-such-model"
    with caplog.at_level("WARNING"):
        scorer = load_scorer(model=str(missing))
    info = scorer.describe()
    assert info["kind"] == "bi-encoder-fallback"
    assert info["model_id"] == "intfloat/multilingual-e5-small"
    assert str(missing) in info["fallback_reason"]
    assert "FALLING BACK" in caplog.text
    relevant, irrelevant = scorer.compute_score(
        [["无线降噪耳机", "Title: Wireless noise cancelling headphones"], ["无线降噪耳机", "Title: Garden hose 20 m"]],
        normalize=True,
    )
    assert 0 < irrelevant < relevant < 1  # the fallback is a real cross-lingual model, not a stub


def test_missing_model_without_fallback_raises(tmp_path):
    with pytest.raises(ModelUnavailableError):
        load_scorer(model=str(tmp_path / "absent"), allow_fallback=False)


def test_offline_hub_id_fails_fast(monkeypatch):
    import time

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.monotonic()
    with pytest.raises(ModelUnavailableError, match="cache"):
        load_scorer(model="BAAI/bge-reranker-v2-m3", allow_fallback=False)
    assert time.monotonic() - started < 5


def test_directory_without_config_is_unavailable(tmp_path):
    with pytest.raises(ModelUnavailableError, match="config.json"):
        load_scorer(model=str(tmp_path), allow_fallback=False)


class TestBatchPlanning:
    def test_every_item_once_longest_first_within_budget(self):
        rng = random.Random(3)
        lengths = [rng.randint(5, 500) for _ in range(300)]
        batches = plan_batches(lengths, max_tokens=4096, max_batch_size=64)
        flat = [i for b in batches for i in b]
        assert sorted(flat) == list(range(300))
        assert lengths[batches[0][0]] == max(lengths)
        for batch in batches:
            assert len(batch) <= 64
            assert len(batch) == 1 or max(lengths[i] for i in batch) * len(batch) <= 4096

    def test_item_longer_than_budget_gets_its_own_batch(self):
        assert plan_batches([10, 9000, 10], max_tokens=1000, max_batch_size=8) == [[1], [0, 2]]

    def test_short_items_share_a_batch(self):
        assert plan_batches([10] * 50, max_tokens=1000, max_batch_size=128) == [list(range(50))]

    def test_rejects_nonsense_limits(self):
        with pytest.raises(ValueError):
            plan_batches([1], max_tokens=0, max_batch_size=1)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_runs_fp16_with_float32_sigmoid(tiny_model_dir, tiny_scorer_fp32):
    scorer = load_scorer(model=str(tiny_model_dir), device="cuda", allow_fallback=False)
    assert scorer.info.dtype == "fp16" and scorer.info.device.startswith("cuda")
    gpu = np.array(scorer.compute_score(PAIRS))
    cpu = np.array(tiny_scorer_fp32.compute_score(PAIRS))
    assert spearmanr(gpu, cpu).statistic > 0.98
    normalized = np.array(scorer.compute_score(PAIRS, normalize=True))
    assert normalized.dtype == np.float64 and ((normalized > 0) & (normalized < 1)).all()
