"""Event store: impressions, clicks, add-to-cart and purchases, keyed by unit and experiment.

Framework-free: the web tier validates HTTP and calls ``ingest_events``; the
experiment reports aggregate these tables in SQL.
"""

from experiments.store.ingest import (
    EVENT_TYPES,
    EventBatchTooLarge,
    EventValidationError,
    IngestResult,
    ValidEvent,
    ingest_events,
    parse_events,
)
from experiments.store.models import Event, ImpressionItem

__all__ = [
    "EVENT_TYPES",
    "Event",
    "EventBatchTooLarge",
    "EventValidationError",
    "ImpressionItem",
    "IngestResult",
    "ValidEvent",
    "ingest_events",
    "parse_events",
]
