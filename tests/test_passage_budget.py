"""The passage token budget: the description is cut first, the title last, and a variant's budget reaches the model."""

from __future__ import annotations

import pytest

from experiments.manage import ExperimentSpec, VariantSpec, validate_spec
from experiments.ranking import NoExperiment, RankingConfig
from reranking import Reranker, format_passage, load_scorer
from reranking.cache import MemoryScoreCache
from reranking.dispatch import InProcessDispatcher, RerankJob, RerankRejected
from reranking.passage_budget import description_body
from reranking.scorers.bi_encoder import E5FallbackScorer
from search.service import SearchService
from shoprank.config import ConfigError, Settings
from workers.jobs import validate_job_payload

TITLE = "Insulated Water Bottle 750 ml"
LONG_DESCRIPTION = " ".join(
    f"Sentence {i}: double-walled stainless steel keeps drinks cold for a day and hot for half a day."
    for i in range(16)
)  # ~1,500 characters, as feeds send them


def _product(**changes):
    product = {
        "title": TITLE,
        "brand": "Hydro",
        "description": LONG_DESCRIPTION,
        "attributes": {"color": "Black", "material": "Steel"},
        "price": "24.90",
        "currency": "EUR",
    }
    return dict(product, **changes)


@pytest.fixture(scope="module")
def scorer(tiny_model_dir):
    return load_scorer(model=str(tiny_model_dir), device="cpu", int8=False, allow_fallback=False)


def _passage_text(scorer, passage: str, budget: int | None) -> tuple[str, int]:
    """What the model reads of ``passage`` under ``budget``, and how many passage tokens that is."""
    (encoded,) = scorer.encoder.encode([("bottle", passage)], budget)
    query_and_specials = len(scorer.encoder.encode([("bottle", "")])[0].input_ids)
    text = scorer.encoder.tokenizer.decode(encoded.input_ids, skip_special_tokens=True)
    return text, len(encoded.input_ids) - query_and_specials


def test_the_description_is_cut_first_and_title_attributes_and_price_are_kept(scorer):
    passage = format_passage(_product())
    assert len(passage) > 1000
    full, full_tokens = _passage_text(scorer, passage, None)
    assert full_tokens > 200
    for budget in (128, 64, 32):
        text, tokens = _passage_text(scorer, passage, budget)
        assert tokens <= budget
        assert f"Hydro {TITLE}" in text and "(color: Black; material: Steel)" in text and "€24.90" in text, budget
        assert "Sentence 0: double" in text  # the description's beginning survives, its end goes
        assert "Sentence 12" not in text
    assert "Sentence 12" in full


def test_the_title_is_never_cut_before_the_whole_description(scorer):
    passage = format_passage(_product())
    for budget in (16, 20, 24):
        text, tokens = _passage_text(scorer, passage, budget)
        assert tokens == budget
        assert "Sentence" not in text  # no word of the description body is left ...
        assert text.startswith(f"bottle Title: Hydro {TITLE}"[: len(text)])  # ... while the title is kept whole
        assert TITLE in text


def test_a_passage_within_the_budget_is_unchanged(scorer):
    passage = format_passage(_product(description="Keeps drinks cold."))
    assert _passage_text(scorer, passage, 128) == _passage_text(scorer, passage, None)


def test_plain_text_without_a_description_line_is_cut_from_its_end(scorer):
    text, tokens = _passage_text(scorer, "word " * 300, 40)
    assert tokens == 40 and text.split()[1:] == ["word"] * (len(text.split()) - 1)


def test_description_body_excludes_the_attributes():
    passage = format_passage(_product(description="Keeps drinks cold."))
    start, end = description_body(passage)
    assert passage[start:end] == "Keeps drinks cold."
    attributes_only = format_passage(_product(description=None))
    start, end = description_body(attributes_only)  # no description text: the attributes are all there is
    assert attributes_only[start:end] == "color: Black; material: Steel"
    assert description_body("Title: x\nPrice: $1.00") is None


def test_long_descriptions_no_longer_push_the_attributes_out_of_the_passage():
    passage = format_passage(_product())
    assert passage.splitlines()[1].endswith("(color: Black; material: Steel)")


