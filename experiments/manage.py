"""Create, edit, start and stop experiments, with validation, the status rules and an audit trail.

Framework-free: the dashboard parses its forms into :class:`ExperimentSpec` and calls these functions; the CLI,
the simulator and the tests use them directly. The rules protect the numbers:

- Only a draft may change its variants, weights, seed, namespace, targeting or kind: changing any of them while
  running re-randomises units or changes the treatment halfway, and the analysis would mix two experiments.
- A running experiment may change its name, hypothesis, primary metric, target MDE and coverage (raising
  coverage only adds units, see ``experiments.assignment``).
- Starting checks that no other running experiment can reach the same units: two experiments that both decide
  the search ranking must be mutually exclusive (disjoint slices of one namespace, or disjoint targeting).
- Stopped is final: a stopped experiment serves control and is kept for its report. Run a new one to go on.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from experiments.assignment import ExperimentDefinition, ExperimentKind, ExperimentStatus, Namespace, Variant
from experiments.ranking import RankingConfig
from experiments.store.experiment_models import (
    INTERLEAVED_VARIANT,
    PRIMARY_METRICS,
    Experiment,
    ExperimentAudit,
    ExperimentVariant,
    RankingDefault,
)
from reranking.passage_budget import MAX_PASSAGE_TOKENS, MIN_PASSAGE_TOKENS
from shoprank.db import utcnow

_KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{1,63}$")
_VARIANT_KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_MODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,199}$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})*$")
_MARKET = re.compile(r"^[A-Z]{2}$")
DEVICES = ("cuda", "cpu")
MAX_VARIANTS = 6
MAX_TOP_K = 1000
#: Fields a running experiment may still change.
EDITABLE_WHILE_RUNNING = frozenset({"name", "hypothesis", "primary_metric", "target_mde", "coverage"})
EDITABLE_WHEN_STOPPED = frozenset({"name", "hypothesis"})


class ExperimentError(ValueError):
    """The change is not allowed or the input is invalid; ``errors`` maps field names to messages."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


@dataclass
class VariantSpec:
    key: str
    name: str = ""
    weight: float = 1.0
    rerank: bool = True
    model: str | None = None
    first_stage_top_k: int = 100
    device_preference: str | None = None
    #: Most first-stage candidates to rerank; None = the deployment's ``SHOPRANK_RERANK_MAX_DEPTH``.
    rerank_max_depth: int | None = None
    #: Passage token budget; None = the deployment's ``SHOPRANK_RERANK_PASSAGE_TOKENS``.
    passage_tokens: int | None = None

    def ranking_config(self) -> RankingConfig:
        return ranking_config(self)


@dataclass
class ExperimentSpec:
    key: str
    name: str
    variants: list[VariantSpec]
    hypothesis: str = ""
    kind: str = "ab"
    coverage: float = 1.0
    seed: str = ""  # empty: the key
    namespace: str | None = None
    namespace_start: float = 0.0
    namespace_end: float = 1.0
    languages: list[str] = field(default_factory=list)
    markets: list[str] = field(default_factory=list)
    primary_metric: str = "ctr"
    target_mde: float = 0.05


#: Weights are relative (``1:1``, ``50:50``, ``90:10``); these bounds keep every share and sum far from float
#: overflow and underflow (``1e308`` + ``1e308`` is ``inf``), while allowing any split a person would enter.
MIN_WEIGHT = 0.001
MAX_WEIGHT = 1_000_000.0


