"""/api/events under contention and with events that cannot count, through a real server (waitress):

- two identical batches with their ids in opposite order, sent at the same moment, both answer 200 and store
  every event once (PostgreSQL used to abort one as a deadlock victim, which the client saw as a 503 outage);
- events for an experiment that does not exist, a variant the shopper was not assigned, or an id that belongs
  to a stored event of another type are not stored and are listed under ``ignored`` with the reason.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from sqlalchemy import func, select

from experiments.store.models import Event
from tests.experiment_support import ab_spec, reset_experiments, running
from tests.live_servers import LiveServer


@pytest.fixture
def live(shop_services) -> Iterator[tuple[LiveServer, Any]]:
    from webapp import create_app

    with LiveServer(create_app(services=shop_services)) as server:
        yield server, shop_services


def _stored(services, ids: list[str]) -> int:
    with services.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(Event).where(Event.event_id.in_(ids))) or 0)


def test_identical_batches_in_opposite_order_never_deadlock(live):
    server, services = live
    if services.db.dialect != "postgresql":
        pytest.skip("row-lock deadlocks are a PostgreSQL matter (SQLite serialises writers)")
    rounds, size = 6, 200
    for _ in range(rounds):
        unit = f"deadlock-{uuid.uuid4().hex[:8]}"
        events = [
            {"id": uuid.uuid4().hex, "type": "click", "unit": unit, "sku": f"SKU-{n % 7}", "position": 1 + n % 5}
            for n in range(size)
        ]
        batches = [events, list(reversed(events))]
        barrier = threading.Barrier(2)
        answers: list[requests.Response | Exception] = [None, None]  # type: ignore[list-item]

        def send(index: int, batches=batches, barrier=barrier, answers=answers) -> None:
            http = requests.Session()
            http.get(f"{server.url}/health", timeout=30)  # connect first, so both posts leave together
            barrier.wait(30)
            try:
                answers[index] = http.post(f"{server.url}/api/events", json={"events": batches[index]}, timeout=60)
            except requests.RequestException as exc:
                answers[index] = exc

        threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(90)
        statuses = [getattr(answer, "status_code", answer) for answer in answers]
        assert statuses == [200, 200], [getattr(a, "text", a) for a in answers]
        bodies = [answer.json() for answer in answers]  # type: ignore[union-attr]
        assert sum(body["stored"] for body in bodies) == size
        assert sum(body["duplicates"] for body in bodies) == size
        assert _stored(services, [event["id"] for event in events]) == size


def test_events_that_cannot_count_are_ignored_with_a_reason(live):
    server, services = live
    reset_experiments(services)
    key = f"scr-{uuid.uuid4().hex[:6]}"
    running(services, ab_spec(key))
    try:
        http = requests.Session()
        unit = f"shopper-{uuid.uuid4().hex[:8]}"
        page = http.get(f"{server.url}/api/search", params={"q": "headphones", "user": unit}, timeout=60).json()
        assert page["experiment"] == key  # the search exposed the unit
        other = "treatment" if page["variant"] == "control" else "control"
        earlier = uuid.uuid4().hex
        first = http.post(
            f"{server.url}/api/events",
            json={"events": [{"id": earlier, "type": "impression", "unit": unit, "query": "q", "items": ["A"]}]},
            timeout=30,
        )
        assert first.json() == {
            "received": 1,
            "stored": 1,
            "duplicates": 0,
            "waiting_for_impression": 0,
            "attached": 0,
            "ignored": [],
        }

        def impression(**fields: Any) -> dict[str, Any]:
            base = {"id": uuid.uuid4().hex, "type": "impression", "unit": unit, "query": "q", "items": ["A"]}
            return {**base, **fields}

        unknown = impression(experiment="no-such-experiment", variant="control")
        batch = [
            unknown,
            impression(experiment=key, variant=other),
            impression(experiment=key, variant=page["variant"], unit="never-searched"),
            impression(experiment=key, variant=page["variant"]),
            {"id": earlier, "type": "click", "unit": unit, "sku": "A"},  # reuses the stored impression's id
            {"id": uuid.uuid4().hex, "type": "click", "unit": unit, "sku": "A", "impression_id": unknown["id"]},
        ]
        for attempt in range(2):  # a retry ignores the same events, and the counted one is a duplicate
            answer = http.post(f"{server.url}/api/events", json={"events": batch}, timeout=30)
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert (body["received"], body["stored"], body["duplicates"]) == (6, 1 - attempt, attempt)
            reasons = [(item["index"], item["field"], item["reason"]) for item in body["ignored"]]
            assert reasons == [
                (0, "events[0].experiment", "unknown_experiment"),
                (1, "events[1].variant", "variant_not_assigned"),
                (2, "events[2].unit", "not_exposed"),
                (4, "events[4].id", "id_conflict"),
                (5, "events[5].experiment", "unknown_experiment"),  # inherited from its (ignored) impression
            ]
            assert all(item["id"] == batch[item["index"]]["id"] and item["message"] for item in body["ignored"])
        counted = [batch[3]["id"], earlier]
        assert _stored(services, [event["id"] for event in batch] + [earlier]) == len(counted)
        with services.db.session() as session:
            assert session.get(Event, earlier).type == "impression"  # the stored impression is untouched
    finally:
        reset_experiments(services)
