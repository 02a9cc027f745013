"""The database-backed ``VariantResolver``: which ranking config a unit's search runs with, and exposure logging.

Definitions come from a snapshot of running and stopped experiments, reloaded at most every ``refresh_seconds``
(and at once after a dashboard change in this process): a search never queries the definitions. Per search:

1. running experiments in start order: the first one that ``assign`` includes decides. In it, the unit's
   variant config ranks the search and ONE exposure is stored for (experiment, unit): an in-process LRU skips
   the write for units already logged, the table's primary key makes it once-only across processes;
2. otherwise, when a winner was shipped (``experiments.ship``), its config, for everyone;
3. otherwise a stopped experiment that reaches the unit serves its control config, unattributed;
4. otherwise the deployment's default config.

Starting an experiment refuses overlap with running ones (``experiments.manage``), so step 1 never has to
choose between two experiments for the same unit. A resolver that cannot read the database serves the default
and logs why: experiments must never break search.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from cachetools import LRUCache
from sqlalchemy import select

from experiments.assignment import AssignmentReason, ExperimentDefinition, assign
from experiments.manage import ranking_config, to_definition
from experiments.outbox import ExposureOutbox
from experiments.ranking import Assignment, RankingConfig, SearchContext
from experiments.ship import as_config, current_default
from experiments.store.experiment_models import INTERLEAVED_VARIANT, Experiment
from experiments.store.exposures import log_exposure
from shoprank.db import Database, is_database_unavailable, utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LiveExperiment:
    definition: ExperimentDefinition
    configs: tuple[RankingConfig, ...]
    started_at: datetime | None


@dataclass(frozen=True)
class Snapshot:
    running: tuple[LiveExperiment, ...]
    stopped: tuple[LiveExperiment, ...]
    loaded_at: float
    #: The shipped default (newest ``ranking_defaults`` row), if any: it replaces the deployment's default.
    shipped: RankingConfig | None = None


class ExperimentResolver:
    def __init__(
        self,
        db: Database,
        default_config: RankingConfig,
        *,
        refresh_seconds: float = 5.0,
        exposure_cache_size: int = 200_000,
        outbox: ExposureOutbox | None = None,
    ) -> None:
        self.db = db
        self.outbox = outbox
        self._outbox_used = False  # this process put something: replay after the next successful write
        self.default = Assignment(experiment=None, variant=None, config=default_config)
        self.refresh_seconds = refresh_seconds
        self._snapshot: Snapshot | None = None
        self._refresh_lock = threading.Lock()
        self._exposed: LRUCache[tuple[str, str], bool] = LRUCache(exposure_cache_size)
        self._exposed_lock = threading.Lock()
        self.exposures_logged = 0

    # --- snapshot ------------------------------------------------------------------------------------------------

    def refresh(self) -> Snapshot:
        """Reload the definitions now (the dashboard calls this after every change)."""
        with self.db.session() as session:
            rows = session.scalars(
                select(Experiment)
                .where(Experiment.status.in_(("running", "stopped")))
                .order_by(Experiment.started_at, Experiment.id)
            ).all()
            live = {"running": [], "stopped": []}  # type: dict[str, list[LiveExperiment]]
            for row in rows:
                try:
                    configs = tuple(ranking_config(v) for v in row.variants)
                    live[row.status].append(LiveExperiment(to_definition(row), configs, row.started_at))
                except ValueError:
                    log.exception("experiment %s has an invalid definition; it is ignored", row.key)
            shipped_row = current_default(session)
            shipped = as_config(shipped_row) if shipped_row is not None else None
        snapshot = Snapshot(tuple(live["running"]), tuple(live["stopped"]), time.monotonic(), shipped)
        self._snapshot = snapshot
        return snapshot

    def invalidate(self) -> None:
        try:
            self.refresh()
        except Exception:
            log.exception("experiment refresh failed; the next search retries")
            self._snapshot = None

    def snapshot(self) -> Snapshot | None:
        current = self._snapshot
        if current is not None and time.monotonic() - current.loaded_at < self.refresh_seconds:
            return current
        if current is not None and not self._refresh_lock.acquire(blocking=False):
            return current  # another thread is refreshing; serve the previous snapshot meanwhile
        if current is None:
            self._refresh_lock.acquire()
        try:
            return self.refresh()
        except Exception:
            log.exception("could not load experiments; serving the %s", "previous snapshot" if current else "default")
            if current is not None:  # retry after another interval rather than on every search
                self._snapshot = Snapshot(current.running, current.stopped, time.monotonic(), current.shipped)
            return current
        finally:
            self._refresh_lock.release()

    # --- resolution ----------------------------------------------------------------------------------------------

    def resolve(self, unit_id: str | None, context: SearchContext) -> Assignment:
        snapshot = self.snapshot()
        if snapshot is None:
            return self.default
        if not unit_id:
            return self._fallback(snapshot)
        attributes = {"language": context.language, "market": context.market}
        for live in snapshot.running:
            decided = assign(live.definition, unit_id, attributes)
            if decided is None:
                continue
            if not decided.in_experiment:  # held out: control, unattributed
                return Assignment(None, None, live.configs[0])
            key = live.definition.key
            if decided.interleaved:
                self._expose(key, unit_id, INTERLEAVED_VARIANT, context)
                return Assignment(key, INTERLEAVED_VARIANT, live.configs[0], interleave_with=live.configs[1])
            self._expose(key, unit_id, decided.variant_key, context)
            return Assignment(key, decided.variant_key, live.configs[decided.variant_index])
        if snapshot.shipped is not None:
            return self._fallback(snapshot)
        for live in snapshot.stopped:
            decided = assign(live.definition, unit_id, attributes)
            if decided is not None and decided.reason is AssignmentReason.NOT_RUNNING:
                return Assignment(None, None, live.configs[0])
        return self.default

    def _fallback(self, snapshot: Snapshot) -> Assignment:
        """Outside every running experiment: the shipped winner's config, else the deployment's default."""
        if snapshot.shipped is None:
            return self.default
        return Assignment(experiment=None, variant=None, config=snapshot.shipped)

    def _expose(self, experiment: str, unit_id: str, variant: str, context: SearchContext) -> None:
        cache_key = (experiment, unit_id)
        with self._exposed_lock:
            if cache_key in self._exposed:
                return
        exposed_at = utcnow()
        try:
            with self.db.session() as session:
                stored = log_exposure(
                    session,
                    experiment=experiment,
                    unit_id=unit_id,
                    variant=variant,
                    language=context.language,
                    market=context.market,
                    surface=context.surface,
                    at=exposed_at,
                )
        except Exception as exc:  # the search goes on; the exposure waits in the outbox (or the next search retries)
            if self.outbox is None or not is_database_unavailable(exc):  # a bad row would poison the outbox
                log.exception("could not log the exposure of %s to %s", unit_id, experiment)
                return
            where = self.outbox.put(
                experiment=experiment,
                unit_id=unit_id,
                variant=variant,
                language=context.language,
                market=context.market,
                surface=context.surface,
                exposed_at=exposed_at,
            )
            log.warning("could not log the exposure of %s to %s now; kept in the %s outbox", unit_id, experiment, where)
            self._outbox_used = True
            with self._exposed_lock:
                self._exposed[cache_key] = True
            return
        with self._exposed_lock:
            self._exposed[cache_key] = True
            self.exposures_logged += int(stored)
        if self._outbox_used and self.outbox is not None:
            self.replay_outbox()

    def replay_outbox(self) -> int:
        """Write what the outbox holds now that the database answered; a failure leaves it for next time."""
        if self.outbox is None:
            return 0
        try:
            written = self.outbox.replay(self.db)
        except Exception:
            log.exception("exposure outbox replay failed; it is retried after the next exposure")
            return 0
        self._outbox_used = False
        return written
