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
        f"#{i} {json.dumps(req, ensure_ascii=False)[:300]}\n  recorded: {json.dumps(old, ensure_ascii=False)[:600]}"
        f"\n  now:      {json.dumps(new, ensure_ascii=False)[:600]}"
        for i, req, old, new in changed[:15]
    )
    assert not changed, f"{len(changed)} of {len(records)} answers changed:\n{shown}"