def validate_spec(spec: ExperimentSpec) -> dict[str, str]:
    """Every problem with ``spec``, keyed by field (``variants[1].weight`` for a variant's field)."""
    errors: dict[str, str] = {}
    if not _KEY.match(spec.key or ""):
        errors["key"] = "2-64 characters: lower-case letters, digits, '-' and '_', starting with a letter or digit"
    if not spec.name.strip() or len(spec.name) > 200:
        errors["name"] = "a name of 1 to 200 characters is required"
    if len(spec.hypothesis) > 5000:
        errors["hypothesis"] = "at most 5,000 characters"
    if spec.kind not in ("ab", "interleaving"):
        errors["kind"] = "must be 'ab' or 'interleaving'"
    if not (math.isfinite(spec.coverage) and 0 < spec.coverage <= 1):
        errors["coverage"] = "must be more than 0 % and at most 100 %"
    if len(spec.seed) > 128:
        errors["seed"] = "at most 128 characters"
    if spec.namespace is not None:
        if not _KEY.match(spec.namespace):
            errors["namespace"] = "2-64 characters: lower-case letters, digits, '-' and '_'"
        elif not (0 <= spec.namespace_start < spec.namespace_end <= 1):
            errors["namespace_range"] = "the namespace range must satisfy 0 <= start < end <= 1"
    for language in spec.languages:
        if not _LANGUAGE.match(language):
            errors["languages"] = f"{language!r} is not a language code such as de or pt-br"
    for market in spec.markets:
        if not _MARKET.match(market):
            errors["markets"] = f"{market!r} is not a two-letter market code such as DE"
    if spec.primary_metric not in PRIMARY_METRICS:
        errors["primary_metric"] = f"must be one of {', '.join(PRIMARY_METRICS)}"
    if not (math.isfinite(spec.target_mde) and 0 < spec.target_mde < 10):
        errors["target_mde"] = "the minimum detectable effect must be a positive relative lift (e.g. 5 %)"
    if len(spec.variants) < 2:
        errors["variants"] = "an experiment needs a control and at least one treatment"
    elif len(spec.variants) > MAX_VARIANTS:
        errors["variants"] = f"at most {MAX_VARIANTS} variants"
    elif spec.kind == "interleaving" and len(spec.variants) != 2:
        errors["variants"] = "an interleaving experiment compares exactly two rankers"
    seen: set[str] = set()
    for index, variant in enumerate(spec.variants):
        where = f"variants[{index}]"
        if not _VARIANT_KEY.match(variant.key or ""):
            errors[f"{where}.key"] = "1-64 characters: lower-case letters, digits, '-' and '_'"
        elif variant.key in seen:
            errors[f"{where}.key"] = f"duplicate variant key {variant.key!r}"
        elif variant.key == INTERLEAVED_VARIANT:
            errors[f"{where}.key"] = f"{INTERLEAVED_VARIANT!r} is reserved for interleaving exposures"
        seen.add(variant.key)
        if len(variant.name) > 200:
            errors[f"{where}.name"] = "at most 200 characters"
        if not (math.isfinite(variant.weight) and MIN_WEIGHT <= variant.weight <= MAX_WEIGHT):
            errors[f"{where}.weight"] = f"must be a number between {MIN_WEIGHT:g} and {MAX_WEIGHT:g}"
        if variant.model is not None and not _MODEL.match(variant.model):
            errors[f"{where}.model"] = "a model id such as BAAI/bge-reranker-v2-m3 (or empty for the default)"
        if not 1 <= variant.first_stage_top_k <= MAX_TOP_K:
            errors[f"{where}.first_stage_top_k"] = f"must be between 1 and {MAX_TOP_K}"
        if variant.device_preference not in (None, *DEVICES):
            errors[f"{where}.device_preference"] = "must be cuda, cpu or empty (any worker)"
        depth_error = _rerank_depth_error(variant)
        if depth_error:
            errors[f"{where}.rerank_max_depth"] = depth_error
        budget_error = _passage_tokens_error(variant)
        if budget_error:
            errors[f"{where}.passage_tokens"] = budget_error
    if (
        spec.kind == "interleaving"
        and len(spec.variants) == 2
        and not errors
        and spec.variants[0].ranking_config() == spec.variants[1].ranking_config()
    ):
        errors["variants"] = "the two rankers are configured identically: there is nothing to compare"
    return errors


def _rerank_depth_error(variant: VariantSpec) -> str | None:
    """Why ``variant.rerank_max_depth`` is invalid, or None. Only the first-stage head can be reranked, so the
    depth is at most the variant's first-stage top-K (deeper would silently mean top-K)."""
    depth = variant.rerank_max_depth
    if depth is None:
        return None
    if not variant.rerank:  # it would be ignored, and two first-stage-only arms would differ only in appearance
        return "only a reranking variant has a rerank depth: leave it empty when rerank is off"
    if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= variant.first_stage_top_k:
        return (
            f"empty (the deployment default) or a whole number from 1 to the first-stage top-K "
            f"({variant.first_stage_top_k})"
        )
    return None


def _passage_tokens_error(variant: VariantSpec) -> str | None:
    """Why ``variant.passage_tokens`` is invalid, or None."""
    budget = variant.passage_tokens
    if budget is None:
        return None
    if not variant.rerank:
        return "only a reranking variant has a passage token budget: leave it empty when rerank is off"
    if isinstance(budget, bool) or not isinstance(budget, int) or not MIN_PASSAGE_TOKENS <= budget <= MAX_PASSAGE_TOKENS:
        return f"empty (the deployment default) or a whole number of tokens from {MIN_PASSAGE_TOKENS} to {MAX_PASSAGE_TOKENS}"
    return None


