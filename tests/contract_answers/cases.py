"""The requests whose answers are recorded: the hardening tests' hostile cases plus seeded Hypothesis ones.

The requests themselves are stored in the fixture next to their answers, so a replay sends exactly what was
recorded even if Hypothesis (or this module) later generates different examples.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

Case = dict[str, Any]

WRONG_TYPES: list[Any] = [["click"], {}, {"a": 1}, 1, 1.5, True, None]
UNSTORABLE = ["u\u0000x", "u\u0007x", "u\u001bx", "u\u007fx"]
#: Limits the recorder's app runs with (small, so a boundary is cheap to cross; they come from settings).
LIMITS = dict(
    events_max_batch=20,
    rank_max_candidates=30,
    rerank_max_documents=20,
    search_max_limit=30,
    max_query_chars=200,
    rerank_deadline_ms=120_000,  # a rerank answer that depends on the machine's load is not a contract
)


def _get(path: str, query: dict[str, Any] | list[tuple[str, str]] | None = None) -> Case:
    return {"method": "GET", "path": path, "query": query or {}}


def _post(path: str, body: Any = None, *, raw: str | None = None, auth: bool = True) -> Case:
    case: Case = {"method": "POST", "path": path, "auth": auth}
    if raw is not None:
        case["raw"] = raw
    else:
        case["json"] = body
    return case


class _Ids:
    """Deterministic event ids (the recorder runs on a fresh database, so duplicates are recorded as such)."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> str:
        self.n += 1
        return f"rec-{self.n:06d}"


