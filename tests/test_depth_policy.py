"""Deadline-aware depth without workers: the policy, the step-wise scorers, the search flow's labels."""

from __future__ import annotations

import threading
import time
from datetime import UTC

import numpy as np
import pytest

from experiments.ranking import NoExperiment, RankingConfig
from reranking import MemoryScoreCache, Reranker
from reranking.depth import DepthPolicy, ThroughputMeter, choose_depth, longest_cached_prefix, score_prefix
from reranking.dispatch import DispatchResult, InProcessDispatcher, RerankJob, RerankShed, RerankTimeout
from search.service import SearchService
from shoprank.observability.window import SearchRecord
from workers.microbatch import JobDeadline, MicroBatcher

POLICY = DepthPolicy(min_depth=10, safety=0.7, overhead_seconds=0.15)


def texts(n: int, tag: str = "p") -> list[str]:
    return [f"Title: {tag} {i}" for i in range(n)]


class PacedScorer:
    """A real scorer that takes ``seconds_per_pair`` per pair: a model of known speed."""

    def __init__(self, scorer, seconds_per_pair: float) -> None:
        self._scorer, self.seconds_per_pair, self.calls = scorer, seconds_per_pair, []
        self.info, self.stats = scorer.info, scorer.stats

    def score_pairs(self, pairs, max_batch_size=None):
        self.calls.append(len(pairs))
        time.sleep(self.seconds_per_pair * len(pairs))
        return self._scorer.score_pairs(pairs)

    def normalize(self, raw):
        return self._scorer.normalize(raw)


# -- the policy -----------------------------------------------------------------------------------


def test_unmeasured_throughput_tries_full_depth():
    decision = choose_depth(POLICY, candidates=100, seconds_left=3.0, pairs_per_second=None)
    assert decision.depth == 100 and not decision.shed


def test_depth_follows_throughput_and_backlog():
    fast = choose_depth(POLICY, candidates=100, seconds_left=3.0, pairs_per_second=1000)
    slow = choose_depth(POLICY, candidates=100, seconds_left=3.0, pairs_per_second=30)
    behind = choose_depth(POLICY, candidates=100, seconds_left=3.0, pairs_per_second=30, backlog_pairs=40)
    assert fast.depth == 100
    assert slow.depth == int((3.0 - 0.15) * 0.7 * 30) == 59
    assert behind.depth == int((3.0 - 0.15) * 0.7 * 30) - 40 < slow.depth  # the work ahead comes off the budget
    assert behind.wait_seconds == pytest.approx(40 / 30)
    # Workers score jobs in flight side by side: a newcomer waits for min(size, its depth) of each, not all of it.
    shared = choose_depth(POLICY, candidates=100, seconds_left=3.0, pairs_per_second=30, shared_with=[100, 100, 5])
    assert shared.depth == 18 and shared.wait_seconds == pytest.approx((18 + 18 + 5) / 30)  # 3 x 18 + 5 <= 59.85
    assert choose_depth(POLICY, candidates=100, seconds_left=3.0, pairs_per_second=30, shared_with=[100] * 6).shed


def test_shed_when_not_even_the_minimum_fits():
    decision = choose_depth(POLICY, candidates=100, seconds_left=3.0, pairs_per_second=30, backlog_pairs=85)
    assert decision.shed and decision.depth == 0
    few = choose_depth(POLICY, candidates=4, seconds_left=0.5, pairs_per_second=30)  # 7 fit, 4 asked: fine
    assert not few.shed and few.depth == 4


