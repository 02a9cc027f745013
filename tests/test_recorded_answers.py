"""The JSON API answers today as it answered when ``tests/contract_answers/answers.json`` was recorded.

Several hundred requests (the hardening tests' hostile cases and seeded Hypothesis ones, see
``tests/contract_answers/cases.py``) go through the Flask app on a fresh PostgreSQL database; each status and
normalised body must equal the recorded one. An answer that changes on purpose is re-recorded
(``python -m tests.contract_answers.record``) and listed in docs/api-contracts.md.
"""

from __future__ import annotations

import json

import pytest

from tests.contract_answers.record import FIXTURE, normalise, recording_app, replay


def _differences(old: object, new: object, path: str = "") -> list[str]:
    """The JSON paths where two answers differ (the display of a long body hides them)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [d for key in sorted(set(old) | set(new), key=str)
                for d in _differences(old.get(key, "<absent>"), new.get(key, "<absent>"), f"{path}.{key}")]  # fmt: skip
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [d for i, (a, b) in enumerate(zip(old, new, strict=True)) for d in _differences(a, b, f"{path}[{i}]")]
    return [] if old == new else [f"{path}: {json.dumps(old, ensure_ascii=False)[:120]} -> {json.dumps(new, ensure_ascii=False)[:120]}"]


@pytest.mark.slow
@pytest.mark.timeout(1800)  # a catalog import and 554 requests: over the default 600 s on a loaded 2-core machine
def test_every_recorded_request_gets_its_recorded_answer(postgres_factory):
    records = json.loads(FIXTURE.read_text(encoding="utf-8"))
    assert len(records) >= 300
    with recording_app(postgres_factory.create()) as (client, key):
        answers = replay(client, key, [r["request"] for r in records])
    changed = [
        (i, r["request"], r["answer"], answer)
        for i, (r, answer) in enumerate(zip(records, answers, strict=True))
        if answer != normalise(r["answer"])  # normalised again: the rules may have grown since recording
    ]
    shown = "\n\n".join(
        f"#{i} {json.dumps(req, ensure_ascii=False)[:300]}\n  " + "\n  ".join(_differences(normalise(old), new)[:6])
        for i, req, old, new in changed[:15]
    )
    assert not changed, f"{len(changed)} of {len(records)} answers changed:\n{shown}"
