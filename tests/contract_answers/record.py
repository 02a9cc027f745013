"""Send every case of ``cases.py`` through the Flask test client against a fresh PostgreSQL database and store
status + normalised body in ``answers.json`` (``python -m tests.contract_answers.record``).

Volatile values (request and impression ids, timings, the key's id) are dropped and scores rounded, so a replay
on another day compares what the contract promises, not what the clock or the float noise gave.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
FIXTURE = Path(__file__).with_name("answers.json")
#: Keys whose values change from run to run; replaced by their type name.
VOLATILE = frozenset(
    {"uptime_seconds", "request_id", "impression_id", "timings_ms", "search_ms", "revision", "expected_revision"}
)
#: Keys whose float values are scores: rounded, since the scorer's last digits are not part of the contract.
SCORE_DIGITS = 3


def normalise(value: Any, key: str | None = None) -> Any:
    """Volatile values become their type's placeholder; idempotent (a placeholder stays as it is), so a recorded
    answer can be normalised again under grown rules."""
    if key in VOLATILE:
        if isinstance(value, str) and value.startswith("<") and value.endswith(">"):
            return value
        return f"<{type(value).__name__}>"
    if isinstance(value, dict):
        return {k: normalise(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v) for v in value]
    if isinstance(value, str) and _UUID.match(value):  # a Cohere answer's id: a fresh uuid4 each time
        return "<uuid>"
    if isinstance(value, float):
        return round(value, SCORE_DIGITS)
    return value


def send(client: Any, case: dict[str, Any], api_key: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {api_key}"} if case.get("auth") else {}
    if case["method"] == "GET":
        query = case["query"]
        response = client.get(
            case["path"], query_string=[tuple(p) for p in query] if isinstance(query, list) else query
        )
    elif "raw" in case:
        response = client.post(case["path"], data=case["raw"], headers={**headers, "Content-Type": "application/json"})
    else:
        response = client.post(case["path"], json=case["json"], headers=headers)
    body: Any = response.get_json(silent=True)
    if body is None:
        body = {"<text>": response.get_data(as_text=True)[:200]}
    return {"status": response.status_code, "content_type": response.mimetype, "body": normalise(body)}


@contextmanager
def recording_app(database_url: str) -> Iterator[tuple[Any, str]]:
    """The app on a migrated database with the test catalog, limits from ``cases.LIMITS``, no rate limits."""
    from tests.contract_answers.cases import LIMITS
    from tests.shop_support import build_test_services, create_key, prepare_shop_database
    from webapp import create_app

    prepare_shop_database(database_url)
    services = build_test_services(database_url, public_rate_limit_per_minute=0, api_rate_limit_per_minute=0, **LIMITS)
    try:
        key = create_key(services, "contract-recorder")
        yield create_app(services=services).test_client(), key
    finally:
        services.close()


def replay(client: Any, key: str, cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [send(client, case, key) for case in cases]


def main() -> int:
    from tests.conftest import POSTGRES_ADMIN_URL
    from tests.contract_answers.cases import all_cases
    from tests.shop_support import PostgresFactory

    cases = all_cases()
    factory = PostgresFactory(POSTGRES_ADMIN_URL)
    url = factory.create()
    try:
        with recording_app(url) as (client, key):
            answers = replay(client, key, cases)
    finally:
        factory.drop_all()
    records = [{"request": case, "answer": answer} for case, answer in zip(cases, answers, strict=True)]
    FIXTURE.write_text(json.dumps(records, indent=1, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")
    print(f"{len(records)} answers written to {FIXTURE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