def test_only_uncached_pairs_count_as_the_jobs_work():
    """A head that is mostly in the score cache costs the pool its misses only: a busy pool that would shed a
    fresh search still serves one whose head is cached but for a few pairs, and deeper."""
    fits = (3.0 - 0.15) * 0.7 * 30  # 59.85 pairs of model work before the deadline
    busy = dict(candidates=100, seconds_left=3.0, pairs_per_second=30, shared_with=[8] * 7)  # 56 pairs ahead
    fresh = choose_depth(POLICY, **busy)
    assert fresh.shed and fresh.reason == "7 pairs fit, fewer than 10"  # 7 x 7 ahead + 7 <= 59.85
    one_miss_in_ten = [i % 10 == 9 for i in range(100)]
    decision = choose_depth(POLICY, **busy, uncached=one_miss_in_ten)
    assert not decision.shed and decision.depth == 39  # 56 ahead + 3 misses in the first 39 <= 59.85
    assert 56 + sum(one_miss_in_ten[:40]) > fits
    all_cached_after_ten = [i < 2 for i in range(100)]
    assert choose_depth(POLICY, **busy, uncached=all_cached_after_ten).depth == 100
    assert choose_depth(POLICY, **busy, uncached=[True] * 100) == fresh  # every pair a miss: as before


def test_meter_and_cached_prefix():
    meter = ThroughputMeter(alpha=0.5)
    assert meter.pairs_per_second is None and meter.step_pairs() == 32
    meter.observe(100, 1.0)
    meter.observe(2, 0.001)  # too few pairs to mean anything
    meter.observe(300, 1.0)
    assert meter.pairs_per_second == pytest.approx(200)
    assert meter.step_pairs(step_seconds=0.15) == 30
    assert longest_cached_prefix([1.0, 2.0, None, 3.0]) == 2 and longest_cached_prefix([]) == 0


# -- step-wise scoring --------------------------------------------------------------------------------


def test_score_prefix_stops_before_a_step_that_would_miss_the_deadline(tiny_scorer_fp32):
    paced = PacedScorer(tiny_scorer_fp32, 0.01)
    cache = MemoryScoreCache()
    meter = ThroughputMeter()
    meter.observe(100, 1.0)  # 100 pairs/s: steps of about 15 pairs (0.15 s)
    reranker = Reranker(paced, cache)
    prefix = score_prefix(reranker, "q", texts(100), meter=meter, expires=time.monotonic() + 0.5)
    done = len(prefix.scored.raw_scores)
    assert not prefix.complete and 15 <= done <= 50 and prefix.steps >= 1
    expected = tiny_scorer_fp32.score_pairs([("q", t) for t in texts(done)])
    assert np.allclose(prefix.scored.raw_scores, expected, atol=1e-5)
    paced.calls.clear()
    assert reranker.score("q", texts(100)[:done]).cache_hits == done and paced.calls == []  # the head is cached


def test_in_process_dispatch_sizes_sheds_and_never_leaves_a_timed_out_job_running(tiny_scorer_fp32):
    paced = PacedScorer(tiny_scorer_fp32, 0.01)
    dispatcher = InProcessDispatcher({"m": Reranker(paced)}, "m", POLICY)
    try:
        dispatcher.meter.observe(100, 1.0)
        result = dispatcher.dispatch(RerankJob("q", texts(100), min_depth=10), deadline_seconds=1.0)
        assert len(result.raw_scores) == result.extra["depth_decision"]["depth"] == 59  # (1 - .15) x .7 x 100
        assert not result.partial
        with pytest.raises(RerankShed):
            dispatcher.dispatch(RerankJob("q", texts(100), min_depth=30), deadline_seconds=0.3)
        # A job whose caller gives up stops at its next step instead of scoring for nobody.
        dispatcher.meter = ThroughputMeter()
        dispatcher.meter.observe(1000, 1.0)  # optimistic: 245 pairs planned, in steps of 150
        paced.seconds_per_pair = 0.004  # really 250 pairs/s: the first step alone outlasts the deadline
        paced.calls.clear()
        with pytest.raises(RerankTimeout):
            dispatcher.dispatch(RerankJob("q2", texts(300), min_depth=10), deadline_seconds=0.5)
        time.sleep(1.0)
        assert paced.calls == [150]
        assert dispatcher.stopped_jobs == 1
    finally:
        dispatcher.close()


