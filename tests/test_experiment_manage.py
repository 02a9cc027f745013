"""Experiment lifecycle: validation, what may change in which status, mutual exclusion at start, audit trail."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from experiments.assignment import assign
from experiments.hashing import gb_hash
from experiments.manage import (
    ExperimentError,
    VariantSpec,
    create_experiment,
    get_experiment,
    ranking_config,
    spec_of,
    start_experiment,
    stop_experiment,
    to_definition,
    update_experiment,
    validate_spec,
)
from experiments.store.experiment_models import Experiment, ExperimentVariant
from tests.experiment_support import ab_spec, reset_experiments


@pytest.fixture
def db_session(shop_services):
    reset_experiments(shop_services)
    with shop_services.db.session() as session:
        yield session
    reset_experiments(shop_services)


def test_growthbook_published_vectors():
    # GrowthBook SDK cases.json: hash(seed="", "a", 1) = 0.22; hash("seed", "a", 2) = 0.0505
    assert gb_hash("", "a", 1) == 0.22
    assert gb_hash("seed", "a", 2) == 0.0505


def test_validation_names_every_bad_field():
    spec = ab_spec(
        "Bad Key!",
        name="",
        coverage=0,
        languages=["german"],
        markets=["deu"],
        primary_metric="bounce",
        variants=[
            VariantSpec("control", weight=0),
            VariantSpec("control", first_stage_top_k=0, device_preference="tpu"),
        ],
    )
    errors = validate_spec(spec)
    for field in ("key", "name", "coverage", "languages", "markets", "primary_metric", "variants[0].weight"):
        assert field in errors, field
    assert "duplicate" in errors["variants[1].key"]
    assert "variants[1].first_stage_top_k" in errors and "variants[1].device_preference" in errors
    interleaving = ab_spec("il", kind="interleaving", variants=[VariantSpec("a"), VariantSpec("b")])
    assert "identically" in validate_spec(interleaving)["variants"]
    three = ab_spec("il3", kind="interleaving", variants=[VariantSpec("a"), VariantSpec("b"), VariantSpec("c")])
    assert "exactly two" in validate_spec(three)["variants"]


@pytest.mark.parametrize("depth", [0, -5, 101, 2.5, True, "20"])
def test_rerank_max_depth_outside_one_to_top_k_is_named(depth):
    spec = ab_spec("depth", variants=[VariantSpec("control"), VariantSpec("shallow", rerank_max_depth=depth)])
    errors = validate_spec(spec)
    assert set(errors) == {"variants[1].rerank_max_depth"}
    assert "first-stage top-K (100)" in errors["variants[1].rerank_max_depth"]


def test_rerank_max_depth_is_optional_and_bounded_by_the_variants_own_top_k():
    def spec(top_k: int, depth: int | None):
        variants = [VariantSpec("control"), VariantSpec("t", first_stage_top_k=top_k, rerank_max_depth=depth)]
        return ab_spec("depth", variants=variants)

    assert validate_spec(spec(100, None)) == {}
    assert validate_spec(spec(100, 1)) == {}
    assert validate_spec(spec(40, 40)) == {}
    assert set(validate_spec(spec(40, 41))) == {"variants[1].rerank_max_depth"}
    # Two interleaved rankers that differ only in depth are different rankers.
    interleaving = ab_spec(
        "il-depth", kind="interleaving", variants=[VariantSpec("a"), VariantSpec("b", rerank_max_depth=20)]
    )
    assert validate_spec(interleaving) == {}


def test_rerank_max_depth_on_a_variant_that_does_not_rerank_is_refused():
    spec = ab_spec("off", variants=[VariantSpec("control"), VariantSpec("first", rerank=False, rerank_max_depth=20)])
    errors = validate_spec(spec)
    assert set(errors) == {"variants[1].rerank_max_depth"} and "rerank is off" in errors["variants[1].rerank_max_depth"]
    assert not validate_spec(ab_spec("off2", variants=[VariantSpec("control"), VariantSpec("first", rerank=False)]))


def test_rerank_max_depth_is_stored_edited_and_audited(db_session):
    variants = [VariantSpec("control"), VariantSpec("shallow", rerank_max_depth=20)]
    experiment = create_experiment(db_session, ab_spec("depth-store", variants=variants), "alice@example.com")
    db_session.flush()
    db_session.expire_all()
    experiment = get_experiment(db_session, "depth-store")
    assert [v.rerank_max_depth for v in experiment.variants] == [None, 20]
    assert [ranking_config(v).rerank_max_depth for v in experiment.variants] == [None, 20]
    assert [v.ranking_config().rerank_max_depth for v in spec_of(experiment).variants] == [None, 20]
    created = json.loads(experiment.audit[0].changes)
    assert [v["rerank_max_depth"] for v in created["variants"]] == [None, 20]

    edit = spec_of(experiment)
    edit.variants[1].rerank_max_depth = None
    edit.variants[0].rerank_max_depth = 50
    assert set(update_experiment(db_session, experiment, edit, "alice@example.com")) == {"variants"}
    assert [v.rerank_max_depth for v in experiment.variants] == [50, None]

    start_experiment(db_session, experiment, "bob@example.com")
    deeper = spec_of(experiment)
    deeper.variants[0].rerank_max_depth = 60
    with pytest.raises(ExperimentError) as exc:  # the treatment is frozen while running, depth included
        update_experiment(db_session, experiment, deeper, "bob@example.com")
    assert set(exc.value.errors) == {"variants"}


def test_lifecycle_rules_and_audit_trail(db_session):
    experiment = create_experiment(db_session, ab_spec("lifecycle", coverage=0.3), "alice@example.com")
    with pytest.raises(ExperimentError, match="already exists"):
        create_experiment(db_session, ab_spec("lifecycle"), "alice@example.com")
    draft_edit = spec_of(experiment)
    draft_edit.variants[1].first_stage_top_k = 50
    draft_edit.seed = "phase-1"
    assert set(update_experiment(db_session, experiment, draft_edit, "alice@example.com")) == {"variants", "seed"}
    assert [v.first_stage_top_k for v in experiment.variants] == [100, 50]

    start_experiment(db_session, experiment, "bob@example.com")
    assert experiment.status == "running" and experiment.started_at is not None
    frozen = spec_of(experiment)
    frozen.variants[1].weight = 3
    frozen.languages = ["de"]
    with pytest.raises(ExperimentError) as exc:
        update_experiment(db_session, experiment, frozen, "bob@example.com")
    assert set(exc.value.errors) == {"variants", "languages"}
    lower = spec_of(experiment)
    lower.coverage = 0.1
    with pytest.raises(ExperimentError, match="only grow"):
        update_experiment(db_session, experiment, lower, "bob@example.com")
    grow = spec_of(experiment)
    grow.coverage, grow.name = 0.6, "Renamed"
    assert set(update_experiment(db_session, experiment, grow, "bob@example.com")) == {"coverage", "name"}

    stop_experiment(db_session, experiment, "carol@example.com")
    with pytest.raises(ExperimentError):
        start_experiment(db_session, experiment, "carol@example.com")
    with pytest.raises(ExperimentError):
        stop_experiment(db_session, experiment, "carol@example.com")
    db_session.flush()
    trail = [(a.action, a.actor) for a in get_experiment(db_session, "lifecycle").audit]
    assert trail == [
        ("created", "alice@example.com"),
        ("updated", "alice@example.com"),
        ("started", "bob@example.com"),
        ("updated", "bob@example.com"),
        ("stopped", "carol@example.com"),
    ]
    changes = json.loads(experiment.audit[3].changes)
    assert changes == {"coverage": [0.3, 0.6], "name": ["Test lifecycle", "Renamed"]}


def test_overlapping_experiments_cannot_both_run(db_session):
    first = create_experiment(db_session, ab_spec("first", namespace="ranking", namespace_end=0.5), "t")
    start_experiment(db_session, first, "t")
    clash = create_experiment(db_session, ab_spec("clash", namespace="ranking", namespace_start=0.4), "t")
    with pytest.raises(ExperimentError, match="first"):
        start_experiment(db_session, clash, "t")
    unscoped = create_experiment(db_session, ab_spec("unscoped"), "t")
    with pytest.raises(ExperimentError):
        start_experiment(db_session, unscoped, "t")
    disjoint = create_experiment(db_session, ab_spec("disjoint", namespace="ranking", namespace_start=0.5), "t")
    start_experiment(db_session, disjoint, "t")
    middle = create_experiment(
        db_session, ab_spec("middle", namespace="ranking", namespace_start=0.4, namespace_end=0.6), "t"
    )
    with pytest.raises(ExperimentError, match="disjoint, first"):  # overlaps both running slices
        start_experiment(db_session, middle, "t")
    elsewhere = create_experiment(db_session, ab_spec("elsewhere", namespace="emails", namespace_end=0.1), "t")
    with pytest.raises(ExperimentError, match="disjoint, first"):  # another namespace hashes units independently
        start_experiment(db_session, elsewhere, "t")
    german = create_experiment(db_session, ab_spec("german", languages=["de"]), "t")
    french = create_experiment(db_session, ab_spec("french", languages=["fr"]), "t")
    stop_experiment(db_session, first, "t")
    stop_experiment(db_session, disjoint, "t")
    start_experiment(db_session, german, "t")
    start_experiment(db_session, french, "t")  # disjoint targeting: no shopper can be in both
    swiss_german = create_experiment(db_session, ab_spec("swiss-german", languages=["de-ch"]), "t")
    with pytest.raises(ExperimentError, match="german"):
        start_experiment(db_session, swiss_german, "t")


def _orm_experiment(coverage: float, weights: list[float]) -> Experiment:
    experiment = Experiment(
        key="cov",
        name="cov",
        kind="ab",
        status="running",
        coverage=coverage,
        seed="cov",
        namespace=None,
        namespace_start=0.0,
        namespace_end=1.0,
        languages="",
        markets="",
    )
    experiment.variants = [ExperimentVariant(position=i, key=f"v{i}", weight=w) for i, w in enumerate(weights)]
    return experiment


@settings(max_examples=60, deadline=None)
@given(
    units=st.lists(st.text(alphabet="abcdef0123456789-", min_size=4, max_size=24), min_size=1, max_size=40),
    low=st.floats(0.01, 1.0),
    high=st.floats(0.01, 1.0),
    weights=st.lists(st.floats(0.1, 10), min_size=2, max_size=4),
)
def test_raising_coverage_through_the_stored_model_never_moves_an_included_unit(units, low, high, weights):
    low, high = sorted((low, high))
    before = to_definition(_orm_experiment(low, weights))
    after = to_definition(_orm_experiment(high, weights))
    for unit in units:
        first = assign(before, unit)
        if first is not None and first.in_experiment:
            second = assign(after, unit)
            assert second is not None and second.variant_key == first.variant_key
