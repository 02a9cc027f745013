"""Team-draft interleaving: determinism, fair drafting, click credit, and the sign test on simulated shoppers."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats

from experiments.interleaving import (
    Outcome,
    Team,
    credit_clicks,
    interleave_for,
    interleaving_seed,
    summarize,
    summarize_outcomes,
    team_draft_interleave,
    unit_level_outcomes,
)

A = [f"a{i}" for i in range(10)]
B = [f"b{i}" for i in range(10)]


def test_same_unit_query_and_experiment_give_the_same_page() -> None:
    first = interleave_for("exp", "visitor-1", "running shoes", A, B, length=10)
    again = interleave_for("exp", "visitor-1", "running shoes", A, B, length=10)
    assert first == again
    pages = {tuple(interleave_for("exp", f"visitor-{i}", "running shoes", A, B, length=10).ranking) for i in range(50)}
    assert len(pages) > 10  # other units get other drafts
    assert interleaving_seed("a|b", "c", "q") != interleaving_seed("a", "b|c", "q")


def test_first_pick_is_a_fair_coin() -> None:
    first_team = Counter(interleave_for("exp", f"u{i}", "q", A, B, length=2).items[0].team for i in range(4000))
    assert scipy_stats.binomtest(first_team[Team.A], 4000).pvalue > 0.001
    assert abs(first_team[Team.A] / 4000 - 0.5) < 0.03


rankings = st.lists(st.sampled_from([f"p{i}" for i in range(15)]), max_size=15)


@settings(max_examples=400, deadline=None)
@given(ranking_a=rankings, ranking_b=rankings, seed=st.text(max_size=20), length=st.none() | st.integers(0, 20))
def test_draft_invariants(ranking_a: list[str], ranking_b: list[str], seed: str, length: int | None) -> None:
    result = team_draft_interleave(ranking_a, ranking_b, seed=seed, length=length)
    shown = result.ranking
    assert len(shown) == len(set(shown))  # no product twice
    assert set(shown) <= set(ranking_a) | set(ranking_b)
    if length is not None:
        assert len(shown) <= length
    assert [entry.position for entry in result.items] == list(range(len(shown)))
    # teams stay within one pick of each other at every prefix of the draft
    drafted = [entry for entry in result.items if entry.team is not None]
    assert all(entry.team is None for entry in result.items[len(drafted) :])  # untagged fill only at the end
    count_a = count_b = 0
    for entry in drafted:
        count_a += entry.team is Team.A
        count_b += entry.team is Team.B
        assert abs(count_a - count_b) <= 1
    # every team pick is that team's best product not yet shown
    seen: set[str] = set()
    for entry in drafted:
        source = list(dict.fromkeys(ranking_a if entry.team is Team.A else ranking_b))
        assert entry.item == next(item for item in source if item not in seen)
        assert source.index(entry.item) == entry.source_rank
        seen.add(entry.item)


def test_overlap_duplicates_and_unequal_lengths() -> None:
    result = team_draft_interleave(["x", "y", "x", "z", "w", "v"], ["y", "x"], seed="s", length=6)
    assert sorted(result.ranking) == ["v", "w", "x", "y", "z"]
    sizes = result.team_sizes()
    assert sum(sizes) == 2 and abs(sizes[0] - sizes[1]) <= 1  # B runs out after x and y are shown
    assert [entry.team for entry in result.items[2:]] == [None, None, None]  # filler is not credited
    empty = team_draft_interleave([], ["a", "b"], seed="s")
    assert empty.ranking == ["a", "b"] and empty.team_sizes() == (0, 0)
    # Radlinski et al. stop as soon as either list is used up, so the second pick of the last round may not happen
    single = team_draft_interleave(["a"], ["b"], seed="s", fill=False, length=5)
    assert sorted(single.team_sizes()) == [0, 1] and len(single.ranking) == 1
    assert team_draft_interleave(["a"], ["b"], seed="s", length=5).ranking == ["b", "a"]  # "a" shown untagged


def test_click_credit() -> None:
    page = team_draft_interleave([f"a{i}" for i in range(5)], [f"b{i}" for i in range(5)], seed="seed", length=6)
    team = {entry.item: entry.team for entry in page.items}
    a_items = [item for item, t in team.items() if t is Team.A]
    b_items = [item for item, t in team.items() if t is Team.B]
    assert credit_clicks(page, []).outcome is Outcome.TIE
    assert credit_clicks(page, [a_items[0]]) == credit_clicks(
        page, [a_items[0], a_items[0]]
    )  # repeat clicks count once
    win_a = credit_clicks(page, [a_items[0], a_items[1], b_items[0]])
    assert (win_a.clicks_a, win_a.clicks_b, win_a.outcome) == (2, 1, Outcome.A_WINS)
    assert credit_clicks(page, [b_items[2], "not-on-page"]).outcome is Outcome.B_WINS
    assert credit_clicks(page, [a_items[0], b_items[0]]).outcome is Outcome.TIE


def test_sign_test_matches_scipy_and_ignores_ties() -> None:
    summary = summarize_outcomes(wins_a=40, wins_b=65, ties=895)
    assert summary.p_value == pytest.approx(scipy_stats.binomtest(65, 105, 0.5).pvalue)
    assert summary.significant and summary.winner is Team.B
    assert summary.preference_b == pytest.approx(25 / 1000)
    low, high = summary.b_win_share_ci  # type: ignore[misc]
    assert low > 0.5
    assert summarize_outcomes(0, 0, 10).p_value == 1.0
    assert summarize([Outcome.A_WINS, Outcome.TIE, Outcome.B_WINS]).impressions == 3
    assert unit_level_outcomes([[Outcome.A_WINS, Outcome.A_WINS, Outcome.B_WINS], [Outcome.TIE]]) == [
        Outcome.A_WINS,
        Outcome.TIE,
    ]


def _simulate(rng: np.random.Generator, impressions: int, quality_a: float, quality_b: float) -> list[Outcome]:
    """Shoppers click products by relevance with position bias; ranker quality = how well it sorts by relevance."""
    outcomes = []
    for impression in range(impressions):
        relevance = rng.random(30)
        ranked_a = [f"p{i}" for i in np.argsort(-(relevance + rng.normal(0, 1 - quality_a, 30)))]
        ranked_b = [f"p{i}" for i in np.argsort(-(relevance + rng.normal(0, 1 - quality_b, 30)))]
        page = interleave_for("sim", f"u{impression % 500}", f"q{impression}", ranked_a, ranked_b, length=10)
        examine = 1 / np.log2(np.arange(2, 12))  # position bias
        clicked = [
            entry.item
            for entry in page.items
            if rng.random() < examine[entry.position] * relevance[int(entry.item[1:])] ** 2
        ]
        outcomes.append(credit_clicks(page, clicked).outcome)
    return outcomes


def test_sign_test_finds_the_better_ranker() -> None:
    summary = summarize(_simulate(np.random.default_rng(1), 3000, quality_a=0.3, quality_b=0.8))
    print(
        f"interleaving, B better: wins A {summary.wins_a}, B {summary.wins_b}, ties {summary.ties}, "
        f"p {summary.p_value:.2e}"
    )
    assert summary.winner is Team.B and summary.p_value < 1e-6


def test_identical_rankers_show_no_preference() -> None:
    rng = np.random.default_rng(2)
    p_values = [summarize(_simulate(rng, 200, 0.5, 0.5)).p_value for _ in range(40)]
    false_alarms = sum(p < 0.05 for p in p_values)
    assert false_alarms <= 6  # ~2 expected; binomial(40, 0.05) exceeds 6 with probability < 0.1 %
