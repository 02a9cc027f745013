"""Listing impressions (no query) and an autocomplete no single client can write (SQLite and PostgreSQL).

- an impression of a category, brand, deals or home listing is valid without a query, stored as a listing view
  and counted apart from searches in search analytics; a search impression still needs its query;
- past-search suggestions come only from searches the shop page itself answered with results, once per returning
  shopper, and show once ``SHOPRANK_SUGGEST_MIN_SHOPPERS`` distinct shoppers searched the phrase; events sent to
  ``/api/events`` never become suggestions, however many;
- merchandisers block words and remove suggestions on the dashboard (CSRF token and role required).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid

import pytest
from sqlalchemy import delete, select

from experiments.store import impression_ids
from experiments.store import search_analytics as sa
from experiments.store.models import Event
from experiments.store.suggestions import AnsweredSearch, SuggestionBlock
from shoprank.users import create_user

PASSWORD = "correct horse battery"
PHRASE = "studio headphones"  # the test catalog answers it with results


@pytest.fixture
def clean(shop_services):
    def wipe() -> None:
        shop_services.answered_searches.flush()  # what other tests' searches left queued
        with shop_services.db.session() as session:
            session.execute(delete(AnsweredSearch))
            session.execute(delete(SuggestionBlock))
        shop_services.suggester.invalidate()

    wipe()
    yield shop_services
    wipe()


def _suggested(client, typed: str, lang: str = "en") -> list[str]:
    body = client.get(f"/api/suggest?q={typed}&lang={lang}").get_json()
    return [s["text"] for s in body["suggestions"] if s["kind"] == "search"]


def _refresh(services) -> None:
    services.answered_searches.flush()
    services.suggester.invalidate()


def _shopper_searches(app, query: str, times: int = 1, lang: str = "en") -> None:
    """A returning shopper (cookie from an earlier page view) searches ``query``."""
    client = app.test_client()
    client.get(f"/?lang={lang}")  # first visit: the visitor cookie
    for _ in range(times):
        assert client.get(f"/search?q={query}&lang={lang}").status_code == 200


def _impression(**fields) -> dict:
    return {"id": f"imp-{uuid.uuid4()}", "type": "impression", "unit": "listing-test",
            "items": [{"sku": "AUD-HP-0001", "position": 1}], **fields}  # fmt: skip


def _served_listing(services, kind: str, **fields) -> dict:
    """A listing impression whose id the server issued (search analytics counts only those)."""
    key = impression_ids.impression_key(services.settings.secret_key)
    return _impression(id=impression_ids.issue(key, kind=kind, query="", items=1), listing=kind, **fields)


def test_listing_impressions_are_valid_and_counted_as_listings(client, shop_services):
    started = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    before = sa.overview(shop_services.db.scoped(), sa.Filters(started, started + dt.timedelta(hours=1)))["all"]
    shop_services.db.scoped().rollback()
    events = [_served_listing(shop_services, kind, language="en") for kind in ("category", "brand", "deals", "home")]
    # an empty query on a listing is no problem (nor is a client-made id: stored, but not counted)
    events.append(_served_listing(shop_services, "category", query=""))
    response = client.post("/api/events", json={"events": events})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["stored"] == 5
    with shop_services.db.session() as session:
        rows = session.execute(
            select(Event.listing, Event.query).where(Event.event_id.in_([e["id"] for e in events]))
        ).all()
        assert sorted(rows) == [("brand", None), ("category", None), ("category", None), ("deals", None),
                                ("home", None)]  # fmt: skip
        window = sa.Filters(started, started + dt.timedelta(hours=1))
        views = sa.listing_views(session, window)
        assert views["category"] >= 2 and views["brand"] >= 1 and views["deals"] >= 1 and views["home"] >= 1
        assert sa.overview(session, window)["all"].searches == before.searches  # not searches
        assert all(row.query for row in sa.query_ranking(session, window, "top", limit=100))
    # a search impression still needs its query; an unknown listing kind is named
    bad = client.post("/api/events", json={"events": [_impression(query="")]})
    assert bad.status_code == 422 and "events[0].query" in str(bad.get_json())
    bad = client.post("/api/events", json={"events": [_impression(listing="bogus")]})
    assert bad.status_code == 422 and "events[0].listing" in str(bad.get_json())


def test_filter_only_and_category_pages_describe_their_listing(client):
    html = client.get("/search?category=headphones-audio&lang=en").get_data(as_text=True)
    assert 'data-listing="category"' in html and 'data-impression-id="' in html
    html = client.get("/search?brand=Sony&lang=en").get_data(as_text=True)
    assert 'data-listing="brand"' in html
    assert 'data-listing="search"' in client.get("/search?q=headphones").get_data(as_text=True)
    page = client.get("/c/headphones-audio").get_data(as_text=True)
    impression = re.search(r'data-listing="category" data-impression-id="([^"]+)"', page)
    assert impression and f'data-impression="{impression.group(1)}"' in page  # cart buttons point at it
    assert 'data-listing="home"' in client.get("/").get_data(as_text=True)


def test_one_client_sending_a_thousand_events_cannot_create_a_suggestion(client, clean):
    events = [_impression(query="offensive phrase here", language="en", unit=f"bot-{n}") for n in range(1000)]
    for start in (0, 500):
        response = client.post("/api/events", json={"events": events[start : start + 500]})
        assert response.status_code == 200
    _refresh(clean)
    assert _suggested(client, "offensive") == []
    with clean.db.session() as session:
        recorded = select(AnsweredSearch).where(AnsweredSearch.phrase_key == "offensive phrase here")
        assert session.scalar(recorded) is None  # nothing recorded at all


def test_a_phrase_is_suggested_after_enough_distinct_shoppers(client, clean, shop_app):
    minimum = clean.settings.suggest_min_shoppers
    assert minimum >= 2
    _shopper_searches(shop_app, PHRASE, times=30)  # one shopper, many times: counted once
    for _ in range(5):  # cookieless requests: each would be a "new shopper"; none counts
        assert shop_app.test_client().get(f"/search?q={PHRASE}&lang=en").status_code == 200
    _refresh(clean)
    assert PHRASE not in _suggested(client, "studio")
    for _ in range(minimum - 2):
        _shopper_searches(shop_app, PHRASE)
    _refresh(clean)
    assert PHRASE not in _suggested(client, "studio")  # one shopper short
    _shopper_searches(shop_app, PHRASE)
    _refresh(clean)
    assert PHRASE in _suggested(client, "studio")
    # a search the shop answered with nothing never counts, however many shoppers
    for _ in range(minimum):
        _shopper_searches(shop_app, "qzxv wqpl")
    _refresh(clean)
    assert _suggested(client, "qzxv") == []


def test_suggestions_can_be_turned_off(clean, shop_app):
    import dataclasses

    settings = dataclasses.replace(clean.settings, suggest_min_shoppers=0)
    with clean.db.session() as session:
        session.add_all(
            AnsweredSearch(phrase_key=PHRASE, language="en", shopper=f"s{n}", phrase=PHRASE) for n in range(50)
        )
    original = clean.settings
    clean.settings = settings
    try:
        assert clean._past_searches() == []
    finally:
        clean.settings = original
    assert clean._past_searches()[0][0] == PHRASE


def _token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the form"
    return match.group(1)


def _login(app, email: str):
    client = app.test_client()
    token = _token(client.get("/dashboard/login").get_data(as_text=True))
    client.post("/dashboard/login", data={"email": email, "password": PASSWORD, "csrf_token": token})
    return client


def test_merchandisers_block_and_remove_suggestions(client, clean, shop_app):
    with clean.db.session() as session:
        for email, role in (("sugg-merch@example.com", "merchandiser"), ("sugg-ops@example.com", "ops")):
            create_user(session, email, PASSWORD, role)
        rows = [("studio headphones", "en"), ("sony headphones", "en"), ("headphones for kids", "en")]
        session.add_all(
            AnsweredSearch(phrase_key=phrase, language=lang, shopper=f"s{n}", phrase=phrase)
            for phrase, lang in rows
            for n in range(clean.settings.suggest_min_shoppers)
        )
    clean.suggester.invalidate()
    assert {"studio headphones", "sony headphones", "headphones for kids"} <= set(_suggested(client, "headphones"))

    anonymous = shop_app.test_client()
    assert anonymous.post("/dashboard/suggestions/block", data={"phrase": "kids"}).status_code in (302, 400, 401)
    merch = _login(shop_app, "sugg-merch@example.com")
    page = merch.get("/dashboard/suggestions")
    assert page.status_code == 200 and "studio headphones" in page.get_data(as_text=True)
    token = _token(page.get_data(as_text=True))
    assert merch.post("/dashboard/suggestions/block", data={"phrase": "kids"}).status_code == 400  # no CSRF token
    ops = _login(shop_app, "sugg-ops@example.com")
    ops_token = _token(ops.get("/dashboard/ops").get_data(as_text=True))
    assert ops.post("/dashboard/suggestions/block", data={"phrase": "kids", "csrf_token": ops_token}).status_code == 403
    assert set(_suggested(client, "headphones")) >= {"headphones for kids"}

    assert merch.post("/dashboard/suggestions/block", data={"phrase": "KIDS", "csrf_token": token}).status_code == 302
    removed = merch.post("/dashboard/suggestions/remove", data={"phrase": "Sony  headphones", "csrf_token": token})
    assert removed.status_code == 302
    suggested = _suggested(client, "headphones")
    assert "studio headphones" in suggested
    assert "headphones for kids" not in suggested and "sony headphones" not in suggested
    bad = merch.post("/dashboard/suggestions/block", data={"phrase": "   ", "csrf_token": token})
    assert bad.status_code == 422 and "phrase: must not be empty" in bad.get_data(as_text=True)

    key = "kids"
    assert merch.post("/dashboard/suggestions/unblock", data={"key": key, "csrf_token": token}).status_code == 302
    assert "headphones for kids" in _suggested(client, "headphones")
