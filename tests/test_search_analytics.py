"""Search analytics per query (SQLite and PostgreSQL): every number checked against hand-counted events, and the
dashboard pages, including the query page's live rankings per variant with the clicks each product got."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from experiments.ranking import NoExperiment, RankingConfig
from experiments.store import impression_ids, ingest_events, parse_events
from experiments.store import search_analytics as sa
from search.service import SearchService
from shoprank.users import create_user
from tests.experiment_support import ab_spec, reset_experiments, running

KEY = "sa-exp"
PASSWORD = "analytics password!"


def _clear_events(services) -> None:
    """The shared shop database also holds other tests' searches; these counts are of this module's log only."""
    from sqlalchemy import delete

    from experiments.store.models import Event, ImpressionItem, UnitDayRollup

    with services.db.session() as session:
        for model in (ImpressionItem, UnitDayRollup, Event):
            session.execute(delete(model))


@pytest.fixture
def clean(shop_services):
    reset_experiments(shop_services)
    _clear_events(shop_services)
    yield shop_services
    reset_experiments(shop_services)
    _clear_events(shop_services)


#: The key the events are signed with here (the server's key is derived from its secret the same way).
SIGNING_KEY = impression_ids.impression_key("search analytics test secret")


class Log:
    """Builds events: ``search`` returns its impression id (signed as the server signs the searches it answers;
    ``signed=False``: an id the client made up); ``click`` clicks a product of it."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now
        self.events: list[dict] = []

    def search(
        self, query: str, skus: list[str], *, language="en", variant=None, days_ago=0, unit="u1", signed=True
    ) -> str:
        if signed:
            impression = impression_ids.issue(SIGNING_KEY, kind=impression_ids.SEARCH, query=query, items=len(skus))
        else:
            impression = uuid.uuid4().hex
        self.events.append(
            {
                "id": impression,
                "type": "impression",
                "unit": unit,
                "experiment": KEY if variant else None,
                "variant": variant,
                "query": query,
                "language": language,
                "ts": (self.now - dt.timedelta(days=days_ago)).isoformat(),
                "items": skus,
            }
        )
        return impression

    def click(self, impression: str, sku: str, position: int) -> None:
        search = next(e for e in self.events if e["id"] == impression)
        self.events.append(
            {"id": uuid.uuid4().hex, "type": "click", "unit": search["unit"], "sku": sku, "position": position,
             "impression_id": impression, "ts": search["ts"]}
        )  # fmt: skip

    def store(self, services) -> None:
        with services.db.session() as session:
            ingest_events(session, parse_events({"events": self.events}, max_batch=1000, impression_key=SIGNING_KEY))


def _log(now: dt.datetime) -> Log:
    log = Log(now)
    ten = [f"S{i}" for i in range(10)]
    # "Headphones": 6 searches (case and spaces differ), 4 clicked; positions 1, 3, 2, 1, 5
    for n in range(6):
        variant = "control" if n % 2 else "treatment"
        impression = log.search(["headphones", " Headphones ", "HEADPHONES"][n % 3], ten, variant=variant)
        if n < 4:
            log.click(impression, ten[[0, 2, 1, 0][n]], [1, 3, 2, 1][n])
    first = next(e["id"] for e in log.events if e["type"] == "impression")
    log.click(first, "S4", 5)  # a second click on the first search
    # "zzz": 3 searches, nothing found
    for _ in range(3):
        log.search("zzz", [], variant="control")
    # "rare cable": 2 searches listing 2 products, one clicked at 2
    log.click(log.search("rare cable", ["C1", "C2"], language="de"), "C2", 2)
    log.search("rare cable", ["C1", "C2"], language="de")
    # "kettle": 12 searches, 1 click: the low-CTR query
    for n in range(12):
        impression = log.search("kettle", ten, language="de")
        if n == 0:
            log.click(impression, "S7", 8)
    # outside the range: 20 days ago
    log.search("headphones", ten, days_ago=20)
    return log


def _filters(now: dt.datetime, **kw) -> sa.Filters:
    return sa.Filters(start=now - dt.timedelta(days=7), end=now + dt.timedelta(minutes=5), **kw)


