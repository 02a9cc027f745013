"""Search analytics counts only what the server answered (SQLite and PostgreSQL, the real Flask app).

The server signs each impression id it hands out (search page, ``/api/search``, listings) for the kind, query and
product count of its answer; ``POST /api/events`` stores every valid impression but marks only those whose id
verifies, and search analytics reads only the marked ones. So one client posting a thousand impressions of an
offensive phrase changes neither search analytics nor autocomplete, while the shop's own traffic (the page's
beacon, an API client echoing ``/api/search``) is counted as before.
"""

from __future__ import annotations

import datetime as dt
import html as html_lib
import re
import uuid
from typing import Any

import pytest
from sqlalchemy import delete, select

from experiments.store import impression_ids
from experiments.store import search_analytics as sa
from experiments.store.models import Event
from experiments.store.suggestions import AnsweredSearch

OFFENSIVE = "offensive phrase here"


@pytest.fixture
def clean(shop_services):
    def wipe() -> None:
        shop_services.answered_searches.flush()
        with shop_services.db.session() as session:
            session.execute(delete(AnsweredSearch))
        shop_services.suggester.invalidate()

    wipe()
    yield shop_services
    wipe()


def _window() -> sa.Filters:
    now = dt.datetime.now(dt.UTC)
    return sa.Filters(now - dt.timedelta(hours=1), now + dt.timedelta(hours=1))


def _analytics(services, filters: sa.Filters) -> dict[str, Any]:
    """Everything the search analytics pages show for the window (the offensive phrase's own page included)."""
    with services.db.session() as session:
        return {
            "overview": sa.overview(session, filters),
            "rankings": {name: sa.query_ranking(session, filters, name, limit=500) for name in sa.RANKINGS},
            "listings": sa.listing_views(session, filters),
            "languages": sa.languages(session, filters),
            "offensive": sa.query_by_variant(session, filters, OFFENSIVE),
            "offensive_clicks": sa.clicks_per_sku(session, filters, OFFENSIVE),
        }


def _page_impression(client, url: str) -> dict[str, Any]:
    """What ``shop.js`` posts for a page: the ``#results`` section's impression, its query or listing, its cards."""
    page = client.get(url).get_data(as_text=True)
    section = page[page.index('id="results"') :]
    section = section[: section.index("</section>")]  # the results section nests none
    head = section[: section.index(">")]

    def attribute(name: str) -> str:
        found = re.search(rf'{name}="([^"]*)"', head)
        return html_lib.unescape(found.group(1)) if found else ""

    items = [
        {"sku": html_lib.unescape(sku), "position": int(position)}
        for sku, position in re.findall(r'<article class="card" data-sku="([^"]+)" data-position="(\d+)"', section)
    ]
    event: dict[str, Any] = {
        "id": attribute("data-impression-id"),
        "type": "impression",
        "language": attribute("data-language"),
        "items": items,
    }
    listing = attribute("data-listing") or "search"
    if listing == "search":
        event["query"] = attribute("data-query")
    else:
        event["listing"] = listing
    return event


def _stored(services, event_id: str) -> tuple[bool, str | None] | None:
    with services.db.session() as session:
        row = session.execute(select(Event.signed, Event.query).where(Event.event_id == event_id)).one_or_none()
    return None if row is None else (bool(row[0]), row[1])


def test_a_thousand_forged_impressions_change_neither_analytics_nor_suggestions(client, clean):
    filters = _window()
    before = _analytics(clean, filters)
    # A real search's id, reported with another query and with another product count: each stays a forgery.
    real = client.get("/api/search?q=headphones&lang=en&limit=5").get_json()
    assert real["results"], "the test catalog answers 'headphones'"
    real_items = [{"sku": hit["sku"], "position": hit["rank"]} for hit in real["results"]]
    other = client.get("/api/search?q=headphones&lang=en&limit=5").get_json()
    key = impression_ids.impression_key("a secret that is not the server's")
    events: list[dict[str, Any]] = [
        {"id": real["impression_id"], "type": "impression", "unit": "bot", "query": OFFENSIVE, "language": "en",
         "items": real_items},
        {"id": other["impression_id"], "type": "impression", "unit": "bot", "query": real["query"],
         "language": "en", "items": []},  # the real query, but "nothing found"
    ]  # fmt: skip
    while len(events) < 1000:
        n = len(events)
        if n % 4 == 0:  # signed, but with a key that is not this server's
            forged_id = impression_ids.issue(key, kind=impression_ids.SEARCH, query=OFFENSIVE, items=1)
        else:  # a made-up id in the server's format
            forged_id = f"{uuid.uuid4().hex}-{'0' * 31}" if n % 4 == 1 else f"forged-{uuid.uuid4()}"
        impression = {"id": forged_id, "type": "impression", "unit": f"bot-{n % 7}", "query": OFFENSIVE,
                      "language": "en", "items": [{"sku": "AUD-HP-0001", "position": 1}]}  # fmt: skip
        if n % 10 == 3:  # a forged listing view
            impression = {**impression, "listing": "deals", "query": None}
        events.append(impression)
        if n % 5 == 0:
            events.append({"id": f"click-{uuid.uuid4()}", "type": "click", "unit": impression["unit"],
                           "impression_id": forged_id, "sku": "AUD-HP-0001", "position": 1})  # fmt: skip
    events = events[:1000]
    stored = 0
    for start in (0, 500):
        response = client.post("/api/events", json={"events": events[start : start + 500]})
        assert response.status_code == 200, response.get_json()
        stored += response.get_json()["stored"]
    assert stored == 1000  # accepted: the events API still takes client impressions, it just does not trust them
    assert _stored(clean, real["impression_id"]) == (False, OFFENSIVE)
    assert _stored(clean, other["impression_id"]) == (False, "headphones")

    clean.answered_searches.flush()
    clean.suggester.invalidate()
    after = _analytics(clean, filters)
    assert after == before
    assert not after["offensive"]
    body = client.get("/api/suggest?q=offen&lang=en").get_json()
    assert [s for s in body["suggestions"] if s["kind"] == "search"] == []
    with clean.db.session() as session:
        assert session.scalar(select(AnsweredSearch).where(AnsweredSearch.phrase_key == OFFENSIVE)) is None


