"""Ship a winner: stop the experiment and make one variant's ranking config the default for all traffic.

The default lives in ``ranking_defaults`` (newest row wins, rows are never changed: the table is the history);
:class:`experiments.resolver.ExperimentResolver` reads it into its snapshot, so every web process serves it
within ``SHOPRANK_EXPERIMENTS_REFRESH_SECONDS`` (at once in the process that shipped). Running experiments still
decide for their own units; everyone else, including units of stopped experiments, gets the shipped config.

Shipping is deliberate: the caller must echo the experiment key (the server checks it, not a script), and when
the report has a reason not to trust the winner (sample ratio mismatch, the variant not delivered as
configured, a guardrail flagged) the caller must also acknowledge those reasons. Both the experiment's audit
trail (``shipped``) and the row itself record who shipped what, when and why.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from experiments.manage import ExperimentError, ranking_config, stop_experiment
from experiments.ranking import RankingConfig
from experiments.store.experiment_models import Experiment, ExperimentAudit, RankingDefault
from shoprank.db import utcnow

MAX_NOTE = 1000


@dataclass(frozen=True)
class ShipRequest:
    variant: str
    confirm_key: str  # must equal the experiment's key
    note: str = ""
    acknowledged: bool = False  # required when ``reasons_to_doubt`` is not empty


def ship_variant(
    session: Session,
    experiment: Experiment,
    request: ShipRequest,
    actor: str,
    *,
    reasons_to_doubt: Sequence[str] = (),
) -> RankingDefault:
    """Validate, stop the experiment if running, store the new default and audit it; the caller commits."""
    errors: dict[str, str] = {}
    variant = next((v for v in experiment.variants if v.key == request.variant), None)
    if experiment.status == "draft":
        errors["status"] = "a draft has no results to ship; start it first"
    if variant is None:
        errors["variant"] = f"no variant {request.variant!r} in {experiment.key}"
    if request.confirm_key.strip() != experiment.key:
        errors["confirm_key"] = f"type the experiment key ({experiment.key}) to confirm"
    if len(request.note) > MAX_NOTE:
        errors["note"] = f"at most {MAX_NOTE:,} characters"
    if reasons_to_doubt and not request.acknowledged:
        errors["acknowledged"] = (
            "the report has reasons not to trust this result (listed above); tick the box to ship anyway"
        )
    if errors:
        raise ExperimentError(errors)
    assert variant is not None
    if experiment.status == "running":
        stop_experiment(session, experiment, actor)
    shipped = RankingDefault(
        rerank=variant.rerank,
        model=variant.model,
        first_stage_top_k=variant.first_stage_top_k,
        device_preference=variant.device_preference,
        rerank_max_depth=variant.rerank_max_depth,
        passage_tokens=variant.passage_tokens,
        experiment_key=experiment.key,
        variant_key=variant.key,
        shipped_by=actor,
        shipped_at=utcnow(),
        note=request.note.strip(),
    )
    session.add(shipped)
    experiment.updated_at = shipped.shipped_at
    changes = {
        "variant": variant.key,
        "config": {
            "rerank": variant.rerank,
            "model": variant.model,
            "first_stage_top_k": variant.first_stage_top_k,
            "device_preference": variant.device_preference,
            "rerank_max_depth": variant.rerank_max_depth,
            "passage_tokens": variant.passage_tokens,
        },
        "note": shipped.note,
        "acknowledged": list(reasons_to_doubt),
    }
    session.add(
        ExperimentAudit(
            experiment=experiment,
            actor=actor,
            action="shipped",
            changes=json.dumps(changes, ensure_ascii=False, sort_keys=True),
        )
    )
    session.flush()
    return shipped


def current_default(session: Session) -> RankingDefault | None:
    """The newest shipped default, or None (the deployment's settings decide)."""
    return session.scalars(select(RankingDefault).order_by(RankingDefault.id.desc()).limit(1)).first()


def shipped_history(session: Session, limit: int = 10) -> list[RankingDefault]:
    return list(session.scalars(select(RankingDefault).order_by(RankingDefault.id.desc()).limit(limit)))


def as_config(row: RankingDefault) -> RankingConfig:
    return ranking_config(row)