def test_query_numbers_match_hand_counts(clean):
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    _log(now).store(clean)
    filters = _filters(now)
    with clean.db.session() as session:
        top = sa.query_ranking(session, filters, "top")
        assert [(r.query, r.searches) for r in top] == [
            ("kettle", 12),
            ("headphones", 6),
            ("zzz", 3),
            ("rare cable", 2),
        ]
        headphones = top[1]
        assert headphones.clicked_searches == 4 and headphones.clicks == 5
        assert headphones.ctr == pytest.approx(4 / 6)
        assert headphones.mean_click_position == pytest.approx((1 + 3 + 2 + 1 + 5) / 5)
        assert [(r.query, r.no_results) for r in sa.query_ranking(session, filters, "no_results")] == [("zzz", 3)]
        assert [(r.query, r.few_results) for r in sa.query_ranking(session, filters, "few_results")] == [
            ("rare cable", 2)
        ]
        low = sa.query_ranking(session, filters, "low_ctr", min_searches=2)
        assert [r.query for r in low] == ["kettle", "rare cable", "headphones"]  # zzz showed nothing: no CTR
        assert low[0].ctr == pytest.approx(1 / 12)
        assert [r.query for r in sa.query_ranking(session, filters, "low_ctr")] == ["kettle"]  # min 10 searches

        german = sa.query_ranking(session, _filters(now, language="de"), "top")
        assert [r.query for r in german] == ["kettle", "rare cable"]
        in_experiment = sa.query_ranking(session, _filters(now, experiment=KEY), "top")
        assert [(r.query, r.searches) for r in in_experiment] == [("headphones", 6), ("zzz", 3)]

        overview = sa.overview(session, filters)
        assert overview["all"].searches == 23 and overview["all"].no_results == 3
        assert overview["control"].searches == 6 and overview["treatment"].searches == 3
        assert overview["none"].searches == 14
        assert overview["all"].clicks == 7
        assert sa.languages(session, filters) == ["de", "en"]

        by_variant = sa.query_by_variant(session, filters, "  HEADPHONES")
        assert set(by_variant) == {"control", "treatment"}
        assert by_variant["control"].searches == 3 and by_variant["treatment"].searches == 3
        per_sku = {(r.variant, r.sku): r for r in sa.clicks_per_sku(session, filters, "headphones")}
        assert per_sku[("treatment", "S0")].clicks == 1 and per_sku[("control", "S0")].clicks == 1
        assert per_sku[("treatment", "S4")].mean_position == 5
        assert sum(r.clicks for r in per_sku.values()) == 5
    with pytest.raises(ValueError, match="end must be after start"):
        sa.Filters(start=now, end=now)
    with clean.db.session() as session, pytest.raises(ValueError, match="unknown ranking"):
        sa.query_ranking(session, filters, "best")  # type: ignore[arg-type]


def test_analytics_pages_and_the_live_query_page(clean, shop_app):
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    running(clean, ab_spec(KEY))  # control: first stage only; treatment: reranked
    log = _log(now)
    # a product the control ranking (first stage only) really shows shoppers for the query (the shop's path)
    from search.shop_search import ShopQuery, ShopSearch

    first_stage = SearchService(
        clean.index, clean.dispatcher, NoExperiment(RankingConfig(rerank=False)), deadline_ms=3000
    )
    shown = ShopSearch(first_stage, gate=clean.shop_search.gate).search(
        ShopQuery(text="Headphones", currency="USD", per_page=10)
    )
    sku = shown.hits[0].item.sku
    log.click(log.search("headphones", [sku], variant="control"), sku, 1)
    log.store(clean)
    with clean.db.session() as session:
        create_user(session, "analyst@example.com", PASSWORD, "merchandiser")
    client = shop_app.test_client()
    assert client.get("/dashboard/search-analytics").status_code == 302  # login first
    from tests.test_dashboard import _token

    token = _token(client.get("/dashboard/login").get_data(as_text=True))
    client.post("/dashboard/login", data={"email": "analyst@example.com", "password": PASSWORD, "csrf_token": token})

    page = client.get("/dashboard/search-analytics")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert 'id="overview-table"' in html and 'data-query="kettle"' in html and 'id="list-no_results"' in html
    assert "/dashboard/search-analytics/query?q=zzz" in html

    query = client.get("/dashboard/search-analytics/query?q=Headphones")
    html = query.get_data(as_text=True)
    assert query.status_code == 200
    assert html.count('class="panel ranking"') == 2  # one live ranking per variant of the running experiment
    assert 'data-variant="control"' in html and 'data-variant="treatment"' in html
    assert f'data-sku="{sku}"' in html and "1 click<" in html
    # issue 23 item 9: the scorer that reranked each live column is named, and the experiment-only counts say so
    assert 'data-scorer="' in html
    assert 'id="scope-note"' in html and "the list counted 7 searches of this query in all traffic" in html
    # issue 23 item 9: the live columns are what shoppers saw, through the shop's path (gate, demotion, prices)
    control = html.split('class="panel ranking" data-variant="control"')[1].split('class="panel ranking"')[0]
    assert [line.split('"')[0] for line in control.split('data-sku="')[1:]] == [h.item.sku for h in shown.hits]
    nonsense = client.get("/dashboard/search-analytics/query?q=xyzzyqwerty").get_data(as_text=True)
    assert nonsense.count('data-match="none"') == 2 and "data-sku=" not in nonsense  # empty in every arm

    for bad in ("from=yesterday", "from=2025-02-01&to=2025-01-01", "lang=EN!", "from=2020-01-01&to=2025-01-01"):
        assert client.get(f"/dashboard/search-analytics?{bad}").status_code == 400, bad
    assert client.get("/dashboard/search-analytics/query").status_code == 400  # q missing
    assert client.get("/dashboard/search-analytics/query?q=x&experiment=nope").status_code == 404