# --- conversions ---------------------------------------------------------------------------------------------------


def ranking_config(variant: ExperimentVariant | VariantSpec | RankingDefault) -> RankingConfig:
    """How search ranks for a variant's units, from the stored row or a spec, or for everyone from the shipped
    default (the same six fields)."""
    return RankingConfig(
        rerank=variant.rerank,
        model=variant.model,
        first_stage_top_k=variant.first_stage_top_k,
        device_preference=variant.device_preference,
        rerank_max_depth=variant.rerank_max_depth,
        passage_tokens=variant.passage_tokens,
    )


def _namespace(experiment: Experiment) -> Namespace | None:
    """The stored row's namespace slice, or None when it has none."""
    if not experiment.namespace:
        return None
    return Namespace(experiment.namespace, experiment.namespace_start, experiment.namespace_end)


def to_definition(experiment: Experiment) -> ExperimentDefinition:
    """The pure definition ``experiments.assignment.assign`` works on."""
    return ExperimentDefinition(
        key=experiment.key,
        variants=tuple(Variant(v.key, v.weight, v.name) for v in experiment.variants),
        status=ExperimentStatus(experiment.status),
        coverage=experiment.coverage,
        seed=experiment.seed or experiment.key,
        namespace=_namespace(experiment),
        languages=frozenset(experiment.language_list()),
        markets=frozenset(experiment.market_list()),
        kind=ExperimentKind(experiment.kind),
    )


def spec_of(experiment: Experiment) -> ExperimentSpec:
    return ExperimentSpec(
        key=experiment.key,
        name=experiment.name,
        hypothesis=experiment.hypothesis,
        kind=experiment.kind,
        coverage=experiment.coverage,
        seed="" if experiment.seed == experiment.key else experiment.seed,
        namespace=experiment.namespace,
        namespace_start=experiment.namespace_start,
        namespace_end=experiment.namespace_end,
        languages=experiment.language_list(),
        markets=experiment.market_list(),
        primary_metric=experiment.primary_metric,
        target_mde=experiment.target_mde,
        variants=[
            VariantSpec(
                key=v.key,
                name=v.name,
                weight=v.weight,
                rerank=v.rerank,
                model=v.model,
                first_stage_top_k=v.first_stage_top_k,
                device_preference=v.device_preference,
                rerank_max_depth=v.rerank_max_depth,
                passage_tokens=v.passage_tokens,
            )
            for v in experiment.variants
        ],
    )


def _spec_dict(spec: ExperimentSpec) -> dict[str, Any]:
    data = asdict(spec)
    data["seed"] = spec.seed or spec.key
    return data


def _audit(session: Session, experiment: Experiment, actor: str, action: str, changes: dict[str, Any]) -> None:
    session.add(
        ExperimentAudit(
            experiment=experiment,
            actor=actor,
            action=action,
            changes=json.dumps(changes, ensure_ascii=False, sort_keys=True, default=str),
        )
    )


# --- lifecycle -----------------------------------------------------------------------------------------------------


def _apply(experiment: Experiment, spec: ExperimentSpec) -> None:
    experiment.name = spec.name.strip()
    experiment.hypothesis = spec.hypothesis.strip()
    experiment.kind = spec.kind
    experiment.coverage = spec.coverage
    experiment.seed = spec.seed.strip() or spec.key
    experiment.namespace = spec.namespace
    experiment.namespace_start = spec.namespace_start if spec.namespace else 0.0
    experiment.namespace_end = spec.namespace_end if spec.namespace else 1.0
    experiment.languages = ",".join(sorted(set(spec.languages)))
    experiment.markets = ",".join(sorted(set(spec.markets)))
    experiment.primary_metric = spec.primary_metric
    experiment.target_mde = spec.target_mde


def _variants(spec: ExperimentSpec) -> list[ExperimentVariant]:
    return [
        ExperimentVariant(
            position=index,
            key=v.key,
            name=v.name.strip(),
            weight=v.weight,
            rerank=v.rerank,
            model=v.model or None,
            first_stage_top_k=v.first_stage_top_k,
            device_preference=v.device_preference or None,
            rerank_max_depth=v.rerank_max_depth,
            passage_tokens=v.passage_tokens,
        )
        for index, v in enumerate(spec.variants)
    ]


