"""Impression ids the server signs, so search analytics can tell what it answered from what a client reports.

``POST /api/events`` is public: an impression's query, listing kind and items are whatever a client sends. The
server that answers a search (the shop page, ``/api/search``, ``/api/rank``) or shows a listing issues the
impression id itself: a random nonce and an HMAC-SHA256 of (nonce, kind, query as :func:`phrase_key` compares it,
number of products listed) under a key derived from the deployment's secret (``SHOPRANK_SECRET_KEY``, never a client
value). The events API still stores every valid impression (experiment reports and clicks need them), but marks it
``signed`` only when the id verifies against the facts the event carries; search analytics counts signed ones only.

So one client cannot invent searches: a made-up id, a real id posted with another query (or kind, or product
count), all store unsigned; a real id posted twice stores once (the id is the primary key). What stays
client-reported on a signed impression: its language, variant, timings and which products (the count is bound, the
SKUs are not), and the clicks that point at it. Each signed impression costs one search the server answered, which
the public rate limit bounds.

The id fits the event id rules (64 characters of ``[0-9a-f-]``): 32 hex of nonce, ``-``, 31 hex of MAC (124 bits).
HMAC from the standard library: a key, a message and a constant-time compare are all this needs.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid

from experiments.store.suggestions import phrase_key

#: The kind of a search impression; a listing's kind is its ``listing`` value (category, brand, deals, home, filters).
SEARCH = "search"
_MAC_HEX = 31
_NONCE_HEX = 32
_CONTEXT = b"shoprank impression ids v1"


def impression_key(secret_key: str) -> bytes:
    """The signing key, derived from the deployment's secret so it is never the session-signing key itself."""
    return hmac.new(secret_key.encode("utf-8", "surrogatepass"), _CONTEXT, hashlib.sha256).digest()


def _mac(key: bytes, nonce: str, kind: str, query: str, items: int) -> str:
    message = "\x1f".join((nonce, kind, phrase_key(query) if kind == SEARCH else "", str(items)))
    return hmac.new(key, message.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:_MAC_HEX]


def issue(key: bytes, *, kind: str, query: str, items: int) -> str:
    """A fresh impression id for what the server is answering: ``kind`` (``search`` or a listing kind), the query
    text the response tells the client to report (ignored for listings) and how many products it lists."""
    nonce = uuid.uuid4().hex
    return f"{nonce}-{_mac(key, nonce, kind, query, items)}"


def verifies(key: bytes, impression_id: str, *, kind: str, query: str | None, items: int) -> bool:
    """Whether ``impression_id`` was issued by this server for exactly this kind, query and product count."""
    nonce, dash, mac = impression_id.partition("-")
    if not dash or len(nonce) != _NONCE_HEX or len(mac) != _MAC_HEX:
        return False
    return hmac.compare_digest(mac, _mac(key, nonce, kind, query or "", items))
