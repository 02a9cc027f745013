"""Treatment delivery check: did each variant's searches get the ranking its config asks for?

An A/B report compares what was *served*. If a variant configured to rerank with a cross-encoder was in fact
reranked by the bi-encoder fallback (weights missing), or kept first-stage order (timeouts, no worker, load
shedding), its lift measures something else, and shipping it ships a treatment that never ran. The impressions
say what each search served (:mod:`experiments.store.served`); this module compares that with the config:

- rerank off: every search should be served in first-stage order (status ``disabled``);
- rerank on: reranked (status ``ok`` or ``partial``) by a ``cross-encoder``, by the configured model when one
  is named; a search without candidates (``no_candidates``) had nothing to rerank and counts as delivered.

A variant is flagged when more than :data:`TOLERANCE` of its reported searches (and at least
:data:`MIN_MISSES` of them) were not served as configured. Impressions from clients that do not report what
the search served are counted as "not reported", never as misses.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from experiments.store.served import DeliveryCount

TOLERANCE = 0.05
MIN_MISSES = 3
RERANKED = frozenset({"ok", "partial"})
NOTHING_TO_RERANK = frozenset({"disabled", "no_candidates"})
CROSS_ENCODER = "cross-encoder"


@dataclass(frozen=True)
class Configured:
    """The part of a variant's ranking config the delivery check can see served."""

    variant: str
    rerank: bool
    model: str | None
    first_stage_top_k: int
    #: The variant's rerank depth cap (None = the deployment's), shown next to the depth actually served.
    rerank_max_depth: int | None = None


@dataclass
class VariantDelivery:
    variant: str
    configured: Configured
    searches: int = 0  # impressions attributed to the variant
    not_reported: int = 0  # impressions without a rerank status (older clients)
    as_configured: int = 0
    #: reranked searches per (scorer kind, model)
    scorers: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: searches kept in first-stage order although reranking was asked for, per reason (timeout, shed, ...)
    first_stage: Counter[str] = field(default_factory=Counter)
    depths: Counter[int] = field(default_factory=Counter)  # rerank depth of reranked searches
    problems: list[str] = field(default_factory=list)

    @property
    def reported(self) -> int:
        return self.searches - self.not_reported

    @property
    def missed(self) -> int:
        return self.reported - self.as_configured

    @property
    def as_configured_share(self) -> float | None:
        return self.as_configured / self.reported if self.reported else None

    @property
    def flagged(self) -> bool:
        return self.missed >= MIN_MISSES and self.missed > TOLERANCE * self.reported

    def to_dict(self) -> dict[str, Any]:
        reported = self.reported or 1
        reranked = sum(self.depths.values())
        depths = sorted(self.depths.elements()) if reranked <= 100_000 else []
        return {
            "variant": self.variant,
            "configured": {
                "rerank": self.configured.rerank,
                "model": self.configured.model,
                "first_stage_top_k": self.configured.first_stage_top_k,
                "rerank_max_depth": self.configured.rerank_max_depth,
            },
            "searches": self.searches,
            "reported": self.reported,
            "not_reported": self.not_reported,
            "as_configured": self.as_configured,
            "as_configured_share": self.as_configured_share,
            "scorers": [
                {"kind": kind, "model": model, "searches": n, "share": n / reported}
                for (kind, model), n in self.scorers.most_common()
            ],
            "first_stage": [
                {"reason": reason, "searches": n, "share": n / reported} for reason, n in self.first_stage.most_common()
            ],
            "depth": {
                "median": depths[len(depths) // 2] if depths else None,
                "min": min(self.depths) if self.depths else None,
                "max": max(self.depths) if self.depths else None,
                "mean": sum(d * n for d, n in self.depths.items()) / reranked if reranked else None,
            },
            "flagged": self.flagged,
            "problems": list(self.problems),
        }


def model_matches(configured: str | None, served: str | None) -> bool:
    """A named model matches its hub id or a local directory of the same name (``/models/bge-reranker-v2-m3``)."""
    if configured is None:
        return True
    if not served:
        return False
    return served == configured or served.rstrip("/").rsplit("/", 1)[-1] == configured.rsplit("/", 1)[-1]


def _served_as_configured(config: Configured, row: DeliveryCount) -> bool:
    if not config.rerank:
        return row.rerank_status in NOTHING_TO_RERANK
    if row.rerank_status == "no_candidates":
        return True
    return (
        row.rerank_status in RERANKED
        and row.scorer_kind == CROSS_ENCODER
        and model_matches(config.model, row.scorer_model)
    )


def _pct(part: int, whole: int) -> str:
    return f"{part / whole:.0%}" if whole else "–"


def _describe(delivery: VariantDelivery) -> list[str]:
    """The numbers behind a flag, in words a merchandiser can act on."""
    config, reported = delivery.configured, delivery.reported
    if not config.rerank:
        reranked = sum(delivery.scorers.values())
        return [f"configured without reranking, but {_pct(reranked, reported)} of {reported:,} searches were reranked"]
    wanted = f"a cross-encoder ({config.model})" if config.model else "the deployment's cross-encoder"
    parts = [
        f"configured to rerank with {wanted}, but only {_pct(delivery.as_configured, reported)} of "
        f"{reported:,} searches were"
    ]
    for (kind, model), n in delivery.scorers.most_common():
        if kind != CROSS_ENCODER or not model_matches(config.model, model):
            parts.append(f"{_pct(n, reported)} reranked by the {kind} {model or '(unknown model)'}")
    if delivery.first_stage:
        reasons = ", ".join(f"{reason} {n:,}" for reason, n in delivery.first_stage.most_common())
        parts.append(f"{_pct(sum(delivery.first_stage.values()), reported)} kept first-stage order ({reasons})")
    return ["; ".join(parts)]


def interleaved_config(configs: Sequence[Configured], variant: str) -> Configured:
    """What an interleaved page should have served: reranked by team B's scorer (else team A's) when either team
    reranks, first-stage order when neither does.

    An interleaved page reports one status and one scorer (the first that answered), so the check is on the page:
    a team configured as a cross-encoder and served by the fallback makes every page a miss, which is what makes
    "B preferred" a statement about the fallback, not about the configured ranker.
    """
    rerankers = [c for c in configs if c.rerank]
    if not rerankers:
        return Configured(variant, False, None, max(c.first_stage_top_k for c in configs))
    wanted = rerankers[-1]  # team B when it reranks
    return Configured(variant, True, wanted.model, wanted.first_stage_top_k, wanted.rerank_max_depth)


def assess_delivery(configs: Sequence[Configured], counts: Iterable[DeliveryCount]) -> list[VariantDelivery]:
    """One :class:`VariantDelivery` per configured variant, in config order."""
    by_variant = {config.variant: VariantDelivery(config.variant, config) for config in configs}
    for row in counts:
        delivery = by_variant.get(row.variant)
        if delivery is None:
            continue
        delivery.searches += row.impressions
        if row.rerank_status is None:
            delivery.not_reported += row.impressions
            continue
        if _served_as_configured(delivery.configured, row):
            delivery.as_configured += row.impressions
        if row.rerank_status in RERANKED:
            delivery.scorers[(row.scorer_kind or "unknown", row.scorer_model or "")] += row.impressions
            delivery.depths[row.rerank_depth or 0] += row.impressions
        elif row.rerank_status not in NOTHING_TO_RERANK:
            delivery.first_stage[row.rerank_status] += row.impressions
    for delivery in by_variant.values():
        if delivery.flagged:
            delivery.problems = _describe(delivery)
    return list(by_variant.values())
