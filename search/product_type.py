"""Accessory or the product itself: the *head* of a title versus what it is *for*.

"Replacement ear pads for Sony WH-1000XM5", "Ersatzakku für BOSCH GSR 18V", "Funda para iPhone 15",
"WH-1000XM5用 イヤーパッド", "iPhone 15 için kılıf": a listing that serves another product names that product
after (or, in Chinese, Japanese, Korean and Turkish, before) a *compatibility connector*. The part that is not
the served product is the listing's head: what it actually is.

What is learned from the catalog, and what is not:

- The connectors are a closed grammatical class (the words for "for", "compatible with" in the languages the
  shop sells in), not a list of product words: ``CONNECTORS`` names them once. No word like "case" or "pads"
  appears anywhere.
- A title is *accessory-shaped* only when the part after its connector names something the catalog itself
  sells: it shares a distinctive token (a brand, a model code, a product word of another listing) with at
  least one other product's title. "Zapatillas para correr" therefore stays a running shoe unless the catalog
  lists products called "correr"; "Funda para iPhone 15" is accessory-shaped in a shop that sells iPhones.
- Whether an accessory-shaped listing is what the *query* wants is decided per query with the encoder: the
  query's similarity to the listing's head against its similarity to the served product ("ear pads" wants the
  head, "无线降噪耳机" wants the headphones the pads are for).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from search.tokenize import tokenize

#: Connectors after which the served product is named (head first: "pads for X").
CONNECTORS_BEFORE_TARGET: tuple[str, ...] = (
    "compatible with", "suitable for", "fits", "for",  # en
    "passend für", "kompatibel mit", "geeignet für", "für",  # de
    "compatible avec", "pour",  # fr
    "compatible con", "compatível com", "para",  # es, pt
    "compatibile con", "per",  # it
    "geschikt voor", "voor",  # nl
    "kompatibel med", "passar till", "för", "till",  # sv
    "kompatybilny z", "do",  # pl
    "совместим с", "совместимый с", "для",  # ru
    "متوافق مع", "مناسب ل",  # ar
    "适用于", "适配",  # zh (head first)
)  # fmt: skip
#: Connectors that follow the served product (the head comes after: "X用 パッド", "X için kılıf").
CONNECTORS_AFTER_TARGET: tuple[str, ...] = ("専用", "対応", "专用", "用", "용", "için", "uyumlu")
#: A target token in more than this share of the catalog's titles names nothing in particular ("new", "set").
DISTINCTIVE_SHARE = 0.25


@dataclass(frozen=True, slots=True)
class TitleParts:
    head: str  # what the listing is
    target: str  # the product it is for


#: Characters that make 用 part of a word meaning "use" (家用 household, 商用 commercial, 通用 universal, 日用
#: daily, 兼用 dual-use, 業務用 professional, 家庭用 home), not "for X".
_USE_COMPOUNDS = "家商通日兼務庭"


def _pattern(words: Sequence[str], cjk_suffix: bool) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    if cjk_suffix:  # attached to the target in CJK ("X用"), a separate word in Turkish ("X için")
        return re.compile(rf"(?<![{_USE_COMPOUNDS}])(?P<conn>{alternatives})(?=\s|[^\W\d_]|$)", re.IGNORECASE)
    return re.compile(rf"(?<![^\W_])(?P<conn>{alternatives})(?![^\W_])", re.IGNORECASE)


_BEFORE = _pattern(CONNECTORS_BEFORE_TARGET, cjk_suffix=False)
_AFTER = _pattern(CONNECTORS_AFTER_TARGET, cjk_suffix=True)


def split_title(title: str) -> TitleParts | None:
    """The head and the served product of a title with a compatibility connector; None without one.

    The first connector with text on both sides decides ("Case for iPhone 15 for kids" → head "Case").
    """
    text = unicodedata.normalize("NFKC", title or "").strip()
    candidates: list[tuple[int, TitleParts]] = []
    for match in _BEFORE.finditer(text):
        head, target = text[: match.start()].strip(" ,-–|/"), text[match.end() :].strip(" ,-–|/")
        if _has_word(head) and _has_word(target):
            candidates.append((match.start(), TitleParts(head, target)))
            break
    for match in _AFTER.finditer(text):
        target, head = text[: match.start()].strip(" ,-–|/"), text[match.end() :].strip(" ,-–|/")
        if _has_word(head) and _has_word(target):
            candidates.append((match.start(), TitleParts(head, target)))
            break
    if not candidates:
        return None
    return min(candidates, key=lambda c: c[0])[1]


def _has_word(text: str) -> bool:
    return any(ch.isalpha() for ch in text)


class AccessoryShapes:
    """Which titles are accessory-shaped (see the module docstring), judged against a sample of the catalog's
    titles: a target token is distinctive when it occurs in 2 or more sampled titles (this one and another) and in
    at most ``DISTINCTIVE_SHARE`` of them."""

    def __init__(self, titles: Iterable[str]) -> None:
        document_frequency: Counter[str] = Counter()
        count = 0
        for title in titles:
            document_frequency.update(set(tokenize(title)))
            count += 1
        self._df = document_frequency
        self._limit = max(2, int(DISTINCTIVE_SHARE * count))
        self._count = max(count, 1)
        self._cache: dict[str, TitleParts | None] = {}

    def share(self, token: str) -> float:
        """The share of the sampled titles holding ``token``."""
        return self._df[token] / self._count

    def parts(self, title: str) -> TitleParts | None:
        """The title's head and target when it is accessory-shaped, else None."""
        if title in self._cache:
            return self._cache[title]
        parts = split_title(title)
        if parts is not None:
            targets = {t for t in tokenize(parts.target) if len(t) > 1}
            if not any(2 <= self._df[t] <= self._limit for t in targets):
                parts = None
        if len(self._cache) < 100_000:
            self._cache[title] = parts
        return parts