def event_cases(new_id: _Ids) -> list[Case]:
    cases: list[Case] = []

    def events(*batch: Any) -> Case:
        return _post("/api/events", {"events": list(batch)})

    # the hardening tests: unstorable text in every text field, wrong JSON types in every typed field
    text_fields = [
        ("unit", {"type": "click", "sku": "A"}),
        ("sku", {"type": "click"}),
        ("experiment", {"type": "click", "sku": "A"}),
        ("request_id", {"type": "click", "sku": "A"}),
        ("query", {"type": "impression", "items": ["A"]}),
        ("variant", {"type": "click", "sku": "A"}),
    ]
    for bad in UNSTORABLE[:2]:
        for name, base in text_fields:
            cases.append(events({"id": new_id(), "unit": "hardening-unit", "sku": "A", **base, name: bad}))
        cases.append(
            events({"id": new_id(), "type": "impression", "unit": "u", "query": "q", "items": ["A", {"sku": bad}]})
        )
    typed = ["type", "unit", "sku", "experiment", "variant", "request_id", "impression_id", "ts", "position"]
    typed += ["quantity", "items", "query", "reranked", "currency", "value"]
    kind_of = {
        "items": "impression",
        "query": "impression",
        "reranked": "impression",
        "currency": "purchase",
        "value": "purchase",
    }
    for name in typed:
        for wrong in WRONG_TYPES:
            event = {"id": new_id(), "type": kind_of.get(name, "add_to_cart"), "unit": "u", "sku": "A"}
            event.update({"query": "q", "value": 1, "currency": "EUR", name: wrong})
            cases.append(events(event))
    # body shapes, batch limits, ids, timestamps, delivery fields, listings
    cases += [
        _post("/api/events", {}),
        _post("/api/events", {"events": []}),
        _post("/api/events", {"events": "x"}),
        _post("/api/events", [{"id": new_id(), "type": "click", "unit": "u", "sku": "A"}]),
        _post("/api/events", [1, 2]),
        _post("/api/events", raw="{not json"),
        _post("/api/events", raw=""),
        _post("/api/events", raw='"just a string"'),
        _post(
            "/api/events", raw='{"events": [{"id": "rec-raw-0001", "type": "click", "unit": "u\\u0000x", "sku": "A"}]}'
        ),
        events(
            *[{"id": new_id(), "type": "click", "unit": "u", "sku": "A"} for _ in range(LIMITS["events_max_batch"])]
        ),
        events(
            *[{"id": new_id(), "type": "click", "unit": "u", "sku": "A"} for _ in range(LIMITS["events_max_batch"] + 1)]
        ),
        events(*[{"type": "click"} for _ in range(8)]),
        events("not an object", None, 3),
        events({"id": "short", "type": "click", "unit": "u", "sku": "A"}),
        events({"id": "has space in it", "type": "click", "unit": "u", "sku": "A"}),
        events({"id": "x" * 65, "type": "click", "unit": "u", "sku": "A"}),
        events({"id": new_id(), "type": "view", "unit": "u", "sku": "A"}),
        events({"id": new_id(), "type": "click", "sku": "A"}),
        events({"id": new_id(), "type": "click", "unit": "   ", "sku": "A"}),
        events({"id": new_id(), "type": "click", "unit": "u" * 129, "sku": "A"}),
        events({"id": new_id(), "type": "click", "unit": "u", "sku": ""}),
        events({"id": new_id(), "type": "click", "unit": "u", "sku": "S" * 65}),
        events({"id": new_id(), "type": "click", "unit": "u", "sku": "A", "position": 0}),
        events({"id": new_id(), "type": "click", "unit": "u", "sku": "A", "position": 100_001}),
        events({"id": new_id(), "type": "click", "unit": "u", "sku": "A", "impression_id": "bad id"}),
        events({"id": new_id(), "type": "click", "unit": "u", "sku": "A", "ts": "2024-01-01T00:00:00"}),
        events({"id": new_id(), "type": "click", "unit": "u", "sku": "A", "ts": "2024-01-01T00:00:00Z"}),
        events({"id": new_id(), "type": "click", "unit": "u", "sku": "A", "ts": "1999-01-01T00:00:00Z"}),
        events({"id": new_id(), "type": "click", "unit": "u", "sku": "A", "ts": "2200-01-01T00:00:00Z"}),
        events({"id": new_id(), "type": "click", "unit": "u", "sku": "A", "ts": "yesterday"}),
        events({"id": new_id(), "type": "click", "unit": "u", "sku": "A", "ts": 1_700_000_000_000}),
        events({"id": new_id(), "type": "click", "unit": "u", "sku": "A", "ts": 10**40}),
        events({"id": new_id(), "type": "click", "unit": "u", "sku": "A", "ts": -1}),
        events({"id": new_id(), "type": "add_to_cart", "unit": "u", "sku": "A", "quantity": 0}),
        events({"id": new_id(), "type": "add_to_cart", "unit": "u", "sku": "A", "quantity": 10_001}),
        events({"id": new_id(), "type": "purchase", "unit": "u", "value": "12.345", "currency": "EUR"}),
        events({"id": new_id(), "type": "purchase", "unit": "u", "value": -1, "currency": "EUR"}),
        events({"id": new_id(), "type": "purchase", "unit": "u", "value": "NaN", "currency": "EUR"}),
        events({"id": new_id(), "type": "purchase", "unit": "u", "value": "1e12", "currency": "EUR"}),
        events({"id": new_id(), "type": "purchase", "unit": "u", "value": 10, "currency": "eur"}),
        events({"id": new_id(), "type": "purchase", "unit": "u", "value": 10}),
        events({"id": new_id(), "type": "impression", "unit": "u", "items": ["A"]}),
        events({"id": new_id(), "type": "impression", "unit": "u", "query": "", "items": ["A"]}),
        events({"id": new_id(), "type": "impression", "unit": "u", "query": "q" * 1001, "items": ["A"]}),
        events({"id": new_id(), "type": "impression", "unit": "u", "listing": "category", "items": ["A"]}),
        events({"id": new_id(), "type": "impression", "unit": "u", "listing": "nope", "query": "q", "items": ["A"]}),
        events({"id": new_id(), "type": "impression", "unit": "u", "listing": 3, "query": "q", "items": ["A"]}),
        events({"id": new_id(), "type": "impression", "unit": "u", "query": "q", "items": ["A"] * 1001}),
        events(
            {
                "id": new_id(),
                "type": "impression",
                "unit": "u",
                "query": "q",
                "items": [3, None, {"sku": "B", "position": 0}],
            }
        ),
        events(
            {
                "id": new_id(),
                "type": "impression",
                "unit": "u",
                "query": "q",
                "items": [{"sku": "A", "position": 2}, "B"],
            }
        ),
        events(
            {"id": new_id(), "type": "impression", "unit": "u", "query": "q", "items": [{"sku": "A", "team": "t" * 17}]}
        ),
        events({"id": new_id(), "type": "impression", "unit": "u", "query": "q", "items": ["A"], "scorer": "x"}),
        events(
            {
                "id": new_id(),
                "type": "impression",
                "unit": "u",
                "query": "q",
                "items": ["A"],
                "scorer": {"kind": "Bad Kind", "model_id": 3},
            }
        ),
        events(
            {"id": new_id(), "type": "impression", "unit": "u", "query": "q", "items": ["A"], "rerank_status": "OK"}
        ),
        events({"id": new_id(), "type": "impression", "unit": "u", "query": "q", "items": ["A"], "rerank_depth": -1}),
        events(
            {"id": new_id(), "type": "impression", "unit": "u", "query": "q", "items": ["A"], "search_ms": 3_600_001}
        ),
        events({"id": new_id(), "type": "impression", "unit": "u", "query": "q", "items": ["A"], "search_ms": True}),
        events(
            {
                "id": new_id(),
                "type": "impression",
                "unit": "u",
                "query": "q",
                "items": ["A"],
                "rerank_status": "ok",
                "scorer": {"kind": "cross-encoder", "model_id": "m"},
                "rerank_depth": 10,
                "search_ms": 12.5,
                "reranked": True,
                "language": "en",
            }
        ),
        events(
            {
                "id": new_id(),
                "type": "click",
                "unit": "u",
                "sku": "A",
                "experiment": "no-such-experiment",
                "variant": "x",
            }
        ),
    ]
    same = {"id": "rec-dup-000001", "type": "click", "unit": "u", "sku": "A"}
    cases += [events(same), events(same), events({**same, "type": "add_to_cart"})]
    imp = new_id()
    cases += [
        events({"id": new_id(), "type": "click", "unit": "late", "sku": "A", "impression_id": imp}),
        events({"id": imp, "type": "impression", "unit": "late", "query": "q", "items": ["A"]}),
    ]
    return cases