def test_budgets_score_differently_and_are_cached_apart(scorer):
    passage = format_passage(_product())
    reranker = Reranker(scorer, MemoryScoreCache())
    full = reranker.score("bottle", [passage])
    cut = reranker.score("bottle", [passage], passage_tokens=32)
    assert cut.cache_misses == 1 and full.cache_misses == 1  # not answered from the other budget's entry
    assert abs(float(full.raw_scores[0]) - float(cut.raw_scores[0])) > 1e-4
    assert reranker.score("bottle", [passage], passage_tokens=32).cache_hits == 1


def test_the_deployment_default_reaches_the_scorer_and_a_request_overrides_it(tiny_model_dir, monkeypatch):
    monkeypatch.setenv("SHOPRANK_RERANK_PASSAGE_TOKENS", "32")
    settings = Settings.from_env()
    assert settings.rerank_passage_tokens == 32
    budgeted = load_scorer(settings.scorer_spec(model=str(tiny_model_dir), device="cpu", allow_fallback=False))
    assert budgeted.passage_tokens == 32
    passage = format_passage(_product())
    reranker = Reranker(budgeted)
    before = budgeted.stats.tokens
    default = reranker.score("bottle", [passage])
    assert budgeted.stats.tokens - before <= 32 + 8  # the passage within 32 tokens (+ query and specials)
    assert float(default.raw_scores[0]) == pytest.approx(float(budgeted.score_pairs([("bottle", passage)], None, 32)[0]))
    before = budgeted.stats.tokens
    reranker.score("bottle", [passage], passage_tokens=128)
    assert 32 + 8 < budgeted.stats.tokens - before <= 128 + 8


@pytest.mark.parametrize("raw", ["8", "513", "-1"])
def test_a_bad_deployment_budget_is_refused_naming_the_variable(monkeypatch, raw):
    monkeypatch.setenv("SHOPRANK_RERANK_PASSAGE_TOKENS", raw)
    with pytest.raises(ConfigError, match="SHOPRANK_RERANK_PASSAGE_TOKENS"):
        Settings.from_env()


class RecordingScorer(E5FallbackScorer):
    """The real fallback scorer, remembering the budget each call asked for."""

    def __init__(self) -> None:
        super().__init__(fallback_reason="tests")
        self.budgets: list[int | None] = []

    def score_pairs(self, pairs, max_batch_size=None, passage_tokens=None):
        self.budgets.append(passage_tokens)
        return super().score_pairs(pairs, max_batch_size, passage_tokens)


def test_a_variants_budget_flows_from_the_search_to_the_scorer(shop_services):
    recording = RecordingScorer()
    dispatcher = InProcessDispatcher({"m": Reranker(recording)}, "m")
    try:
        for config, expected in ((RankingConfig(passage_tokens=96), 96), (RankingConfig(), None)):
            recording.budgets.clear()
            search = SearchService(shop_services.index, dispatcher, NoExperiment(config), deadline_ms=10_000)
            result = search.search("wireless headphones", limit=5)
            assert result.reranked and recording.budgets and set(recording.budgets) == {expected}
    finally:
        dispatcher.close()


def test_the_job_wire_format_carries_the_budget_and_rejects_bad_ones():
    job = RerankJob("q", ["Title: a"], passage_tokens=128)
    assert validate_job_payload(job.to_payload(), 10, 100).passage_tokens == 128
    for bad in (8, 4096, "128", True):
        with pytest.raises(RerankRejected, match="job.passage_tokens"):
            validate_job_payload(dict(job.to_payload(), passage_tokens=bad), 10, 100)


def test_variant_budgets_are_validated_by_field_and_become_the_ranking_config():
    def spec(**treatment):
        return ExperimentSpec("budget", "Budget", [VariantSpec("control"), VariantSpec("short", **treatment)])

    assert validate_spec(spec(passage_tokens=128)) == {}
    assert spec(passage_tokens=128).variants[1].ranking_config().passage_tokens == 128
    for bad in (8, 1000, 128.5):
        assert "variants[1].passage_tokens" in validate_spec(spec(passage_tokens=bad))
    assert "variants[1].passage_tokens" in validate_spec(spec(passage_tokens=128, rerank=False))
