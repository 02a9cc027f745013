"""Team-draft interleaving: compare two rankers on the same result page (Radlinski, Kurup & Joachims, CIKM 2008).

Each result page merges ranker A's and ranker B's lists like two captains picking teams: every round a fair coin
says which team picks first, then each team adds its highest-ranked product not already on the page. Every
shown product carries its team; a click credits that team; the team with more clicked products wins the
impression. Over many impressions a binomial sign test on the decisive ones (ties dropped) says whether shoppers
prefer one ranker. Because both rankers are judged on the same page by the same shopper, interleaving needs far
fewer impressions than an A/B test (Chapelle et al., TOIS 2012; reports from Amazon and Etsy), but it measures
click preference, not revenue: confirm the winner with an A/B test.

The draft is deterministic: coins come from GrowthBook's v2 hash of a seed derived from (experiment, unit,
query), so the same shopper re-running the same query sees the same page and the same teams, and the server can
recompute team membership when a click beacon arrives.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from scipy import stats as scipy_stats

from experiments.hashing import gb_hash

_SEPARATOR = "\x1f"  # ASCII unit separator: ("a|b", "c") and ("a", "b|c") must not share a seed


class Team(StrEnum):
    A = "A"
    B = "B"


class Outcome(StrEnum):
    A_WINS = "A"
    B_WINS = "B"
    TIE = "tie"


@dataclass(frozen=True)
class InterleavedItem:
    item: str
    position: int  # 0-based position on the page
    team: Team | None  # None: appended after one list ran out; shown but never credited
    source_rank: int  # 0-based rank in the list it was taken from


@dataclass(frozen=True)
class Interleaving:
    seed: str
    items: tuple[InterleavedItem, ...]

    @property
    def ranking(self) -> list[str]:
        return [entry.item for entry in self.items]

    def team_sizes(self) -> tuple[int, int]:
        a = sum(1 for entry in self.items if entry.team is Team.A)
        b = sum(1 for entry in self.items if entry.team is Team.B)
        return a, b


def interleaving_seed(experiment_key: str, unit_id: str, query: str) -> str:
    """The per-(experiment, unit, query) seed. Pass the normalised query (``reranking.text.normalize_query``)."""
    return _SEPARATOR.join((experiment_key, unit_id, query))


def _a_picks_first(seed: str, round_index: int) -> bool:
    n = gb_hash(seed, str(round_index), 2)
    assert n is not None
    return n < 0.5


def _dedupe(ranking: Sequence[str]) -> list[str]:
    seen: set[str] = set()
    unique: list[str] = []
    for item in ranking:
        if item not in seen:
            seen.add(item)
            unique.append(item)
    return unique


def team_draft_interleave(
    ranking_a: Sequence[str],
    ranking_b: Sequence[str],
    *,
    seed: str,
    length: int | None = None,
    fill: bool = True,
) -> Interleaving:
    """Team-draft merge of two rankings of item ids (e.g. SKUs), deterministic in ``seed``.

    Duplicates inside a list are dropped (first occurrence wins); an item both rankers return is shown once, for
    the team that picked it first. Each time the teams are level a coin (the v2 hash of ``seed`` and the round
    number) decides who picks; otherwise the smaller team picks. As in Radlinski et al.'s Algorithm 2, drafting
    stops as soon as either list has nothing left to add (or ``length`` items are on the page), which keeps the
    teams within one item of each other. With ``fill`` the page is then topped up from the remaining list with
    *untagged* items, so shoppers still see a full page but a ranker that returned more results gains no credit.
    """
    if length is not None and length < 0:
        raise ValueError("length must be non-negative")
    lists = {Team.A: _dedupe(ranking_a), Team.B: _dedupe(ranking_b)}
    limit = length if length is not None else len(set(lists[Team.A]) | set(lists[Team.B]))
    cursors = {Team.A: 0, Team.B: 0}
    shown: set[str] = set()
    items: list[InterleavedItem] = []

    def next_for(team: Team) -> int | None:
        ranking = lists[team]
        while cursors[team] < len(ranking) and ranking[cursors[team]] in shown:
            cursors[team] += 1
        return cursors[team] if cursors[team] < len(ranking) else None

    def take(team: Team, rank: int, credited: bool) -> None:
        item = lists[team][rank]
        shown.add(item)
        items.append(InterleavedItem(item, len(items), team if credited else None, rank))

    sizes = {Team.A: 0, Team.B: 0}
    while len(items) < limit:
        # Radlinski et al.'s loop: draft only while BOTH teams still have something to add.
        rank_a, rank_b = next_for(Team.A), next_for(Team.B)
        if rank_a is None or rank_b is None:
            break
        if sizes[Team.A] < sizes[Team.B] or (sizes[Team.A] == sizes[Team.B] and _a_picks_first(seed, sizes[Team.A])):
            team, rank = Team.A, rank_a
        else:
            team, rank = Team.B, rank_b
        take(team, rank, credited=True)
        sizes[team] += 1

    if fill:
        for team in (Team.A, Team.B):
            while len(items) < limit and (spare := next_for(team)) is not None:
                take(team, spare, credited=False)
    return Interleaving(seed, tuple(items))


@dataclass(frozen=True)
class ImpressionCredit:
    clicks_a: int
    clicks_b: int
    outcome: Outcome


def credit_clicks(interleaving: Interleaving, clicked_items: Iterable[str]) -> ImpressionCredit:
    """Credit each clicked product (counted once however often clicked) to its team; the larger credit wins.

    Clicks on untagged fill items or on products not on the page are ignored.
    """
    teams = {entry.item: entry.team for entry in interleaving.items}
    clicked = set(clicked_items)
    clicks_a = sum(1 for item in clicked if teams.get(item) is Team.A)
    clicks_b = sum(1 for item in clicked if teams.get(item) is Team.B)
    if clicks_a > clicks_b:
        outcome = Outcome.A_WINS
    elif clicks_b > clicks_a:
        outcome = Outcome.B_WINS
    else:
        outcome = Outcome.TIE
    return ImpressionCredit(clicks_a, clicks_b, outcome)


@dataclass(frozen=True)
class InterleavingSummary:
    impressions: int
    wins_a: int
    wins_b: int
    ties: int
    preference_b: float  # (wins_b - wins_a) / impressions: > 0 means shoppers prefer B
    b_win_share: float | None  # wins_b / (wins_a + wins_b); 0.5 = no preference
    b_win_share_ci: tuple[float, float] | None  # Clopper–Pearson interval of b_win_share
    p_value: float  # two-sided exact binomial sign test of b_win_share = 0.5, ties dropped
    significant: bool
    winner: Team | None


def summarize_outcomes(wins_a: int, wins_b: int, ties: int, *, alpha: float = 0.05) -> InterleavingSummary:
    """Sign test on per-impression outcomes (counts, so the store can aggregate with SUM).

    The test treats impressions as independent. Impressions of one shopper are correlated, so with a few heavy
    users the p-value is optimistic; :func:`unit_level_outcomes` first reduces each unit to one outcome, the
    conservative alternative.
    """
    if min(wins_a, wins_b, ties) < 0:
        raise ValueError("counts must be non-negative")
    impressions = wins_a + wins_b + ties
    decisive = wins_a + wins_b
    if decisive == 0:
        return InterleavingSummary(impressions, wins_a, wins_b, ties, 0.0, None, None, 1.0, False, None)
    test = scipy_stats.binomtest(wins_b, decisive, 0.5, alternative="two-sided")
    interval = test.proportion_ci(confidence_level=1 - alpha, method="exact")
    significant = bool(test.pvalue < alpha)
    winner = (Team.B if wins_b > wins_a else Team.A) if significant else None
    return InterleavingSummary(
        impressions=impressions,
        wins_a=wins_a,
        wins_b=wins_b,
        ties=ties,
        preference_b=(wins_b - wins_a) / impressions,
        b_win_share=wins_b / decisive,
        b_win_share_ci=(float(interval.low), float(interval.high)),
        p_value=float(test.pvalue),
        significant=significant,
        winner=winner,
    )


def summarize(outcomes: Iterable[Outcome], *, alpha: float = 0.05) -> InterleavingSummary:
    outcomes = list(outcomes)
    return summarize_outcomes(
        sum(1 for o in outcomes if o is Outcome.A_WINS),
        sum(1 for o in outcomes if o is Outcome.B_WINS),
        sum(1 for o in outcomes if o is Outcome.TIE),
        alpha=alpha,
    )


def unit_level_outcomes(per_unit: Iterable[Iterable[Outcome]]) -> list[Outcome]:
    """One outcome per unit: the team that won more of the unit's impressions (tie if equal)."""
    result: list[Outcome] = []
    for outcomes in per_unit:
        outcomes = list(outcomes)
        a = sum(1 for o in outcomes if o is Outcome.A_WINS)
        b = sum(1 for o in outcomes if o is Outcome.B_WINS)
        result.append(Outcome.A_WINS if a > b else Outcome.B_WINS if b > a else Outcome.TIE)
    return result


def interleave_for(
    experiment_key: str,
    unit_id: str,
    query: str,
    ranking_a: Sequence[str],
    ranking_b: Sequence[str],
    *,
    length: int | None = None,
) -> Interleaving:
    """Convenience: :func:`team_draft_interleave` seeded by :func:`interleaving_seed`."""
    return team_draft_interleave(
        ranking_a, ranking_b, seed=interleaving_seed(experiment_key, unit_id, query), length=length
    )