def test_the_shops_own_impressions_are_counted(client, clean):
    filters = _window()
    with clean.db.session() as session:
        before_rows = {row.query: row for row in sa.query_ranking(session, filters, "top", limit=500)}
        before_views = sa.listing_views(session, filters)

    # an API client echoing /api/search's answer, with a click on the first result
    answer = client.get("/api/search?q=Studio%20Headphones&lang=en&limit=5").get_json()
    shown = [{"sku": hit["sku"], "position": hit["rank"]} for hit in answer["results"]]
    api_event = {"id": answer["impression_id"], "type": "impression", "unit": "api-shopper", "query": answer["query"],
                 "language": "en", "items": shown}  # fmt: skip
    click = {"id": f"click-{uuid.uuid4()}", "type": "click", "unit": "api-shopper",
             "impression_id": answer["impression_id"], "sku": answer["results"][0]["sku"], "position": 1}  # fmt: skip
    # the shop page's beacon (what shop.js sends), on a search and on listings without a query
    page_search = _page_impression(client, "/search?q=%20Studio%20headphones%20&lang=en")
    assert page_search["query"].strip() == "Studio headphones" and page_search["items"]
    listings = [_page_impression(client, url) for url in ("/c/headphones-audio", "/search?brand=Sony&lang=en", "/")]
    assert [e.get("listing") for e in listings] == ["category", "brand", "home"]
    events = [api_event, click, page_search, *listings]
    for event in events:
        event.setdefault("unit", "page-shopper")
    response = client.post("/api/events", json={"events": events})
    assert response.status_code == 200, response.get_json()
    for event in (api_event, page_search, *listings):
        stored = _stored(clean, event["id"])
        assert stored is not None and stored[0], event

    with clean.db.session() as session:
        rows = {row.query: row for row in sa.query_ranking(session, filters, "top", limit=500)}
        views = sa.listing_views(session, filters)
    key = "studio headphones"
    previous = before_rows.get(key)
    assert rows[key].searches == (previous.searches if previous else 0) + 2
    assert rows[key].clicks == (previous.clicks if previous else 0) + 1
    for kind in ("category", "brand", "home"):
        assert views.get(kind, 0) == before_views.get(kind, 0) + 1

    # the same id again, now with another query: a duplicate, stored nothing, still counted once
    again = client.post("/api/events", json={"events": [{**api_event, "query": OFFENSIVE}]})
    assert again.status_code == 200 and again.get_json()["stored"] == 0
    assert _stored(clean, api_event["id"]) == (True, answer["query"])


def test_impression_ids_verify_only_what_they_were_issued_for():
    key = impression_ids.impression_key("secret one")
    issued = impression_ids.issue(key, kind=impression_ids.SEARCH, query="Studio  Headphones", items=3)
    assert len(issued) <= 64 and re.fullmatch(r"[0-9a-f]{32}-[0-9a-f]{31}", issued)
    check = impression_ids.verifies
    assert check(key, issued, kind="search", query=" studio headphones ", items=3)  # compared as phrases are
    assert not check(key, issued, kind="search", query="studio headphone", items=3)
    assert not check(key, issued, kind="search", query="studio headphones", items=2)
    assert not check(key, issued, kind="category", query="studio headphones", items=3)
    assert not check(impression_ids.impression_key("secret two"), issued, kind="search", query="studio headphones",
                     items=3)  # fmt: skip
    assert not check(key, issued[:-1] + ("0" if issued[-1] != "0" else "1"), kind="search", query="studio headphones",
                     items=3)  # fmt: skip
    for malformed in ("", "-", issued.replace("-", ""), str(uuid.uuid4()), issued + "0"):
        assert not check(key, malformed, kind="search", query="studio headphones", items=3)
    listing = impression_ids.issue(key, kind="deals", query="", items=12)
    assert check(key, listing, kind="deals", query=None, items=12)
    assert check(key, listing, kind="deals", query="whatever a client adds", items=12)  # a listing has no query
    assert not check(key, listing, kind="home", query=None, items=12)
