"""Ship a winner (issue 15): server-side confirmation, the experiment stops, the variant's ranking serves all
traffic (read by the resolver in every process), an audit entry, and the ops page shows it."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import func, select

from experiments.manage import VariantSpec, get_experiment
from experiments.ship import ShipRequest, as_config, current_default, ship_variant
from experiments.store.experiment_models import RankingDefault
from tests.experiment_support import ab_spec, reset_experiments, running
from tests.test_dashboard import _login, dashboard  # noqa: F401  (pytest fixture)


def _shipped_rows(services) -> int:
    with services.db.session() as session:
        return session.scalar(select(func.count()).select_from(RankingDefault))


def test_ship_needs_the_typed_key_and_an_acknowledgement_then_serves_everyone(dashboard, shop_services):  # noqa: F811
    variants = [VariantSpec("control", rerank=False), VariantSpec("winner", rerank=True, first_stage_top_k=40)]
    running(shop_services, ab_spec("shipme", variants=variants))
    client = dashboard.test_client()
    _login(client)
    page = client.get("/dashboard/experiments/shipme").get_data(as_text=True)
    assert "/dashboard/experiments/shipme/ship?variant=winner" in page

    confirm = client.get("/dashboard/experiments/shipme/ship?variant=winner").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', confirm).group(1)  # the signed-in session's token
    assert 'id="ship-doubts"' in confirm and "not a significant win on the primary metric" in confirm
    form = {"csrf_token": token, "variant": "winner", "note": "rerank wins"}
    refused = [
        client.post("/dashboard/experiments/shipme/ship", data=form),  # no key typed
        client.post("/dashboard/experiments/shipme/ship", data={**form, "confirm_key": "ship-me"}),  # wrong key
        client.post("/dashboard/experiments/shipme/ship", data={**form, "confirm_key": "shipme"}),  # doubts not acked
        client.post(
            "/dashboard/experiments/shipme/ship", data={**form, "confirm_key": "shipme", "acknowledged": "yes"}
        ),
    ]
    assert [r.status_code for r in refused[:3]] == [422, 422, 422]
    assert "type the experiment key" in refused[1].get_data(as_text=True)
    assert "tick the box to ship anyway" in refused[2].get_data(as_text=True)
    assert refused[3].status_code == 302 and _shipped_rows(shop_services) == 1

    with shop_services.db.session() as session:
        experiment = get_experiment(session, "shipme")
        assert experiment.status == "stopped"
        actions = [entry.action for entry in experiment.audit]
        assert actions[-2:] == ["stopped", "shipped"]
        shipped = json.loads(experiment.audit[-1].changes)
        assert shipped["variant"] == "winner" and shipped["config"]["first_stage_top_k"] == 40
        assert shipped["note"] == "rerank wins" and shipped["acknowledged"]
        assert experiment.audit[-1].actor == "merch@example.com"
    # everyone, in or out of the old experiment, now gets the winner's ranking (rerank on, depth 40)
    for user in ("someone-new", "another-one"):
        answer = client.get(f"/api/search?q=wireless+headphones&user={user}&limit=5").get_json()
        assert answer["experiment"] is None and answer["rerank_status"] == "ok" and answer["rerank_depth"] == 40
    assert b"shipped" in client.get("/dashboard/experiments/shipme").data

    ops = dashboard.test_client()
    _login(ops, "ops@example.com")
    ops_page = ops.get("/dashboard/ops").get_data(as_text=True)
    assert (
        'id="ranking-default"' in ops_page
        and "Shipped from experiment <b>shipme</b>, variant <b>winner</b>" in ops_page
    )


def test_ship_refuses_drafts_unknown_variants_and_a_bad_key_without_writing(shop_services):
    reset_experiments(shop_services)
    with shop_services.db.session() as session:
        from experiments.manage import create_experiment

        draft = create_experiment(session, ab_spec("draft-ship"), "tests")
        with pytest.raises(Exception, match="start it first"):
            ship_variant(session, draft, ShipRequest("treatment", "draft-ship"), "tests")
        session.rollback()
    running(shop_services, ab_spec("live-ship"))
    with shop_services.db.session() as session:
        live = get_experiment(session, "live-ship")
        for request in (ShipRequest("nope", "live-ship"), ShipRequest("treatment", "wrong")):
            with pytest.raises(Exception) as caught:
                ship_variant(session, live, request, "tests")
            assert set(caught.value.errors) & {"variant", "confirm_key"}
        assert current_default(session) is None and live.status == "running"
    reset_experiments(shop_services)


def test_shipping_keeps_the_variants_max_rerank_depth(shop_services, client):
    """The shipped default serves the winner as tested: at its depth, not the deployment's."""
    reset_experiments(shop_services)
    variants = [VariantSpec("control", rerank=False), VariantSpec("shallow", rerank=True, rerank_max_depth=20)]
    running(shop_services, ab_spec("ship-depth", variants=variants))
    try:
        with shop_services.db.session() as session:
            row = ship_variant(
                session, get_experiment(session, "ship-depth"), ShipRequest("shallow", "ship-depth"), "t"
            )
            assert row.rerank_max_depth == 20 and as_config(row).rerank_max_depth == 20
            assert (
                json.loads(get_experiment(session, "ship-depth").audit[-1].changes)["config"]["rerank_max_depth"] == 20
            )
        with shop_services.db.session() as session:
            assert current_default(session).rerank_max_depth == 20
        shop_services.search.resolver.invalidate()
        answer = client.get("/api/search?q=wireless+headphones&user=after-ship&limit=5").get_json()
        assert answer["experiment"] is None and answer["rerank_status"] == "ok"
        assert answer["candidates"] > 20 and answer["rerank_depth"] == 20
    finally:
        reset_experiments(shop_services)