def test_queries_with_non_ascii_capitals_group_on_every_backend(clean):
    """Issue 23 item 13: SQLite's lower() folds ASCII only, so "ÖLFILTER" and "ölfilter" were two queries there."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    log = Log(now)
    for query in ("Ölfilter", "ÖLFILTER", " ölfilter", "Éclair", "ÉCLAIR", "éclair", "ДИВАН", "диван"):
        log.search(query, ["S1"])
    log.store(clean)
    with clean.db.session() as session:
        top = sa.query_ranking(session, _filters(now), "top")
        assert sorted((r.query, r.searches) for r in top) == sorted([("диван", 2), ("éclair", 3), ("ölfilter", 3)])
        assert sa.query_by_variant(session, _filters(now), "ÖLFILTER")["none"].searches == 3


# --- issue 22 item 8: every dashboard query runs under a statement timeout ---------------------------------------


def test_dashboard_queries_are_cancelled_at_the_statement_timeout(clean, shop_app, monkeypatch):
    """A page whose query would run for minutes (no planner statistics) is cancelled by PostgreSQL at the
    configured ``SHOPRANK_DASHBOARD_STATEMENT_TIMEOUT_MS``: a clear 503 naming the timeout, the thread freed."""
    import time

    from sqlalchemy import text

    if clean.db.dialect != "postgresql":
        pytest.skip("statement_timeout is PostgreSQL's (SQLite runs in-process, no server thread to hold)")
    with clean.db.session() as session:
        create_user(session, "slow@example.com", PASSWORD, "merchandiser")
    original = clean.settings
    clean.settings = original.replace(dashboard_statement_timeout_ms=300)

    def slow_overview(session, filters, **_):
        session.execute(text("SELECT pg_sleep(20)"))
        return {}

    monkeypatch.setattr(sa, "overview", slow_overview)
    try:
        client = shop_app.test_client()
        from tests.test_dashboard import _token

        token = _token(client.get("/dashboard/login").get_data(as_text=True))
        client.post("/dashboard/login", data={"email": "slow@example.com", "password": PASSWORD, "csrf_token": token})
        started = time.monotonic()
        page = client.get("/dashboard/search-analytics")
        assert time.monotonic() - started < 10
        assert page.status_code == 503 and "took longer than" in page.get_data(as_text=True)
        # outside the dashboard (and after the request) no timeout is left on the connection
        with clean.db.session() as session:
            assert session.execute(text("SHOW statement_timeout")).scalar() == "0"
    finally:
        clean.settings = original


def test_statement_timeout_applies_to_every_transaction_while_set(shop_services):
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    from shoprank.db import statement_timeout

    if shop_services.db.dialect != "postgresql":
        pytest.skip("PostgreSQL only")
    with statement_timeout(200):
        for _ in range(2):  # a second transaction gets it too
            with pytest.raises(OperationalError), shop_services.db.session() as session:
                session.execute(text("SELECT pg_sleep(5)"))
    with shop_services.db.session() as session:
        assert session.execute(text("SHOW statement_timeout")).scalar() == "0"