def test_the_batcher_drops_expired_jobs_and_answers_partial_heads(tiny_scorer_fp32):
    paced = PacedScorer(tiny_scorer_fp32, 0.01)
    batcher = MicroBatcher(Reranker(paced, MemoryScoreCache()))
    batcher.meter.observe(100, 1.0)
    try:
        with pytest.raises(RerankTimeout, match="deadline passed before"):
            batcher.score("gone", texts(20), timeout=5, deadline=JobDeadline(time.monotonic() - 0.01, 5))
        assert paced.calls == []
        head = batcher.score("q", texts(100), timeout=5, deadline=JobDeadline(time.monotonic() + 0.6, 5))
        assert not head.complete and 15 <= len(head.scored.raw_scores) < 100
        with pytest.raises(RerankTimeout, match="scored"):  # all or nothing: no partial answer
            batcher.score("q3", texts(100, "x"), timeout=5, deadline=JobDeadline(time.monotonic() + 0.4, None))
        stats = batcher.stats.snapshot()
        assert stats["expired_jobs"] == 1 and stats["partial_jobs"] == 1 and stats["stopped_jobs"] == 1
        assert stats["late_pairs"] <= 40  # at most the step that straddled each deadline (a busy machine)
    finally:
        batcher.stop()


def test_the_batcher_plans_steps_by_cache_misses_not_passages(tiny_scorer_fp32):
    """A job whose head is mostly cached is not stopped for work it will not do: with 90 of 100 pairs cached its
    ten misses (0.1 s at 100 pairs/s) fit a 0.5 s deadline, though 100 pairs of work would not."""
    paced = PacedScorer(tiny_scorer_fp32, 0.01)
    reranker = Reranker(paced, MemoryScoreCache())
    passages = texts(100, "c")
    reranker.score("q", [p for i, p in enumerate(passages) if i % 10])  # cache 90, one miss in every ten
    assert reranker.uncached("q", passages).tolist() == [i % 10 == 0 for i in range(100)]
    batcher = MicroBatcher(reranker)
    batcher.meter.observe(100, 1.0)
    paced.calls.clear()
    try:
        answer = batcher.score("q", passages, timeout=5, deadline=JobDeadline(time.monotonic() + 0.5, 5))
        assert answer.complete and len(answer.scored.raw_scores) == 100
        assert sum(paced.calls) == 10 and answer.scored.cache_misses == 10
        assert batcher.stats.snapshot()["partial_jobs"] == 0
    finally:
        batcher.stop()


def test_mostly_cached_jobs_are_admitted_side_by_side_beyond_the_round_cap(tiny_scorer_fp32):
    """The round cap bounds model work, not passages: five jobs of 40 passages (200 > a cap of 64) with 2 misses
    each (10 <= 64) run side by side in one step instead of one after the other."""
    paced = PacedScorer(tiny_scorer_fp32, 0.01)
    reranker = Reranker(paced, MemoryScoreCache())
    jobs = [texts(40, f"j{n}") for n in range(5)]
    for n, passages in enumerate(jobs):
        reranker.score(f"q{n}", passages[2:])  # all but the first two cached
    batcher = MicroBatcher(reranker, max_pairs_per_round=64)
    batcher.meter.observe(100, 1.0)
    try:
        with batcher._cond:  # all five handed over before the model thread plans its next step (re-entrant lock)
            futures = [
                batcher.submit(f"q{n}", passages, deadline=JobDeadline(time.monotonic() + 3, 5))
                for n, passages in enumerate(jobs)
            ]
        answers = [future.result(10) for future in futures]
        assert all(a.complete and a.scored.cache_misses == 2 for a in answers)
        assert max(a.batch_jobs for a in answers) == 5  # one step carried all five
    finally:
        batcher.stop()


def test_a_job_takes_passages_up_to_its_share_of_misses():
    from workers.microbatch import _Pending

    job = _Pending("q", texts(10), None, 0.0, uncached=np.array([0, 0, 1, 0, 1, 1, 0, 0, 0, 1], dtype=bool))
    assert job.take(1) == 3 and job.work(3) == 1  # two cached ride along with the first miss
    assert job.take(2) == 5 and job.take(100) == 10
    job.done = 6
    assert job.take(1) == 4 and job.work(4) == 1
    unknown = _Pending("q", texts(10), None, 0.0)
    assert unknown.take(4) == 4 and unknown.work(4) == 4