def search_cases() -> list[Case]:
    cases = [
        _get("/api/search", {"q": "headphones", "user": "a\u0000b"}),
        _get("/api/search", {"q": "无线降噪耳机", "limit": "3"}),
        _get("/api/search", {"q": "wireless headphones", "limit": "5", "lang": "en", "user": "u-42"}),
        _get("/api/search", {"q": ""}),
        _get("/api/search"),
        _get("/api/search", {"q": "x" * 201}),
        _get("/api/search", {"q": "laptop", "lang": "xx"}),
        _get("/api/search", {"q": "laptop", "lang": "english"}),
        _get("/api/search", {"q": "laptop", "market": "DEU"}),
        _get("/api/search", {"q": "laptop", "market": "d1"}),
        _get("/api/search", {"q": "laptop", "market": "de", "lang": "de"}),
        _get("/api/search", {"q": "laptop", "user": "u" * 129}),
        _get("/api/search", {"q": "laptop", "limit": "0"}),
        _get("/api/search", {"q": "laptop", "limit": "31"}),
        _get("/api/search", {"q": "laptop", "limit": "abc"}),
        _get("/api/search", {"q": "laptop", "per_page": "2", "page": "2"}),
        _get("/api/search", {"q": "laptop", "page": "0"}),
        _get("/api/search", {"q": "laptop", "page": "100000"}),
        _get("/api/search", {"q": "laptop", "sort": "price_asc", "limit": "3"}),
        _get("/api/search", {"q": "laptop", "sort": "random"}),
        _get("/api/search", {"q": "laptop", "min_price": "abc"}),
        _get("/api/search", {"q": "laptop", "min_price": "-1"}),
        _get("/api/search", {"q": "laptop", "min_price": "100", "max_price": "10"}),
        _get("/api/search", {"q": "laptop", "min_price": "10", "max_price": "2000", "limit": "3"}),
        _get("/api/search", {"q": "laptop", "currency": "XXX"}),
        _get("/api/search", {"q": "laptop", "currency": "EUR", "limit": "2"}),
        _get("/api/search", {"q": "laptop", "category": "Not A Slug!"}),
        _get("/api/search", [("q", "laptop"), ("category", "electronics"), ("category", "audio"), ("limit", "2")]),
        _get("/api/search", [("q", "laptop")] + [("brand", f"b{i}") for i in range(51)]),
        _get("/api/search", {"q": "laptop", "brand": "b" * 101}),
        _get("/api/search", {"q": "laptop", "language_of_listing": "xx"}),
        _get("/api/search", {"q": "laptop", "language_of_listing": "en", "limit": "2"}),
        _get("/api/search", {"q": "laptop", "in_stock": "maybe"}),
        _get("/api/search", {"q": "laptop", "in_stock": "true", "limit": "2"}),
        _get("/api/search", {"q": "a\u0000b"}),
        _get("/api/suggest", {"q": "hea"}),
        _get("/api/suggest", {"q": "hea", "limit": "0"}),
        _get("/api/suggest", {"q": "hea", "limit": "21"}),
        _get("/api/suggest", {"q": "hea", "limit": "x"}),
        _get("/api/suggest", {"q": "hea", "limit": "3", "lang": "en"}),
        _get("/api/suggest", {"q": "hea", "lang": "zz"}),
        _get("/api/suggest", {"q": "x" * 101}),
        _get("/api/suggest", {"q": ""}),
        _get("/api/suggest"),
    ]
    return cases


