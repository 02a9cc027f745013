"""Demo content for ``shoprank serve --demo``: a merchandiser login and two experiments with simulated traffic.

- ``rerank-ab``: A/B test, first-stage order (control) vs cross-encoder reranking, half of the ``search-ranking``
  namespace;
- ``rerank-interleave``: team-draft interleaving of the same two rankers, the other half.

Traffic comes from :mod:`shoprank.simulator` through the app's real HTTP routes (in process), spread over the
past two weeks, with a +8 % click lift and +5 % purchase lift for the reranked arm. Idempotent: an existing demo
is left as it is.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from experiments.manage import ExperimentSpec, VariantSpec, create_experiment, get_experiment, start_experiment
from shoprank.db import Database
from shoprank.users import User, create_user, set_password

DEMO_EMAIL = "merchandiser@demo.shoprank.local"
DEMO_ACTOR = "demo-setup"


@dataclass
class DemoSetup:
    email: str
    password: str
    created_experiments: list[str]


def demo_specs() -> list[ExperimentSpec]:
    rankers = [
        VariantSpec("control", "First stage only (dense + BM25 fusion)", rerank=False),
        VariantSpec("rerank", "Cross-encoder rerank of the top 100", rerank=True),
    ]
    return [
        ExperimentSpec(
            key="rerank-ab",
            name="Cross-encoder reranking vs first stage",
            hypothesis="Reranking the first stage's top 100 with the multilingual cross-encoder puts relevant "
            "products higher, so shoppers click (CTR) and buy (conversion) more.",
            variants=[VariantSpec(**vars(v)) for v in rankers],
            namespace="search-ranking",
            namespace_start=0.0,
            namespace_end=0.5,
            primary_metric="ctr",
            target_mde=0.05,
        ),
        ExperimentSpec(
            key="rerank-interleave",
            name="Interleaving: reranked vs first-stage lists",
            hypothesis="Shown side by side in one list, shoppers prefer the reranked order (team B).",
            kind="interleaving",
            variants=[VariantSpec(**vars(v)) for v in rankers],
            namespace="search-ranking",
            namespace_start=0.5,
            namespace_end=1.0,
            primary_metric="ctr",
        ),
    ]


def ensure_demo(db: Database, password: str | None = None) -> DemoSetup:
    """Create the demo experiments (started) unless they exist; (re)set the demo login to a fresh password.

    The password is random and printed by ``serve --demo`` only: demo mode never ships a known credential.
    """
    from sqlalchemy import select

    created: list[str] = []
    new_password = password or secrets.token_urlsafe(12)
    with db.session() as session:
        if session.scalar(select(User.id).where(User.email == DEMO_EMAIL)) is None:
            create_user(session, DEMO_EMAIL, new_password, "merchandiser")
        else:
            set_password(session, DEMO_EMAIL, new_password)
        for spec in demo_specs():
            if get_experiment(session, spec.key) is None:
                experiment = create_experiment(session, spec, DEMO_ACTOR)
                start_experiment(session, experiment, DEMO_ACTOR)
                created.append(spec.key)
    return DemoSetup(DEMO_EMAIL, new_password, created)


def simulate_demo_traffic(app: Any, users: int, *, days: int = 14, progress: Any = None) -> Any:
    from shoprank.simulator import FlaskTransport, SimulationConfig, Simulator

    config = SimulationConfig(users=users, ctr_lift=0.08, cvr_lift=0.05, days=days, seed=7, run_id="demo")
    return Simulator(FlaskTransport(app), config).run(progress=progress)