def test_background_work_yields_to_live_jobs(tiny_scorer_fp32):
    paced = PacedScorer(tiny_scorer_fp32, 0.005)
    batcher = MicroBatcher(Reranker(paced, MemoryScoreCache()))
    batcher.meter.observe(200, 1.0)
    try:
        warm = batcher.submit_background("warm", texts(400, "w"))  # 2 s of work
        while not paced.calls:
            time.sleep(0.005)
        started = time.monotonic()
        live = batcher.score("live", texts(20, "l"), timeout=5, deadline=JobDeadline(time.monotonic() + 2, 5))
        assert live.complete and time.monotonic() - started < 1.0  # the warming alone needs 2 s
        assert not warm.done()
        assert warm.result(10).complete
        assert batcher.stats.snapshot()["background_pairs"] == 400
    finally:
        batcher.stop()


# -- the search flow ------------------------------------------------------------------------------------


class FixedDispatcher:
    """Answers with scores for the first ``scored`` passages (partial or planned), or raises ``error``."""

    def __init__(self, scored: int = 0, partial: bool = False, error: Exception | None = None) -> None:
        self.scored, self.partial, self.error, self.jobs = scored, partial, error, []

    def dispatch(self, job, deadline_seconds):
        self.jobs.append(job)
        if self.error is not None:
            raise self.error
        raw = [float(-i) for i in range(self.scored)][::-1]  # reversed: the reranker flips the head
        return DispatchResult(
            raw,
            [1 / (1 + np.exp(-r)) for r in raw],
            0,
            self.scored,
            {"kind": "cross-encoder"},
            "fake",
            0.0,
            partial=self.partial,
        )

    def describe(self):
        return {"mode": "fake"}


def test_search_labels_partial_heads_and_keeps_the_rest_in_first_stage_order(shop_services):
    fake = FixedDispatcher(scored=7, partial=True)
    config = RankingConfig(rerank_max_depth=40)
    search = SearchService(shop_services.index, fake, NoExperiment(config), deadline_ms=3000, min_rerank_depth=5)
    result = search.search("wireless headphones", limit=100)
    job = fake.jobs[0]
    assert len(job.passages) == min(40, result.candidates) and job.min_depth == 5 and job.deadline_at > time.time()
    assert result.rerank_status == "partial" and result.reranked and result.rerank_depth == 7
    assert [h.first_stage_rank for h in result.hits[:7]] == [7, 6, 5, 4, 3, 2, 1]
    assert [h.first_stage_rank for h in result.hits[7:]] == list(range(8, len(result.hits) + 1))
    planned = SearchService(shop_services.index, FixedDispatcher(scored=12), NoExperiment(config), deadline_ms=3000)
    assert planned.search("wireless headphones", limit=20).rerank_status == "ok"


class TimedDispatcher(FixedDispatcher):
    """Also records the time each job was given (its timeout and its absolute deadline, seen from dispatch)."""

    def __init__(self, scored: int) -> None:
        super().__init__(scored=scored)
        self.given: list[tuple[float, float]] = []

    def dispatch(self, job, deadline_seconds):
        self.given.append((deadline_seconds, job.deadline_at - time.time()))
        return super().dispatch(job, deadline_seconds)


def test_the_deadline_counts_from_the_start_of_the_search_not_after_the_first_stage(shop_services, monkeypatch):
    """A first stage slowed to 400 ms (as under load) leaves the rerank ~2.6 s of a 3 s deadline, so the search
    still answers within its deadline; before, the rerank got the whole 3 s on top of the first stage."""
    fake = TimedDispatcher(scored=10)
    search = SearchService(shop_services.index, fake, NoExperiment(RankingConfig()), deadline_ms=3000)
    search.search("wireless headphones", limit=10)  # warm: index open, query encoder loaded
    fast_timeout, fast_deadline = fake.given[-1]
    assert 2.5 < fast_timeout <= 3.0 and abs(fast_deadline - fast_timeout) < 0.1

    first_stage = search._first_stage

    def slow_first_stage(*args, **kwargs):
        time.sleep(0.4)
        return first_stage(*args, **kwargs)

    monkeypatch.setattr(search, "_first_stage", slow_first_stage)
    search.search("wireless headphones", limit=10)
    slow_timeout, slow_deadline = fake.given[-1]
    assert slow_timeout <= 2.6 and slow_deadline <= 2.6 + 0.05
    assert slow_timeout > 2.0  # the rest of the deadline, not nothing


