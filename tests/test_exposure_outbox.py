"""The exposure outbox (issue 22): exposures the database could not take wait in Redis, on disk when Redis is
down too, and are replayed in order, once, with their original time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import redis
from sqlalchemy import delete, select

from experiments.outbox import ExposureOutbox
from experiments.store.experiment_models import Exposure


def _put(outbox: ExposureOutbox, unit: str, variant: str, at: datetime) -> str:
    return outbox.put(
        experiment="outbox-exp", unit_id=unit, variant=variant, language="en", market="DE", surface="api",
        exposed_at=at,
    )


def test_redis_then_disk_replayed_in_order_once(shop_services, redis_url, unique_prefix, tmp_path):
    db = shop_services.db
    with db.session() as session:
        session.execute(delete(Exposure).where(Exposure.experiment == "outbox-exp"))
    start = datetime(2026, 1, 1, tzinfo=UTC)
    outbox = ExposureOutbox(tmp_path, redis_url, unique_prefix)
    try:
        assert [_put(outbox, f"u{i}", "a", start + timedelta(seconds=i)) for i in range(3)] == ["redis"] * 3
        outbox._redis = redis.Redis(port=1, socket_connect_timeout=0.1)  # Redis gone as well: local disk
        assert _put(outbox, "u3", "b", start + timedelta(seconds=3)) == "disk"
        assert _put(outbox, "u0", "b", start + timedelta(seconds=4)) == "disk"  # a later claim for u0
        assert outbox.pending() == 2  # Redis is not counted while it is down
        outbox._redis = redis.Redis.from_url(redis_url)
        outbox._redis_retry_at = 0.0
        assert outbox.pending() == 5
        assert outbox.replay(db) == 5
        assert outbox.pending() == 0 and outbox.replay(db) == 0
        with db.session() as session:
            rows = session.execute(
                select(Exposure.unit_id, Exposure.variant, Exposure.exposed_at).where(
                    Exposure.experiment == "outbox-exp"
                )
            ).all()
        by_unit = {unit: (variant, at.replace(tzinfo=None)) for unit, variant, at in rows}
        assert set(by_unit) == {"u0", "u1", "u2", "u3"}
        assert by_unit["u0"][0] == "a"  # the earlier exposure (in Redis) stays, though disk replays with it
        assert by_unit["u3"] == ("b", (start + timedelta(seconds=3)).replace(tzinfo=None))
        assert by_unit["u1"][1] == (start + timedelta(seconds=1)).replace(tzinfo=None)
    finally:
        redis.Redis.from_url(redis_url).delete(f"{unique_prefix}shoprank:exposure-outbox")
        with db.session() as session:
            session.execute(delete(Exposure).where(Exposure.experiment == "outbox-exp"))


def test_a_failed_replay_keeps_everything(shop_services, tmp_path):
    outbox = ExposureOutbox(tmp_path)
    _put(outbox, "k1", "a", datetime(2026, 1, 1, tzinfo=UTC))

    class DeadDatabase:
        def session(self):
            raise ConnectionError("database down")

    with pytest.raises(ConnectionError):
        outbox.replay(DeadDatabase())  # type: ignore[arg-type]
    assert outbox.pending() == 1
