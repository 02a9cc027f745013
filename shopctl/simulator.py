"""Synthetic shoppers driven through the real search and event HTTP APIs, so experiments can be demoed and tested.

Each shopper gets a stable id (the API's ``user``), a language, and a few searches drawn from the labelled demo
queries. For every search the simulator calls ``GET /api/search`` exactly as a client would, sends the impression
it was shown (with the interleaving teams the API returned), then clicks, adds to cart and buys with
probabilities from a cascade-style click model:

    P(click at rank r) = attractiveness(relevance grade) × examination(r) × (1 + ctr_lift if treated)
    P(purchase | click) = cvr × (1 + cvr_lift if treated)

"Treated" means the shopper's variant is not control (A/B), or, when interleaving, that ranker B placed the
product. With lifts of 0 the experiment is an A/A test; with lifts > 0 the dashboard should find them. ``days``
spreads shoppers' sessions over past days (event timestamps; the events API accepts past times), so the
cumulative charts have a shape. Nothing here reads or writes the database directly.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode

MAX_RATE_LIMIT_WAITS = 5  # a server still answering 429 after this many waits fails the simulation

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_QUERIES = REPO_ROOT / "data" / "catalog" / "demo_queries.jsonl"
#: Probability that a shopper clicks a product of this relevance grade when examining it.
ATTRACTIVENESS = {3: 0.30, 2: 0.16, 1: 0.06, 0: 0.015}
FALLBACK_QUERIES = [{"query": "wireless headphones", "language": "en", "relevant": {}}]


class Transport(Protocol):
    def get_json(self, path: str, params: dict[str, Any]) -> dict[str, Any]: ...

    def post_json(self, path: str, body: dict[str, Any]) -> dict[str, Any]: ...


class HttpTransport:
    """A running server (``http://host:port``), through ``requests`` with a keep-alive session per thread."""

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        import threading

        import requests

        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._local = threading.local()
        self._requests = requests

    def _session(self) -> Any:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = self._requests.Session()
        return session

    def _send(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """One request; a 429 is waited out (``Retry-After``, at most ``MAX_RATE_LIMIT_WAITS`` times), as a polite
        client of a rate-limited server should, instead of failing the whole simulation."""
        for _ in range(MAX_RATE_LIMIT_WAITS):
            response = self._session().request(method, f"{self.base_url}{path}", timeout=self.timeout, **kwargs)
            if response.status_code != 429:
                break
            time.sleep(min(float(response.headers.get("Retry-After") or 1), 60.0))
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:500]}")
        payload: dict[str, Any] = response.json()
        return payload

    def get_json(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        return self._send("GET", path, params=params)

    def post_json(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._send("POST", path, json=body)


class FlaskTransport:
    """An in-process app through Flask's test client: the same routes, no socket.

    In process, the simulator is the operator's own traffic generator: thousands of requests a minute from
    one address, which the per-IP public rate limit exists to stop. It therefore talks to a twin of ``app``
    on the same services (database, index, reranker) with only that limit off; validation, assignment and
    event storage are the real ones.
    """

    def __init__(self, app: Any) -> None:
        self.app = _without_public_rate_limit(app)

    def get_json(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        with self.app.test_client() as client:
            response = client.get(f"{path}?{urlencode(params)}")
        if response.status_code >= 400:
            raise RuntimeError(f"GET {path}: {response.status_code} {response.get_data(as_text=True)[:500]}")
        payload: dict[str, Any] = response.get_json()
        return payload

    def post_json(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.app.test_client() as client:
            response = client.post(path, json=body)
        if response.status_code >= 400:
            raise RuntimeError(f"POST {path}: {response.status_code} {response.get_data(as_text=True)[:500]}")
        payload: dict[str, Any] = response.get_json()
        return payload


@dataclass(frozen=True)
class SimulationConfig:
    users: int = 1000
    ctr_lift: float = 0.0
    cvr_lift: float = 0.0
    control: str = "control"
    days: int = 0
    searches_per_user: float = 2.5  # mean; each shopper makes 1 + Poisson(mean - 1) searches
    cvr: float = 0.12  # purchase probability after a click
    cart_rate: float = 0.3  # add-to-cart probability after a click
    results_per_page: int = 10
    seed: int = 0
    concurrency: int = 1
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    #: share of shoppers who also searched in the 14 days before their first experiment search (client events
    #: only, outside any experiment: what CUPED's pre-period reads once the demo is on simulated time)
    history_share: float = 0.0


@dataclass
class SimulationResult:
    users: int = 0
    searches: int = 0
    events: int = 0
    clicks: int = 0
    purchases: int = 0
    variants: Counter[str] = field(default_factory=Counter)
    experiments: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def summary(self) -> str:
        split = ", ".join(f"{k}: {v}" for k, v in sorted(self.variants.items())) or "no experiment"
        return (
            f"{self.users} shoppers, {self.searches} searches, {self.clicks} clicks, {self.purchases} purchases, "
            f"{self.events} events in {self.seconds:.1f} s; shoppers per variant: {split}"
        )


def load_queries(path: Path = DEMO_QUERIES) -> list[dict[str, Any]]:
    if not path.exists():
        return FALLBACK_QUERIES
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _examination(rank: int) -> float:
    return 1.0 / (1.0 + 0.45 * (rank - 1))


def _poisson(rng: random.Random, mean: float) -> int:
    # Knuth's method; means here are small
    limit, k, p = pow(2.718281828459045, -mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


class Simulator:
    def __init__(self, transport: Transport, config: SimulationConfig, queries: list[dict[str, Any]] | None = None):
        self.transport = transport
        self.config = config
        self.queries = queries or load_queries()
        self.by_language: dict[str, list[dict[str, Any]]] = {}
        for query in self.queries:
            self.by_language.setdefault(query["language"], []).append(query)
        self.languages = sorted(self.by_language)

    def _shopper(self, index: int) -> tuple[SimulationResult, list[dict[str, Any]]]:
        config = self.config
        rng = random.Random(f"{config.seed}:{config.run_id}:{index}")
        user = f"sim-{config.run_id}-{index:06d}"
        language = rng.choice(self.languages)
        result = SimulationResult(users=1)
        events: list[dict[str, Any]] = []
        now_ms = int(time.time() * 1000)
        start_ms = now_ms - int(rng.random() * config.days * 86_400_000) if config.days > 0 else now_ms
        clock = start_ms
        # An engaged shopper searches more, before the experiment as in it: what makes the history predictive.
        # (no extra random draws without history: runs without it are the same as before)
        engagement = 1.0
        if config.history_share > 0:
            engagement = rng.lognormvariate(0.0, 0.6)
            if rng.random() < config.history_share:
                events += self._history(rng, user, language, start_ms, engagement)
        for _ in range(1 + _poisson(rng, max(config.searches_per_user * engagement - 1, 0.0))):
            query = rng.choice(self.by_language[language])
            page = self.transport.get_json(
                "/api/search",
                {"q": query["query"], "lang": language, "user": user, "limit": config.results_per_page},
            )
            result.searches += 1
            variant = page.get("variant")
            if page.get("experiment") and result.variants.total() == 0:
                result.variants[variant or "?"] += 1
                result.experiments[page["experiment"]] += 1
            clock = min(clock + rng.randint(2_000, 90_000), now_ms)
            impression = {
                "id": page["impression_id"],
                "type": "impression",
                "unit": user,
                "ts": clock,
                "query": page["query"],
                "language": language,
                "reranked": bool(page.get("reranked")),
                "rerank_status": page.get("rerank_status"),
                "rerank_depth": page.get("rerank_depth"),
                "search_ms": (page.get("timings_ms") or {}).get("total"),
                "scorer": page.get("scorer"),
                "experiment": page.get("experiment"),
                "variant": variant,
                "items": [
                    {"sku": hit["sku"], "position": hit["rank"], **({"team": hit["team"]} if hit.get("team") else {})}
                    for hit in page["results"]
                ],
            }
            events.append({k: v for k, v in impression.items() if v is not None})
            arm_treated = bool(page.get("experiment")) and variant not in (config.control, "interleaved", None)
            relevant = query.get("relevant", {})
            for hit in page["results"]:
                treated = arm_treated or hit.get("team") == "B"
                boost = 1.0 + (config.ctr_lift if treated else 0.0)
                p_click = ATTRACTIVENESS.get(int(relevant.get(hit["sku"], 0)), 0.015) * _examination(hit["rank"])
                if rng.random() >= min(p_click * boost, 0.95):
                    continue
                clock = min(clock + rng.randint(1_000, 30_000), now_ms)
                base = {
                    "unit": user,
                    "sku": hit["sku"],
                    "position": hit["rank"],
                    "impression_id": page["impression_id"],
                }
                events.append({"id": str(uuid.uuid4()), "type": "click", "ts": clock, **base})
                result.clicks += 1
                if rng.random() < config.cart_rate:
                    events.append({"id": str(uuid.uuid4()), "type": "add_to_cart", "ts": clock + 500, **base})
                p_buy = config.cvr * (1.0 + (config.cvr_lift if treated else 0.0))
                if (hit.get("stock") is None or hit["stock"] > 0) and rng.random() < min(p_buy, 0.95):
                    events.append(
                        {
                            "id": str(uuid.uuid4()),
                            "type": "purchase",
                            "ts": clock + 1_000,
                            "unit": user,
                            "sku": hit["sku"],
                            "quantity": 1,
                            "value": hit["price"],
                            "currency": hit["currency"],
                            "impression_id": page["impression_id"],
                        }
                    )
                    result.purchases += 1
        return result, events

    def _history(
        self, rng: random.Random, user: str, language: str, start_ms: int, engagement: float
    ) -> list[dict[str, Any]]:
        """Searches in the 14 days before ``start_ms``, outside any experiment: impressions of the query's labelled
        products and a click on the first now and then (client events; no search call, so no exposure)."""
        events: list[dict[str, Any]] = []
        for _ in range(1 + _poisson(rng, max(2.0 * engagement - 1, 0.0))):
            query = rng.choice(self.by_language[language])
            skus = list(query.get("relevant", {}))[: self.config.results_per_page]
            if not skus:
                continue
            ts = start_ms - rng.randint(86_400_000, 14 * 86_400_000)
            impression = {"id": str(uuid.uuid4()), "type": "impression", "unit": user, "ts": ts,
                          "query": query["query"], "language": language, "items": skus}  # fmt: skip
            events.append(impression)
            if rng.random() < min(0.3 * engagement, 0.9):
                events.append({"id": str(uuid.uuid4()), "type": "click", "unit": user, "ts": ts + 5_000,
                               "sku": skus[0], "position": 1, "impression_id": impression["id"]})  # fmt: skip
        return events

    def _send(self, events: list[dict[str, Any]], batch_size: int) -> None:
        for start in range(0, len(events), batch_size):
            self.transport.post_json("/api/events", {"events": events[start : start + batch_size]})

    def run(
        self,
        progress: Callable[[int], object] | None = None,
        batch_size: int = 200,
        pause: Callable[[], None] | None = None,
    ) -> SimulationResult:
        """Simulate every shopper; ``pause`` runs after each one (sequential runs only), so a caller that shares the
        process with live traffic (the demo's background seeding) can rest between shoppers."""
        if pause is not None and self.config.concurrency > 1:
            raise ValueError("pause needs concurrency 1: a pool would keep simulating while the caller rests")
        started = time.perf_counter()
        total = SimulationResult()

        def one(index: int) -> SimulationResult:
            shopper, events = self._shopper(index)
            self._send(events, batch_size)
            shopper.events = len(events)
            return shopper

        def merge(results: Iterable[SimulationResult]) -> None:
            for shopper in results:
                total.users += shopper.users
                total.searches += shopper.searches
                total.events += shopper.events
                total.clicks += shopper.clicks
                total.purchases += shopper.purchases
                total.variants.update(shopper.variants)
                total.experiments.update(shopper.experiments)
                if progress:
                    progress(1)
                if pause:
                    pause()

        if self.config.concurrency <= 1:
            merge(one(i) for i in range(self.config.users))
        else:
            with ThreadPoolExecutor(self.config.concurrency) as pool:
                merge(pool.map(one, range(self.config.users)))
        total.seconds = time.perf_counter() - started
        return total


def _without_public_rate_limit(app: Any) -> Any:
    from webapp import create_app
    from webapp.context import app_services

    services = app_services(app)
    if services.settings.public_rate_limit_per_minute == 0:
        return app
    return create_app(services.settings.replace(public_rate_limit_per_minute=0), services=services)