def test_shed_searches_keep_first_stage_order_and_say_so(shop_services):
    fake = FixedDispatcher(error=RerankShed("3 pairs fit, fewer than 10"))
    search = SearchService(shop_services.index, fake, NoExperiment(RankingConfig()), deadline_ms=3000)
    result = search.search("wireless headphones", limit=10)
    assert result.rerank_status == "shed" and not result.reranked and result.rerank_depth == 0
    assert [h.first_stage_rank for h in result.hits] == list(range(1, len(result.hits) + 1))
    assert search.stats.snapshot()["fallbacks"] == {"shed": 1}


def test_window_records_carry_the_depth_and_read_old_records():
    record = SearchRecord(1.0, 2.0, 3.0, 4.0, "partial", 1, 2, 17)
    assert SearchRecord.from_json(record.to_json()) == record
    assert SearchRecord.from_json('[1,2,3,4,"ok",0,0]').rerank_depth == 0


def test_concurrent_in_process_searches_share_the_backlog(tiny_scorer_fp32):
    """Jobs queued on the one scoring thread count as backlog: each later search gets a smaller depth, or is shed."""
    paced = PacedScorer(tiny_scorer_fp32, 0.01)
    dispatcher = InProcessDispatcher({"m": Reranker(paced)}, "m", POLICY)
    dispatcher.meter.observe(100, 1.0)
    depths: dict[int, int] = {}

    def one(i: int) -> None:
        try:
            result = dispatcher.dispatch(RerankJob(f"q{i}", texts(100, str(i)), min_depth=10), 2.0)
            depths[i] = len(result.raw_scores)
        except RerankShed:
            depths[i] = 0

    try:
        threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
            time.sleep(0.03)
        for t in threads:
            t.join(10)
    finally:
        dispatcher.close()
    ordered = [depths[i] for i in range(4)]
    assert ordered[0] == 100 and ordered == sorted(ordered, reverse=True) and ordered[-1] < 50


# -- the warm head ----------------------------------------------------------------------------------------


def test_head_queries_come_from_recent_impressions_and_warming_keeps_its_budget(tmp_path):
    from datetime import datetime, timedelta

    from sqlalchemy import text

    from search.warm_head import head_queries, warm_head
    from shoprank import migrate
    from shoprank.db import Database

    url = f"sqlite:///{tmp_path / 'events.db'}"
    migrate.upgrade(url)
    db = Database(url)
    now = datetime.now(UTC)
    rows = [("wireless headphones", 0)] * 5 + [("wireless  headphones", 0)] * 2 + [("kettle", 0)] * 3
    rows += [("laptop", 0)] + [("old favourite", 48)] * 9 + [(None, 0)] * 4
    with db.session() as session:
        for n, (query, hours_ago) in enumerate(rows):
            session.execute(
                text(
                    "INSERT INTO events (event_id, type, unit_id, occurred_at, received_at, query) "
                    "VALUES (:id, :type, 'u', :at, :at, :query)"
                ),
                {"id": f"e{n}", "type": "impression", "at": now - timedelta(hours=hours_ago), "query": query},
            )
        session.execute(
            text(
                "INSERT INTO events (event_id, type, unit_id, occurred_at, received_at, sku) "
                "VALUES ('c1', 'click', 'u', :at, :at, 'sku-1')"
            ),
            {"at": now},
        )
    head = head_queries(db, since=now - timedelta(hours=24), limit=2)
    db.dispose()
    assert head == [("wireless headphones", 7), ("kettle", 3)]  # whitespace variants merged, old ones left out

    warmed: list[tuple[str, int]] = []
    report = warm_head(
        [("a", 9), ("b", 5), ("c", 2)],
        lambda query, depth: [f"{query} {i}" for i in range(depth)],
        lambda query, passages: warmed.append((query, len(passages))),
        depth=40,
        budget_pairs=60,
    )
    assert warmed == [("a", 40), ("b", 20)] and report.as_dict() == {
        "queries": 2,
        "pairs": 60,
        "over_budget": 1,
        "failed": 0,
    }


