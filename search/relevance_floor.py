"""Which candidates a query matches: one decision for every arm, relative to the query's own best candidate.

The earlier floor asked the deployed reranker how high nonsense scores and cut everything below that. It was
tuned on the demo catalog and broke on others: good cross-lingual matches of a small bi-encoder score below
what letter salad reaches on another catalog (empty pages for real queries), and the first-stage-only arm had no
floor at all (so "total" and the zero-result rate meant different things per arm).

The decision here reads only what every arm has, the first-stage candidates, never the arm's scores:

1. **Nonsense** (``search.nonsense``): no letter token of the query is a word in any language, and no candidate
   matches a query token lexically → nothing matches (``total: 0``, no related products).
2. **How well each candidate matches**, as ``z``: its e5 similarity to the query in standard deviations above the
   catalog's average product for this query (``search.intent``), so a weak cross-lingual query and a strong
   same-language one are judged on the same scale.
3. **Relative floor**: a candidate matches when its ``z`` is within a window of the query's *best* candidate:
   ``IN_INTENT_WINDOW`` for products in the query's intended categories, the narrower ``OUT_OF_INTENT_WINDOW``
   outside them, and ``LEXICAL_WINDOW`` for products that also match the query's words. The best candidate
   always matches, so a query with words and candidates never gets an empty page.
4. **Related**: when the best candidate is no better than nonsense reaches (below the weakest nonsense probe's
   best, less ``RELATED_MARGIN``) and nothing matches lexically, the query answers ``total: 0`` with the closest
   products under ``related``. The margin is deliberately wide: with the e5 fallback, weak real cross-lingual
   matches and nonsense overlap, and hiding a real match is the worse error.

The order within the matches is the arm's; ``search.shop_search`` then moves accessories below the product they
serve (``search.product_type``); intent decides what matches, never the order among products. The window
constants were chosen on the demo *development* queries only; ``bench/relevance.py`` reports the held-out sets
separately.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from cachetools import LRUCache

from search.index import CatalogIndex
from search.index_files import lexical_text
from search.intent import CatalogProfile, ProfileCache, QueryIntent, build_profile, understand
from search.nonsense import has_words
from search.product_type import AccessoryShapes
from search.service import SearchHit
from search.tokenize import tokenize
from shoprank.db import is_database_unavailable

log = logging.getLogger(__name__)

#: Letter strings that mean nothing in any language (Latin and Cyrillic): the floor's reference for "nonsense".
NONSENSE_PROBES: tuple[str, ...] = (
    "xyzzyqwerty",
    "qxvbzt wrpl",
    "zzkrwplmf",
    "bvqjx wkrtz",
    "ploqvem xazt",
    "ывфщз кцуй",
)
#: Lexical hits ranked this high count as the query's words being in the product.
LEXICAL_EVIDENCE = 10
#: Window below the best in-intent product's z (in the catalog's standard deviations for the query).
IN_INTENT_WINDOW = 2.5
#: A product of another kind matches only this close to (negative: above) the best in-intent product.
OUT_OF_INTENT_WINDOW = 0.0
#: Query words found in more than this share of the catalog's titles say nothing about the product kind.
INFORMATIVE_SHARE = 0.1
#: How far below the weakest nonsense probe's best z a query's best must fall before it only gets "related".
RELATED_MARGIN = 0.5
#: Products whose word sets are kept between searches (per index version): tokenizing a candidate's whole text
#: was 90 % of the gate's time per search.
WORD_CACHE_SIZE = 200_000
#: Related products shown when nothing matches well.
RELATED_COUNT = 12
#: An accessory is for the query's product when the query is this much closer to the product it serves than to
#: the accessory itself (cosine; 0 = closer at all).
ACCESSORY_MARGIN = -0.02

MATCHED, RELATED, NOTHING = "matched", "related", "none"


@dataclass(frozen=True, slots=True)
class Decision:
    """What a query matched, the same in every arm."""

    state: str  # matched | related | none
    matching: frozenset[str]  # skus that match (empty unless matched)
    related: tuple[str, ...]  # skus shown under "related" (state related), closest first
    intent: QueryIntent | None
    #: sku -> its place among the matches: 0 the products, 1 accessories of what the query asks for (the arm's order
    #: is kept inside each tier: the reranker, not a rule, orders the products)
    tiers: dict[str, int] = field(default_factory=dict)


class RelevanceGate:
    """Decides matches from the first stage's candidates; thread-safe, one per process."""

    def __init__(self, index: CatalogIndex) -> None:
        self._index = index
        self._profiles = ProfileCache()
        self._shapes: tuple[str, AccessoryShapes] | None = None
        self._nonsense: tuple[str, float] | None = None
        self._lock = threading.Lock()
        self._words: tuple[str, LRUCache[str, frozenset[str]]] = ("", LRUCache(WORD_CACHE_SIZE))
        self._words_lock = threading.Lock()  # cachetools caches are not safe to mutate from several threads

    # --- per index version ----------------------------------------------------------------------------------

    def warm(self) -> None:
        """Learn this index version's profile, accessory shapes and nonsense level now (seconds on a busy machine:
        a covariance over every vector, the catalog's titles, a first stage per nonsense probe), so a start pays
        for them before it listens instead of its first shopper's search."""
        self.profile()
        self.shapes()
        self.nonsense_z()

    def profile(self) -> CatalogProfile:
        def build() -> CatalogProfile:
            version, vectors, categories, centering = self._index.profile_inputs()
            return build_profile(version, vectors, categories, centering)

        return self._profiles.get(self._index.state.version.name, build)

    def shapes(self) -> AccessoryShapes:
        """The catalog's accessory shapes, learned from its titles once per index version.

        The titles come from the database: while it is unreachable, searches go on without accessory shapes (and
        learn them at the next search once it is back) instead of failing, as the rest of a search does.
        """
        version = self._index.state.version.name
        cached = self._shapes
        if cached is None or cached[0] != version:
            try:
                titles = [title for _, title, _, _ in self._index.title_sample()]
            except Exception as exc:
                if not is_database_unavailable(exc):
                    raise
                log.warning("relevance gate: catalog titles unreachable (%s); no accessory shapes for now", exc)
                return AccessoryShapes([])
            cached = (version, AccessoryShapes(titles))
            self._shapes = cached
        return cached[1]

    def nonsense_z(self) -> float:
        """The weakest best-candidate z that a nonsense probe reaches on this catalog (cached per version)."""
        version = self._index.state.version.name
        cached = self._nonsense
        if cached is not None and cached[0] == version:
            return cached[1]
        with self._lock:
            profile = self.profile()
            tops = []
            for probe in NONSENSE_PROBES:
                first_stage = self._index.first_stage(probe, 20)
                items = [first_stage.items[hit.sku] for hit in first_stage.hits]
                if items:
                    query = self._index.query_vector(probe)
                    intent = understand(profile, query)
                    tops.append(intent.z(float(np.max(self._index.vectors_of(items) @ query))))
            value = min(tops) if tops else float("inf")
            self._nonsense = (version, value)
            log.info("relevance gate for %s: nonsense probes reach z >= %.2f", version, value)
            return value

    # --- per query ------------------------------------------------------------------------------------------

    def decide(self, query: str, hits: Sequence[SearchHit]) -> Decision:
        """Which of ``hits`` (any arm's order of the first stage's candidates) match ``query``."""
        if not hits:
            return Decision(NOTHING, frozenset(), (), None)
        informative = self.informative_words(query)
        words = self.word_matches(informative, hits)
        lexical = {hit.item.sku for hit in hits if hit.retriever_ranks.get("lexical", LEXICAL_EVIDENCE + 1)
                   <= LEXICAL_EVIDENCE}  # fmt: skip
        if not lexical and not words and not has_words(query):
            return Decision(NOTHING, frozenset(), (), None)
        vector = self._index.query_vector(query)
        intent = understand(self.profile(), vector)
        candidates = self._index.vectors_of([hit.item for hit in hits])
        similarity = candidates @ vector
        z = {hit.item.sku: intent.z(float(s)) for hit, s in zip(hits, similarity.tolist(), strict=True)}
        if not lexical and not words and max(z.values()) < self.nonsense_z() - RELATED_MARGIN:
            closest = sorted(z, key=lambda sku: -z[sku])[:RELATED_COUNT]
            return Decision(RELATED, frozenset(), tuple(closest), intent)
        accessories = self.accessories(query, vector, hits) | self.served_products(query, hits, candidates)
        # "sony", "lego": that brand's products, in any language
        if words and self.names_a_brand(informative, hits, words):
            tiers = {sku: 1 if sku in accessories else 0 for sku in words}
            return Decision(MATCHED, frozenset(words), (), intent, tiers)
        if words:  # the query's own words name the kind of product: their categories are the intent
            intent = dataclasses.replace(intent, categories=frozenset(h.item.category for h in hits
                                                                       if h.item.sku in words))  # fmt: skip
        products = [hit for hit in hits if hit.item.sku not in accessories] or list(hits)
        in_intent = [hit for hit in products if hit.item.category in intent.categories] or products
        # the window hangs from the best product that matched by meaning alone: a listing repeating the query's
        # words in the query's language sits far above every cross-lingual match and would shut them out
        by_meaning = [hit for hit in in_intent if hit.item.sku not in words] or in_intent
        best_in = max(z[hit.item.sku] for hit in by_meaning)
        matching, tiers = set(), {}
        for hit in hits:
            sku = hit.item.sku
            if hit.item.category in intent.categories or sku in words:
                keep = sku in words or z[sku] >= best_in - IN_INTENT_WINDOW
            else:  # another kind of product: only when it matches better than anything of the intended kind
                keep = not words and z[sku] >= best_in - OUT_OF_INTENT_WINDOW
            if keep:
                matching.add(sku)
                tiers[sku] = 1 if sku in accessories else 0
        return Decision(MATCHED, frozenset(matching), (), intent, tiers)

    def informative_words(self, query: str) -> set[str]:
        """The query's words found in at most ``INFORMATIVE_SHARE`` of the catalog's titles ("for", "para", "de"
        say nothing about the product)."""
        shapes = self.shapes()
        return {t for t in tokenize(query) if shapes.share(t) <= INFORMATIVE_SHARE}

    def word_matches(self, informative: set[str], hits: Sequence[SearchHit]) -> set[str]:
        """Candidates whose text holds every one of the query's ``informative`` words."""
        if not informative:
            return set()
        return {hit.item.sku for hit in hits if informative <= self.words_of(hit)}

    def words_of(self, hit: SearchHit) -> frozenset[str]:
        """The tokens of a candidate's whole text, kept per index version (a product's text changes only with a
        new version, so a cached set is never stale; the cache is swapped, not cleared, when the version moves)."""
        version, item = self._index.state.version.name, hit.item
        with self._words_lock:
            owner, cache = self._words
            if owner != version:
                cache = LRUCache(WORD_CACHE_SIZE)
                self._words = (version, cache)
            words = cache.get(item.sku)
        if words is None:
            text = lexical_text(item.title, item.brand, item.category, item.description, item.attributes)
            words = frozenset(tokenize(text))
            with self._words_lock:
                cache[item.sku] = words
        return words

    def names_a_brand(self, informative: set[str], hits: Sequence[SearchHit], words: set[str]) -> bool:
        """Whether every informative word of the query is in the brand of a product that matched by words (a
        query for a brand, as shops treat a query that is a facet value: that brand's products only)."""
        brands = [set(tokenize(hit.item.brand or "")) for hit in hits if hit.item.sku in words]
        return bool(informative) and any(informative <= brand for brand in brands)

    def accessories(self, query: str, vector: np.ndarray, hits: Sequence[SearchHit]) -> set[str]:
        """Accessory-shaped candidates whose served product is what the query wants (see ``search.product_type``):
        the query is closer to the product they serve than to the accessory itself by ``ACCESSORY_MARGIN``, and
        none of the accessory's own words is in the query ("coque iphone 15" wants the "Coque pour iPhone 15")."""
        shapes = self.shapes()
        words = set(tokenize(query))
        shaped = [(hit, parts) for hit in hits if (parts := shapes.parts(hit.item.title)) is not None
                  and not words & set(tokenize(parts.head))]  # fmt: skip
        if not shaped:
            return set()
        texts = [text for _, parts in shaped for text in (parts.head, parts.target)]
        similarity = (self._index.passage_vectors(texts) @ vector).reshape(len(shaped), 2)
        return {
            hit.item.sku
            for (hit, _), (to_head, to_target) in zip(shaped, similarity.tolist(), strict=True)
            if to_target - to_head > ACCESSORY_MARGIN
        }

    def served_products(self, query: str, hits: Sequence[SearchHit], candidates: np.ndarray) -> set[str]:
        """When the query itself asks for something *for* a product ("Laptophülle für MacBook Air 13"), the
        candidates (``candidates``: their vectors, row per hit) closer to what it is for than to what it asks
        for: they rank below, like accessories do."""
        parts = self.shapes().parts(query)  # "X for Y" where the catalog sells Y ("blender for smoothies" is not)
        if parts is None:
            return set()
        head, target = self._index.query_vectors([parts.head, parts.target])
        to_head, to_target = candidates @ head, candidates @ target
        return {hit.item.sku for hit, h, t in zip(hits, to_head.tolist(), to_target.tolist(), strict=True)
                if t - h > ACCESSORY_MARGIN}  # fmt: skip
