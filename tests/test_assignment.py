"""Assignment: GrowthBook's published SDK vectors, stickiness and coverage properties, targeting, exclusion."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from experiments.assignment import (
    AssignmentReason,
    ExperimentDefinition,
    ExperimentKind,
    ExperimentStatus,
    Holdout,
    Namespace,
    Variant,
    assign,
    choose_variant,
    get_bucket_ranges,
    get_equal_weights,
    in_holdout,
    in_namespace,
    normalize_weights,
)
from experiments.hashing import fnv1a32, gb_hash

CASES = json.loads((Path(__file__).parent / "data" / "growthbook_cases.json").read_text())


def two_way(key: str = "exp", **kwargs: object) -> ExperimentDefinition:
    return ExperimentDefinition(key=key, variants=(Variant("control"), Variant("treatment")), **kwargs)  # type: ignore[arg-type]


# --- GrowthBook SDK test vectors -----------------------------------------------------------------------------------


def test_fnv1a32_known_values() -> None:
    # FNV-1a 32-bit reference values (Fowler/Noll/Vo test suite)
    assert fnv1a32("") == 0x811C9DC5
    assert fnv1a32("a") == 0xE40C292C
    assert fnv1a32("foobar") == 0xBF9CF968


@pytest.mark.parametrize(("seed", "value", "version", "expected"), CASES["hash"])
def test_hash_matches_growthbook_vectors(seed: str, value: str, version: int, expected: float | None) -> None:
    result = gb_hash(seed, value, version)
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected, abs=1e-12)


def test_hash_examples_from_the_issue() -> None:
    assert gb_hash("", "a", 1) == pytest.approx(0.22)
    assert gb_hash("seed", "a", 2) == pytest.approx(0.0505)


@pytest.mark.parametrize(
    ("name", "args", "expected"), CASES["getBucketRange"], ids=[c[0] for c in CASES["getBucketRange"]]
)
def test_bucket_ranges_match_growthbook_vectors(name: str, args: list, expected: list) -> None:
    num_variations, coverage, weights = args
    ranges = get_bucket_ranges(num_variations, coverage, weights)
    assert len(ranges) == len(expected)
    for (start, end), (want_start, want_end) in zip(ranges, expected, strict=True):
        assert start == pytest.approx(want_start, abs=1e-9)
        assert end == pytest.approx(want_end, abs=1e-9)


@pytest.mark.parametrize(
    ("name", "n", "ranges", "expected"), CASES["chooseVariation"], ids=[c[0] for c in CASES["chooseVariation"]]
)
def test_choose_variant_matches_growthbook_vectors(name: str, n: float, ranges: list, expected: int) -> None:
    assert choose_variant(n, [tuple(r) for r in ranges]) == expected


@pytest.mark.parametrize(
    ("name", "unit", "namespace", "expected"), CASES["inNamespace"], ids=[c[0] for c in CASES["inNamespace"]]
)
def test_in_namespace_matches_growthbook_vectors(name: str, unit: str, namespace: list, expected: bool) -> None:
    assert in_namespace(unit, Namespace(*namespace)) is expected


@pytest.mark.parametrize(("n", "expected"), CASES["getEqualWeights"])
def test_equal_weights_match_growthbook_vectors(n: int, expected: list[float]) -> None:
    assert get_equal_weights(n) == pytest.approx(expected, abs=1e-8)


def _definition_from_growthbook(experiment: dict) -> ExperimentDefinition:
    count = len(experiment["variations"])
    weights = experiment.get("weights") or [1.0] * count
    namespace = experiment.get("namespace")
    return ExperimentDefinition(
        key=experiment["key"],
        variants=tuple(Variant(str(i), w) for i, w in enumerate(weights)),
        status=ExperimentStatus.STOPPED if experiment.get("active") is False else ExperimentStatus.RUNNING,
        coverage=experiment.get("coverage", 1.0),
        seed=experiment.get("seed"),
        hash_version=experiment.get("hashVersion", 1),
        namespace=Namespace(*namespace) if namespace else None,
    )


@pytest.mark.parametrize("case", CASES["run"], ids=[c[0] for c in CASES["run"]])
def test_assign_matches_growthbook_run_vectors(case: list) -> None:
    name, context, experiment, expected_value, in_experiment, hash_used = case
    unit = context["attributes"]["id"]
    if len(experiment["variations"]) < 2:
        with pytest.raises(ValueError):
            _definition_from_growthbook(experiment)
        return
    result = assign(_definition_from_growthbook(experiment), unit, {})
    served = result.variant_index if result is not None else 0
    assert experiment["variations"][served] == expected_value
    assert (result is not None and result.in_experiment) is in_experiment


# --- properties the issue asks for ---------------------------------------------------------------------------------

unit_ids = st.text(min_size=1, max_size=40)
seeds = st.text(max_size=30)
weight_lists = st.lists(st.floats(min_value=0.01, max_value=100, allow_nan=False), min_size=2, max_size=5)


@settings(max_examples=300, deadline=None)
@given(unit=unit_ids, seed=seeds, weights=weight_lists, coverage=st.floats(0, 1))
def test_same_unit_and_seed_always_get_the_same_variant(
    unit: str, seed: str, weights: list[float], coverage: float
) -> None:
    definition = ExperimentDefinition(
        key="exp", variants=tuple(Variant(f"v{i}", w) for i, w in enumerate(weights)), seed=seed, coverage=coverage
    )
    first = assign(definition, unit)
    rebuilt = ExperimentDefinition(
        key="exp", variants=tuple(Variant(f"v{i}", w) for i, w in enumerate(weights)), seed=seed, coverage=coverage
    )
    assert assign(rebuilt, unit) == first


@settings(max_examples=500, deadline=None)
@given(
    unit=unit_ids,
    seed=seeds,
    weights=weight_lists,
    low=st.floats(0, 1),
    high=st.floats(0, 1),
    version=st.sampled_from([1, 2]),
)
def test_raising_coverage_never_moves_an_included_unit(
    unit: str, seed: str, weights: list[float], low: float, high: float, version: int
) -> None:
    low, high = min(low, high), max(low, high)
    variants = tuple(Variant(f"v{i}", w) for i, w in enumerate(weights))
    before = assign(ExperimentDefinition("exp", variants, coverage=low, seed=seed, hash_version=version), unit)
    after = assign(ExperimentDefinition("exp", variants, coverage=high, seed=seed, hash_version=version), unit)
    if before is not None:
        assert after is not None
        assert after.variant_index == before.variant_index


def test_raising_coverage_only_adds_units_over_a_population() -> None:
    units = [f"visitor-{i}" for i in range(5000)]
    variants = (Variant("control"), Variant("b", 2), Variant("c"))
    small = {u: assign(ExperimentDefinition("exp", variants, coverage=0.3), u) for u in units}
    large = {u: assign(ExperimentDefinition("exp", variants, coverage=0.8), u) for u in units}
    included_small = {u: a.variant_key for u, a in small.items() if a is not None}
    assert 0.25 < len(included_small) / len(units) < 0.35
    assert all(large[u] is not None and large[u].variant_key == v for u, v in included_small.items())
    assert 0.75 < sum(a is not None for a in large.values()) / len(units) < 0.85


def test_split_follows_weights() -> None:
    definition = ExperimentDefinition("split", (Variant("a", 1), Variant("b", 3)))
    counts = Counter(assign(definition, f"u{i}").variant_key for i in range(20000))  # type: ignore[union-attr]
    assert counts["b"] / 20000 == pytest.approx(0.75, abs=0.015)


def test_normalize_weights_accepts_relative_weights_and_rejects_nonsense() -> None:
    assert normalize_weights([50, 50]) == (0.5, 0.5)
    assert normalize_weights([1, 3]) == (0.25, 0.75)
    for bad in ([], [0, 0], [-1, 2], [float("nan"), 1]):
        with pytest.raises(ValueError):
            normalize_weights(bad)


# --- status, targeting, namespaces, holdouts -----------------------------------------------------------------------


@pytest.mark.parametrize("status", [ExperimentStatus.DRAFT, ExperimentStatus.STOPPED])
def test_not_running_experiment_serves_control_without_exposure(status: ExperimentStatus) -> None:
    for i in range(200):
        result = assign(two_way(status=status), f"u{i}")
        assert result is not None
        assert (result.variant_index, result.variant_key, result.in_experiment) == (0, "control", False)
        assert result.reason is AssignmentReason.NOT_RUNNING


def test_running_experiment_assigns_and_reports_the_bucket() -> None:
    result = assign(two_way(key="k", seed="seed"), "a")
    assert result is not None and result.in_experiment
    assert result.bucket == pytest.approx(0.0505)
    assert result.variant_key == "control"  # 0.0505 < 0.5
    assert result.reason is AssignmentReason.ASSIGNED


def test_missing_unit_id_is_not_assigned() -> None:
    assert assign(two_way(), "") is None
    assert assign(two_way(), None) is None


def test_language_and_market_targeting() -> None:
    definition = two_way(languages=frozenset({"de", "fr-CH"}), markets=frozenset({"ch", "DE"}))
    assert assign(definition, "u1", {"language": "de", "market": "DE"}) is not None
    assert assign(definition, "u1", {"language": "de-AT", "market": "CH"}) is not None  # primary subtag
    assert assign(definition, "u1", {"language": "fr_ch", "market": "ch"}) is not None  # separators and case
    assert assign(definition, "u1", {"language": "fr", "market": "CH"}) is None  # fr-CH targets only fr-CH
    assert assign(definition, "u1", {"language": "en", "market": "DE"}) is None
    assert assign(definition, "u1", {"language": "de", "market": "US"}) is None
    assert assign(definition, "u1", {}) is None
    assert assign(two_way(), "u1", {}) is not None  # no targeting: everyone


def test_namespaces_make_experiments_mutually_exclusive() -> None:
    left, right = Namespace("search-ranking", 0, 0.5), Namespace("search-ranking", 0.5, 1)
    first = two_way("first", namespace=left)
    second = two_way("second", namespace=right)
    in_first = in_second = 0
    for i in range(4000):
        a, b = assign(first, f"u{i}"), assign(second, f"u{i}")
        assert a is None or b is None
        assert a is not None or b is not None  # the two slices cover everyone
        in_first += a is not None
        in_second += b is not None
    assert in_first / 4000 == pytest.approx(0.5, abs=0.04)
    # The rule starting an experiment relies on (experiments.manage.can_share_units, test_experiment_manage.py):
    assert not left.overlaps(right) and not right.overlaps(left)  # adjacent half-open slices share nothing
    middle = Namespace("search-ranking", 0.4, 0.6)
    assert middle.overlaps(left) and middle.overlaps(right) and left.overlaps(middle)
    assert not Namespace("emails", 0, 1).overlaps(left)  # another namespace is hashed independently


def test_holdout_units_get_control_and_no_exposure() -> None:
    holdout = Holdout("global-2025", fraction=0.1)
    definition = two_way(holdout=holdout)
    held = 0
    for i in range(5000):
        unit = f"u{i}"
        result = assign(definition, unit)
        assert result is not None
        if in_holdout(unit, holdout):
            held += 1
            assert (result.variant_index, result.in_experiment, result.reason) == (0, False, AssignmentReason.HOLDOUT)
        else:
            assert result.in_experiment
    assert held / 5000 == pytest.approx(0.1, abs=0.015)


def test_interleaving_experiment_includes_units_by_coverage_without_splitting_them() -> None:
    definition = ExperimentDefinition(
        "rankers",
        (Variant("bm25"), Variant("bge-m3")),
        kind="interleaving",
        coverage=0.5,  # type: ignore[arg-type]
    )
    results = [assign(definition, f"u{i}") for i in range(4000)]
    included = [r for r in results if r is not None]
    assert len(included) / len(results) == pytest.approx(0.5, abs=0.04)
    assert all(r.interleaved and r.in_experiment and r.variant_key == "bm25" for r in included)
    assert not any(r.interleaved for r in (assign(two_way(), f"u{i}") for i in range(100)) if r is not None)


def test_definition_validation() -> None:
    with pytest.raises(ValueError):
        ExperimentDefinition("x", (Variant("only"),))
    with pytest.raises(ValueError):
        ExperimentDefinition("x", (Variant("a"), Variant("a")))
    with pytest.raises(ValueError):
        ExperimentDefinition("x", (Variant("a", 1), Variant("b", 0)))
    with pytest.raises(ValueError):
        two_way(coverage=1.5)
    with pytest.raises(ValueError):
        two_way(hash_version=3)
    with pytest.raises(ValueError):
        ExperimentDefinition("x", (Variant("a"), Variant("b"), Variant("c")), kind=ExperimentKind.INTERLEAVING)
    with pytest.raises(ValueError):
        Namespace("ns", 0.6, 0.4)
    with pytest.raises(ValueError):
        Holdout("h", 1.0)
