"""The warm-head loop: rounds on a period, a failed round retried, the count honoured."""

from __future__ import annotations

from search.warm_head import WarmReport, repeat_rounds


def test_rounds_repeat_on_the_period_and_outlive_a_failed_round(caplog):
    outcomes = iter([WarmReport(3, 30, 0, 0), RuntimeError("redis away"), WarmReport(2, 20, 0, 0)])
    waits: list[float] = []
    reports: list[WarmReport] = []

    def run_once() -> WarmReport:
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    done = repeat_rounds(run_once, every_seconds=600, rounds=3, report=reports.append, sleep=waits.append)
    assert done == 3 and [r.pairs for r in reports] == [30, 20]
    assert len(waits) == 2 and all(590 < w <= 600 for w in waits)  # between rounds only, minus the round's time
    assert "warm-head round failed" in caplog.text
