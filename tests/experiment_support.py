"""Helpers for the experiment tests: clean experiment state on the shared test database, quick specs."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete

from experiments.manage import ExperimentSpec, VariantSpec, create_experiment, start_experiment
from experiments.store.experiment_models import (
    Experiment,
    ExperimentAudit,
    ExperimentVariant,
    Exposure,
    RankingDefault,
)
from shoprank.users import User


def reset_experiments(services) -> None:
    """Remove every experiment, exposure, shipped default and user, so other tests' searches see no experiment."""
    with services.db.session() as session:
        for model in (ExperimentAudit, ExperimentVariant, Experiment, Exposure, RankingDefault, User):
            session.execute(delete(model))
    services.search.resolver.invalidate()


def ab_spec(key: str, **overrides) -> ExperimentSpec:
    values = dict(
        key=key,
        name=f"Test {key}",
        variants=[VariantSpec("control", rerank=False), VariantSpec("treatment", rerank=True)],
    )
    values.update(overrides)
    return ExperimentSpec(**values)


def running(services, spec: ExperimentSpec, actor: str = "tests") -> None:
    with services.db.session() as session:
        experiment = create_experiment(session, spec, actor)
        start_experiment(session, experiment, actor)
    services.search.resolver.invalidate()


def impression_event(body: dict[str, Any], unit: str) -> dict[str, Any]:
    """The impression a client posts for an ``/api/search`` or ``/api/rank`` answer: its id, variant and teams."""
    return {
        "id": body["impression_id"],
        "type": "impression",
        "unit": unit,
        "query": body["query"],
        "language": body["language"],
        "experiment": body["experiment"],
        "variant": body["variant"],
        "reranked": body["reranked"],
        "items": [{"sku": r["sku"], "position": r["rank"], "team": r["team"]} for r in body["results"]],
    }


def follow_up_event(kind: str, unit: str, impression_id: str, **fields: Any) -> dict[str, Any]:
    """A click, add_to_cart or purchase on a product of that impression (a fresh event id)."""
    return {"id": str(uuid.uuid4()), "type": kind, "unit": unit, "impression_id": impression_id, **fields}