def create_experiment(session: Session, spec: ExperimentSpec, actor: str) -> Experiment:
    errors = validate_spec(spec)
    if not errors and session.scalar(select(Experiment.id).where(Experiment.key == spec.key)) is not None:
        errors["key"] = f"an experiment with key {spec.key!r} already exists"
    if errors:
        raise ExperimentError(errors)
    experiment = Experiment(key=spec.key, status="draft")
    _apply(experiment, spec)
    experiment.variants = _variants(spec)
    session.add(experiment)
    _audit(session, experiment, actor, "created", _spec_dict(spec))
    session.flush()
    return experiment


def _diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, list[Any]]:
    return {name: [old[name], new[name]] for name in new if old.get(name) != new[name]}


def update_experiment(session: Session, experiment: Experiment, spec: ExperimentSpec, actor: str) -> dict[str, Any]:
    """Apply ``spec`` (its key must stay the same); returns the audited changes ({} when nothing changed)."""
    errors = validate_spec(spec)
    if spec.key != experiment.key:
        errors["key"] = "the key of an existing experiment cannot change"
    if errors:
        raise ExperimentError(errors)
    changes = _diff(_spec_dict(spec_of(experiment)), _spec_dict(spec))
    allowed = {
        "draft": None,
        "running": EDITABLE_WHILE_RUNNING,
        "stopped": EDITABLE_WHEN_STOPPED,
    }[experiment.status]
    if allowed is not None:
        frozen = sorted(set(changes) - allowed)
        if frozen:
            raise ExperimentError(
                {
                    name: f"cannot change while the experiment is {experiment.status} "
                    "(it would re-randomise units or change the treatment halfway; start a new experiment)"
                    for name in frozen
                }
            )
        if "coverage" in changes and spec.coverage < experiment.coverage:
            # Lowering coverage sends already-exposed units back to the default while they stay in the report.
            raise ExperimentError(
                {"coverage": "coverage can only grow while running (lowering it would contaminate the results)"}
            )
    if not changes:
        return {}
    _apply(experiment, spec)
    if "variants" in changes:
        experiment.variants.clear()
        session.flush()
        experiment.variants.extend(_variants(spec))
    experiment.updated_at = utcnow()
    _audit(session, experiment, actor, "updated", changes)
    session.flush()
    return changes


def _targets_disjoint(first: Sequence[str], second: Sequence[str], *, languages: bool) -> bool:
    if not first or not second:
        return False
    if languages:  # "de" and "de-ch" reach the same shoppers: compare primary subtags
        return not ({t.split("-")[0] for t in first} & {t.split("-")[0] for t in second})
    return not (set(first) & set(second))


def can_share_units(first: Experiment, second: Experiment) -> bool:
    """Whether some unit could be in both experiments (conservative: True unless provably disjoint).

    Disjoint slices of one namespace never share a unit (``Namespace.overlaps``, the rule assignment relies on);
    slices of different namespaces may.
    """
    one, other = _namespace(first), _namespace(second)
    if one is not None and other is not None and one.name == other.name and not one.overlaps(other):
        return False
    if _targets_disjoint(first.language_list(), second.language_list(), languages=True):
        return False
    return not _targets_disjoint(first.market_list(), second.market_list(), languages=False)


def start_experiment(session: Session, experiment: Experiment, actor: str) -> None:
    if experiment.status != "draft":
        raise ExperimentError({"status": f"only a draft can start; this experiment is {experiment.status}"})
    errors = validate_spec(spec_of(experiment))
    if errors:
        raise ExperimentError(errors)
    running = session.scalars(
        select(Experiment).where(Experiment.status == "running", Experiment.id != experiment.id)
    ).all()
    clashes = [other.key for other in running if can_share_units(experiment, other)]
    if clashes:
        raise ExperimentError(
            {
                "namespace": f"running experiment(s) {', '.join(sorted(clashes))} can reach the same shoppers; both "
                "decide the search ranking, so give them disjoint ranges of one namespace (or disjoint targeting)"
            }
        )
    experiment.status = "running"
    experiment.started_at = utcnow()
    experiment.updated_at = experiment.started_at
    _audit(session, experiment, actor, "started", {"status": ["draft", "running"]})
    session.flush()


def stop_experiment(session: Session, experiment: Experiment, actor: str) -> None:
    if experiment.status != "running":
        raise ExperimentError({"status": f"only a running experiment can stop; this one is {experiment.status}"})
    experiment.status = "stopped"
    experiment.stopped_at = utcnow()
    experiment.updated_at = experiment.stopped_at
    _audit(session, experiment, actor, "stopped", {"status": ["running", "stopped"]})
    session.flush()


def get_experiment(session: Session, key: str) -> Experiment | None:
    return session.scalar(select(Experiment).where(Experiment.key == key))