def rank_cases() -> list[Case]:
    def rank(body: Any) -> Case:
        return _post("/api/rank", body)

    base = {"query": "wireless headphones"}
    cases = [
        rank({}),
        rank({"query": None, "candidates": ["A"]}),
        rank({"candidates": ["A"]}),
        rank({"query": 3, "candidates": ["A"]}),
        rank({"query": "a\u0000b", "candidates": ["A"]}),
        rank({"query": "", "candidates": ["A"]}),
        rank({"query": "q" * 201, "candidates": ["A"]}),
        rank(base),
        rank({**base, "candidates": "A"}),
        rank({**base, "candidates": []}),
        rank({**base, "candidates": ["A"] * (LIMITS["rank_max_candidates"] + 1)}),
        rank({**base, "candidates": ["A", "A"]}),
        rank({**base, "candidates": ["", 3, None, [], {"title": ""}]}),
        rank({**base, "candidates": [{"title": "x", "descripton": "y"}]}),
        rank({**base, "candidates": [{"title": "t" * 501}]}),
        rank({**base, "candidates": [{"title": "t", "price": "abc", "currency": "EUR"}]}),
        rank({**base, "candidates": [{"title": "t", "price": -1, "currency": "EUR"}]}),
        rank({**base, "candidates": [{"title": "t", "price": True, "currency": "EUR"}]}),
        rank({**base, "candidates": [{"title": "t", "price": 10}]}),
        rank({**base, "candidates": [{"title": "t", "price": 10, "currency": "ZZZ"}]}),
        rank({**base, "candidates": [{"title": "t", "language": "xx"}]}),
        rank({**base, "candidates": [{"title": "t", "stock": -1}]}),
        rank({**base, "candidates": [{"title": "t", "stock": 1.5}]}),
        rank({**base, "candidates": [{"title": "t", "attributes": [1]}]}),
        rank({**base, "candidates": [{"title": "t", "attributes": {"a": [1], "b": "x" * 2000, "c\u0000": "v"}}]}),
        rank({**base, "candidates": [{"title": "t\u0000"}]}),
        rank({**base, "candidates": [{"title": "t", "sku": 5}]}),
        rank({**base, "candidates": [{"title": f"bad {i}", "price": "x", "currency": "EUR"} for i in range(3)]}),
        rank(
            {
                **base,
                "candidates": [
                    {"title": "Wireless headphones", "price": 10, "currency": "EUR", "language": "en"},
                    {"title": "Kitchen knife", "brand": "Acme", "category": "kitchen"},
                ],
            }
        ),
        rank({**base, "candidates": [{"title": "Wireless headphones", "sku": "X1"}, {"title": "Cable", "sku": "X1"}]}),
        rank({**base, "candidates": ["NO-SUCH-SKU", {"title": "Wireless headphones"}], "top_n": 1}),
        rank({**base, "candidates": [{"title": "t"}], "top_n": 0}),
        rank({**base, "candidates": [{"title": "t"}], "top_n": 31}),
        rank({**base, "candidates": [{"title": "t"}], "top_n": True}),
        rank({**base, "candidates": [{"title": "t"}], "top_n": "2"}),
        rank({**base, "candidates": [{"title": "t"}], "lang": "xx"}),
        rank({**base, "candidates": [{"title": "t"}], "lang": 3}),
        rank({**base, "candidates": [{"title": "t"}], "market": "DEU"}),
        rank({**base, "candidates": [{"title": "t"}], "market": 3}),
        rank({**base, "candidates": [{"title": "t"}], "user": "u" * 129}),
        rank({**base, "candidates": [{"title": "t"}], "user": ["u"]}),
        rank({**base, "candidates": [{"title": "t"}], "user": "u1", "lang": "en", "market": "de", "extra": 1}),
        _post("/api/rank", [1]),
        _post("/api/rank", raw="{broken"),
    ]
    return cases


