"""Demo content for ``shoprank serve --demo``: a merchandiser login and two experiments with simulated traffic.

- ``rerank-ab``: A/B test, first-stage order (control) vs cross-encoder reranking, half of the ``search-ranking``
  namespace;
- ``rerank-interleave``: team-draft interleaving of the same two rankers, the other half.

Traffic comes from :mod:`shopctl.simulator` through the app's real HTTP routes (in process), spread over the
past two weeks, with a +8 % click lift and +5 % purchase lift for the reranked arm. Idempotent: an existing demo
is left as it is.

The traffic is seeded in a background thread once the server is up (``start_demo_traffic``), paced so the shop
keeps answering; the dashboard shows a notice until it is done.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import Flask

from experiments.manage import ExperimentSpec, VariantSpec, create_experiment, get_experiment, start_experiment
from shopctl.simulator import FlaskTransport, SimulationConfig, SimulationResult, Simulator
from shoprank.db import Database
from shoprank.users import User, create_user, set_password
from webapp.background import BackgroundProgress

log = logging.getLogger(__name__)

DEMO_TRAFFIC_NOTICE = "Demo traffic is being simulated in the background"
#: Share of the time the background simulation works; it rests the rest, so live requests find the GIL, the
#: database and the single in-process rerank thread free (measured in docs/getting-started.md).
DEMO_TRAFFIC_SHARE = 0.5

DEMO_EMAIL = "merchandiser@demo.shoprank.local"
#: The demo's ops login: the merchandiser role cannot open the ops page, so ``serve --demo`` prints this one too.
DEMO_OPS_EMAIL = "ops@demo.shoprank.local"
DEMO_ACTOR = "demo-setup"


@dataclass
class DemoSetup:
    email: str
    password: str
    created_experiments: list[str]
    ops_email: str = DEMO_OPS_EMAIL
    ops_password: str = ""


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
    ops_password = password or secrets.token_urlsafe(12)
    with db.session() as session:
        for email, secret, role in ((DEMO_EMAIL, new_password, "merchandiser"), (DEMO_OPS_EMAIL, ops_password, "ops")):
            if session.scalar(select(User.id).where(User.email == email)) is None:
                create_user(session, email, secret, role)
            else:
                set_password(session, email, secret)
        for spec in demo_specs():
            if get_experiment(session, spec.key) is None:
                experiment = create_experiment(session, spec, DEMO_ACTOR)
                start_experiment(session, experiment, DEMO_ACTOR)
                created.append(spec.key)
    return DemoSetup(DEMO_EMAIL, new_password, created, DEMO_OPS_EMAIL, ops_password)


#: The simulated shoppers' ids start with this (``SimulationConfig.run_id`` "demo").
DEMO_UNIT_PREFIX = "sim-demo-"


def simulate_demo_traffic(
    app: Flask,
    users: int,
    *,
    days: int = 14,
    progress: Callable[[int], None] | None = None,
    pause: Callable[[], None] | None = None,
) -> SimulationResult:
    config = SimulationConfig(
        users=users, ctr_lift=0.08, cvr_lift=0.05, days=days, seed=7, run_id="demo", history_share=0.4
    )
    result = Simulator(FlaskTransport(app), config).run(progress=progress, pause=pause)
    from webapp.context import app_services

    put_on_simulated_time(app_services(app).db, [spec.key for spec in demo_specs()], DEMO_UNIT_PREFIX)
    return result


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)  # SQLite returns naive UTC


def put_on_simulated_time(db: Database, experiments: Sequence[str], unit_prefix: str) -> None:
    """Give the simulated shoppers' data one clock, the simulation's: the server stamped their exposures, the
    experiments' start and every event's receive time at seeding time, while the events carry the simulated
    times of the last two weeks. Left so, the report would read history that happened "after" the exposure and a
    start date after the data (issue 23). Demo data only: rows of ``unit_prefix`` units.

    - events: ``received_at`` = the simulated ``occurred_at`` (the simulated server received them then);
    - exposures: the unit's first impression in the experiment;
    - experiments: started at their first exposure.
    """
    from sqlalchemy import func, select, update

    from experiments.store.experiment_models import Experiment, Exposure
    from experiments.store.models import Event

    simulated = Event.unit_id.like(f"{unit_prefix}%")
    with db.session() as session:
        session.execute(update(Event).where(simulated).values(received_at=Event.occurred_at))
        first = (
            select(func.min(Event.occurred_at))
            .where(Event.unit_id == Exposure.unit_id, Event.experiment == Exposure.experiment)
            .scalar_subquery()
        )
        session.execute(
            update(Exposure)
            .where(Exposure.unit_id.like(f"{unit_prefix}%"), Exposure.experiment.in_(list(experiments)))
            .values(exposed_at=func.coalesce(first, Exposure.exposed_at))
        )
        for key in experiments:
            earliest = session.scalar(select(func.min(Exposure.exposed_at)).where(Exposure.experiment == key))
            experiment = session.scalar(select(Experiment).where(Experiment.key == key))
            if earliest is None or experiment is None or experiment.started_at is None:
                continue
            if _aware(earliest) < _aware(experiment.started_at):
                experiment.started_at = _aware(earliest)


class Pacer:
    """Keeps a loop of background work to about ``share`` of the time: ``rest()`` after each step sleeps as long
    as the step took × (1 − share) / share.

    Python threads have no priority, so resting is the lever: while the simulator rests, a live request does not
    queue behind its searches on the GIL, on SQLite's one writer or on the one in-process rerank thread.
    """

    def __init__(
        self,
        share: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not 0 < share <= 1:
            raise ValueError(f"share must be in (0, 1], not {share}")
        self.share = share
        self._clock = clock
        self._sleep = sleep
        self._since = clock()

    def rest(self) -> None:
        worked = self._clock() - self._since
        if self.share < 1 and worked > 0:
            self._sleep(worked * (1 - self.share) / self.share)
        self._since = self._clock()


def start_demo_traffic(
    app: Flask,
    users: int,
    progress: BackgroundProgress,
    *,
    pause: Callable[[], None] | None = None,
    report: Callable[[str], None] = print,
) -> threading.Thread:
    """Seed the demo experiments' traffic in a daemon thread while the server already answers.

    ``progress`` (the app's ``AppServices.background``) starts before this returns, so the dashboard's notice is
    up from the first page; it ends when the thread does, whether the simulation finished or failed. ``pause``
    runs after each shopper (default: a ``Pacer`` at ``DEMO_TRAFFIC_SHARE``); ``report`` gets the summary line.
    """
    progress.begin(DEMO_TRAFFIC_NOTICE, "shoppers", users)

    def run() -> None:
        try:
            result = simulate_demo_traffic(
                app, users, progress=progress.advance, pause=pause or Pacer(DEMO_TRAFFIC_SHARE).rest
            )
        except Exception as exc:  # a broken seeding must not take the serving process down; the log has the trace
            log.exception("demo traffic simulation failed")
            report(f"demo traffic simulation failed: {exc}")
        else:
            report(f"demo traffic seeded: {result.summary()}")
        finally:
            progress.end()

    thread = threading.Thread(target=run, name="demo-traffic", daemon=True)
    thread.start()
    return thread
