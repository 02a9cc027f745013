"""The demo's data on simulated time throughout (issue 23 item 4): events were stamped over the last days while
exposures, the experiments' start and every receive time were stamped at seeding time, so CUPED's pre-period held
the experiment. After seeding, the simulated shoppers' rows share the simulation's clock, some shoppers have
history before their first exposure, and the CUPED view has something to adjust with."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from experiments.manage import get_experiment
from experiments.report import build_report
from experiments.store import Event
from experiments.store.experiment_models import Exposure
from shopctl import demo
from tests.experiment_support import reset_experiments


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


@pytest.mark.parametrize("shop_db_url", ["sqlite"], indirect=True)
def test_demo_traffic_is_on_simulated_time(shop_services, shop_app):
    reset_experiments(shop_services)
    try:
        demo.ensure_demo(shop_services.db)
        shop_services.search.resolver.invalidate()
        demo.simulate_demo_traffic(shop_app, 60, days=7)
        now = dt.datetime.now(dt.UTC)
        with shop_services.db.session() as session:
            simulated = Event.unit_id.like(f"{demo.DEMO_UNIT_PREFIX}%")
            skewed = session.scalar(select(func.count()).where(simulated, Event.received_at != Event.occurred_at))
            assert skewed == 0
            exposures = session.execute(select(Exposure).where(Exposure.experiment == "rerank-ab")).scalars().all()
            assert exposures
            for exposure in exposures:
                first = session.scalar(
                    select(func.min(Event.occurred_at)).where(
                        Event.unit_id == exposure.unit_id, Event.experiment == "rerank-ab"
                    )
                )
                if first is not None:
                    assert _aware(exposure.exposed_at) == _aware(first)
            experiment = get_experiment(session, "rerank-ab")
            earliest = min(_aware(e.exposed_at) for e in exposures)
            assert _aware(experiment.started_at) <= earliest < now - dt.timedelta(hours=1)  # not seeding time
            report = build_report(session, experiment, rates={"USD": 1.0, "EUR": 1.08}, cuped=True)
        history = sum(v["active_units"] for v in report.cuped["variants"].values())
        assert history > 0  # shoppers with searches before their first exposure
        adjusted = [c for c in report.analysis["comparisons"] if c["cuped"] and c["cuped"]["theta"] != 0]
        assert adjusted, "CUPED found no pre-period variance to adjust with"
    finally:
        reset_experiments(shop_services)