def rerank_cases() -> list[Case]:
    cases: list[Case] = []
    for path, docs in (("/v2/rerank", "documents"), ("/v1/rerank", "documents"), ("/rerank", "texts")):
        ok = {"query": "wireless headphones", docs: ["Wireless headphones with noise cancelling", "A kitchen knife"]}
        cases += [
            _post(path, ok, auth=False),
            _post(path, ok),
            _post(path, {}),
            _post(path, {docs: ["a"]}),
            _post(path, {"query": "", docs: ["a"]}),
            _post(path, {"query": "   ", docs: ["a"]}),
            _post(path, {"query": 3, docs: ["a"]}),
            _post(path, {"query": "q" * 201, docs: ["a"]}),
            _post(path, {"query": "q\u0000", docs: ["a"]}),
            _post(path, {"query": "q"}),
            _post(path, {"query": "q", docs: []}),
            _post(path, {"query": "q", docs: "a"}),
            _post(path, {"query": "q", docs: ["a"] * (LIMITS["rerank_max_documents"] + 1)}),
            _post(path, {"query": "q", docs: [3]}),
            _post(path, {"query": "q", docs: [None, {"x": 1}]}),
            _post(path, {"query": "q", docs: ["a\u0000"]}),
            _post(path, [1]),
            _post(path, raw="{broken"),
        ]
        if docs == "documents":
            cases += [
                _post(path, {**ok, "top_n": 1}),
                _post(path, {**ok, "top_n": 0}),
                _post(path, {**ok, "top_n": "1"}),
                _post(path, {**ok, "top_n": True}),
                _post(path, {**ok, "top_n": 99}),
                _post(path, {**ok, "return_documents": True}),
                _post(path, {**ok, "return_documents": False}),
                _post(path, {**ok, "return_documents": "yes"}),
                _post(path, {**ok, "model": "my-model"}),
                _post(path, {**ok, "model": 3}),
                _post(path, {"query": "q", docs: [{"text": "a", "id": "d1"}, {"text": "b"}]}),
                _post(path, {"query": "q", docs: [{"text": 3}]}),
                _post(path, {**ok, "max_chunks_per_doc": 2}),
            ]
        else:
            cases += [
                _post(path, {**ok, "raw_scores": True}),
                _post(path, {**ok, "raw_scores": "x"}),
                _post(path, {**ok, "return_text": True}),
                _post(path, {**ok, "return_text": 1}),
                _post(path, {**ok, "truncate": True}),
                _post(path, {**ok, "truncation_direction": "Left"}),
            ]
    return cases


def health_cases() -> list[Case]:
    return [_get("/health"), _get("/ready")]  # /openapi.json: tests/test_openapi.py


# --- generated (Hypothesis, derandomized: the same examples on every run of one Hypothesis version) ----------------