def test_in_process_warming_fills_the_cache_and_yields_to_live_jobs(tiny_scorer_fp32):
    paced = PacedScorer(tiny_scorer_fp32, 0.005)
    dispatcher = InProcessDispatcher({"m": Reranker(paced, MemoryScoreCache())}, "m", POLICY)
    dispatcher.meter.observe(200, 1.0)
    try:
        dispatcher.warm("warm", texts(300, "w"))  # 1.5 s of work, in 30-pair steps
        while not paced.calls:
            time.sleep(0.005)
        live = dispatcher.dispatch(RerankJob("live", texts(10, "l"), min_depth=5), deadline_seconds=5.0)
        assert len(live.raw_scores) == 10
        assert dispatcher.warm_pairs < 300  # answered between two warming steps, not after the warming
        deadline = time.monotonic() + 60
        while dispatcher.warm_pairs < 300 and time.monotonic() < deadline:
            time.sleep(0.05)
        warmed = dispatcher.dispatch(RerankJob("warm", texts(300, "w")), deadline_seconds=5.0)
        assert warmed.cache_hits == 300 and warmed.cache_misses == 0
    finally:
        dispatcher.close()


def test_the_backlog_forgets_a_job_by_its_id_alone(redis_url, unique_prefix):
    """The web tier registers a job's uncached pairs; the worker, which does not know that number, removes it by id."""
    import redis

    from workers.backlog import Backlog

    backlog = Backlog(redis.Redis.from_url(redis_url), unique_prefix)
    far = time.time() + 60
    backlog.add("q", "job-a", 7, far)
    backlog.add("q", "job-b", 3, far)
    assert sorted(backlog.jobs("q")) == [3, 7]
    backlog.remove("q", "job-a")
    assert backlog.jobs("q") == [3]
    backlog.remove("q", "job-unknown")
    assert backlog.jobs("q") == [3]
    backlog.add("q", "job-c", 5, time.time() - 1)  # its caller gave up: pruned on read
    assert backlog.jobs("q") == [3]


# --- issue 22 item 3: a low self-measured throughput recovers when shedding stops new measurements ----------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_low_estimate_decays_back_to_the_calibration_within_a_minute():
    from reranking.depth import ThroughputMeter

    clock = FakeClock()
    meter = ThroughputMeter(clock=clock)
    meter.calibrated(18.0)
    for _ in range(3):  # the first jobs ran while the machine was busy
        meter.observe(48, 10.0)
    assert meter.pairs_per_second is not None and meter.pairs_per_second < 10
    clock.now += 60  # the web tier shed everything: no job, no measurement, for a minute
    assert meter.pairs_per_second is not None and meter.pairs_per_second >= 0.9 * 18
    meter.observe(48, 10.0)  # a fresh measurement counts at once
    assert meter.pairs_per_second < 18 * 0.85


def test_measurements_that_keep_coming_are_not_overridden_by_the_decay():
    from reranking.depth import ThroughputMeter

    clock = FakeClock()
    meter = ThroughputMeter(clock=clock)
    meter.calibrated(18.0)
    for _ in range(60):  # a really slower machine keeps saying so, once a second
        clock.now += 1
        meter.observe(5, 1.0)
    assert meter.pairs_per_second is not None and meter.pairs_per_second < 7


def test_an_exploration_share_still_sends_the_minimum_depth_when_the_estimate_says_shed():
    from reranking.depth import DepthPolicy, choose_depth

    policy = DepthPolicy(min_depth=10)
    shed = choose_depth(policy, candidates=100, seconds_left=1.0, pairs_per_second=1.0)
    assert shed.shed
    explored = choose_depth(policy, candidates=100, seconds_left=1.0, pairs_per_second=1.0, explore=True)
    assert not explored.shed and explored.depth == 10 and "explor" in explored.reason