_json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(max_size=12),
    st.sampled_from(["", "A", "EUR", "en", "click", "impression", "u\u0000", "2024-01-01T00:00:00Z"]),
)
_json = st.recursive(
    _json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
_event = st.fixed_dictionaries(
    {"type": st.sampled_from(["impression", "click", "add_to_cart", "purchase", "nope"])},
    optional={
        "unit": st.one_of(st.text(max_size=8), _json_leaf),
        "sku": st.one_of(st.sampled_from(["A", "B", ""]), _json_leaf),
        "query": st.one_of(st.text(max_size=8), _json_leaf),
        "items": st.one_of(st.lists(st.sampled_from(["A", "B"]), max_size=3), _json),
        "position": st.one_of(st.integers(-2, 100_002), _json_leaf),
        "quantity": st.one_of(st.integers(-2, 10_002), _json_leaf),
        "value": st.one_of(st.integers(-5, 50), st.text(max_size=6), _json_leaf),
        "currency": st.one_of(st.sampled_from(["EUR", "usd", "JPY"]), _json_leaf),
        "ts": st.one_of(st.integers(0, 2 * 10**12), _json_leaf),
        "reranked": _json_leaf,
        "listing": st.one_of(st.sampled_from(["search", "category", "brand", "x"]), _json_leaf),
        "experiment": _json_leaf,
        "position_extra": _json,
    },
)
_candidate = st.one_of(
    st.text(max_size=6),
    _json_leaf,
    st.fixed_dictionaries(
        {"title": st.one_of(st.sampled_from(["Wireless headphones", "Desk lamp", "Kettle"]), _json_leaf)},
        optional={
            "sku": st.one_of(st.sampled_from(["S1", "S2", "S3"]), _json_leaf),
            "price": st.one_of(st.integers(-3, 1000), st.text(max_size=5), _json_leaf),
            "currency": st.one_of(st.sampled_from(["EUR", "USD", "ZZZ"]), _json_leaf),
            "language": st.one_of(st.sampled_from(["en", "de", "xx"]), _json_leaf),
            "stock": st.one_of(st.integers(-2, 5), _json_leaf),
            "attributes": _json,
            "brand": _json_leaf,
        },
    ),
)


def _draw(strategy: st.SearchStrategy[Any], count: int) -> list[Any]:
    found: list[Any] = []

    @settings(
        max_examples=count,
        derandomize=True,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        deadline=None,
    )
    @given(strategy)
    def collect(value: Any) -> None:
        found.append(value)

    collect()
    return found[:count]


def generated_cases(new_id: _Ids) -> list[Case]:
    cases: list[Case] = []
    for batch in _draw(st.lists(_event, min_size=1, max_size=3), 60):
        cases.append(_post("/api/events", {"events": [{"id": new_id(), **e} for e in batch]}))
    rank_body = st.fixed_dictionaries(
        {
            "query": st.one_of(st.sampled_from(["headphones", "lamp", ""]), _json_leaf),
            "candidates": st.lists(_candidate, max_size=4),
        },
        optional={"top_n": _json_leaf, "lang": _json_leaf, "market": _json_leaf, "user": _json_leaf},
    )
    cases += [_post("/api/rank", body) for body in _draw(rank_body, 50)]
    params = st.dictionaries(
        st.sampled_from(
            [
                "q",
                "lang",
                "market",
                "limit",
                "page",
                "per_page",
                "sort",
                "min_price",
                "max_price",
                "currency",
                "in_stock",
                "category",
                "brand",
                "user",
            ]
        ),
        st.one_of(
            st.sampled_from(["headphones", "en", "de", "2", "0", "-1", "abc", "price_asc", "EUR", "true", ""]),
            st.text(max_size=5),
        ),
        max_size=4,
    )
    cases += [_get("/api/search", {"q": "headphones", **p}) for p in _draw(params, 40)]
    cases += [
        _get("/api/suggest", p)
        for p in _draw(st.dictionaries(st.sampled_from(["q", "lang", "limit"]), st.text(max_size=4), max_size=3), 15)
    ]
    rerank_body = st.fixed_dictionaries(
        {"query": st.one_of(st.sampled_from(["headphones", ""]), _json_leaf)},
        optional={
            "documents": st.lists(st.one_of(st.text(max_size=6), _json_leaf), max_size=3),
            "top_n": _json_leaf,
            "return_documents": _json_leaf,
            "model": _json_leaf,
            "texts": st.lists(st.text(max_size=6), max_size=3),
            "raw_scores": _json_leaf,
        },
    )
    for i, body in enumerate(_draw(rerank_body, 30)):
        cases.append(_post(("/v2/rerank", "/v1/rerank", "/rerank")[i % 3], body))
    return cases


def all_cases() -> list[Case]:
    new_id = _Ids()
    return (
        health_cases() + event_cases(new_id) + search_cases() + rank_cases() + rerank_cases() + generated_cases(new_id)
    )
