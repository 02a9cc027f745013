"""Price limits written in a query ("under $100", "menos de 50 euros", "1万円以下") → a price filter.

The words of each language live in one table (``price_patterns``); this module only compiles and applies it.
The limit is cut out of the text, so retrieval and the reranker see "zapatillas para correr" instead of matching
"50" against "50 páginas", and the page applies it as a filter on converted prices.

A number counts as a price only inside a limit phrase ("menos de", "以下", "between … and …"), and never when
a unit follows it ("16-50 mm", "über 50 Seiten"); the loose forms (bare ranges, "ab", "от", "from") also need
a written currency. A limit without a currency is in the shopper's currency.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import cache

from search.filters import PriceBound
from search.price_patterns import LANGUAGES, MULTIPLIERS, SYMBOLS, UNITS, PricePattern

#: Arabic-Indic, Persian and full-width digits → ASCII, one character for one (match positions stay valid).
_DIGITS = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹０１２３４５６７８９", "0123456789" * 3)
_NUMBER = r"\d{1,3}(?:[ \u00a0\u202f.,’']\d{3})+(?:[.,]\d{1,2})?|\d+(?:[.,]\d{1,2})?"
_MULTIPLIER = "|".join(re.escape(m) for m in MULTIPLIERS)
#: Letters of scripts written with spaces; a limit phrase must not start or end inside such a word. CJK text has
#: no spaces, so "500元以下的耳机" is a limit followed by more words.
_SPACED_LETTER = "A-Za-z\u00c0-\u024f\u0370-\u03ff\u0400-\u04ff\u0600-\u06ff"


@dataclass(frozen=True, slots=True)
class PriceConstraint:
    """A limit recognised in the query: the bounds, and the exact words that said it (for the removable chip)."""

    min_price: PriceBound | None
    max_price: PriceBound | None
    text: str
    language: str


@dataclass(frozen=True, slots=True)
class ParsedQuery:
    """The query as retrieval should see it (limit removed) and the limit, if any."""

    text: str
    original: str
    price: PriceConstraint | None


def _alternation(words: Iterable[str]) -> str:
    return "|".join(re.escape(w) for w in sorted(set(words), key=len, reverse=True))


def _amount(slot: str, currencies: str) -> str:
    """An amount with an optional currency before or after it; groups are suffixed with the slot name."""
    return (
        rf"(?:(?P<pre_{slot}>{currencies})\s*)?"
        rf"(?<![\d{_SPACED_LETTER}.,])(?P<num_{slot}>{_NUMBER})(?P<mul_{slot}>{_MULTIPLIER})?(?!\d)"
        rf"(?:\s*(?P<post_{slot}>{currencies}))?"
    )


@dataclass(frozen=True, slots=True)
class _Compiled:
    kind: str
    regex: re.Pattern[str]
    needs_currency: bool


@cache
def _compiled(language: str) -> tuple[tuple[_Compiled, ...], dict[str, str]]:
    spec = LANGUAGES[language]
    currencies = {**SYMBOLS, **{k.casefold(): v for k, v in spec["currencies"].items()}}
    words = _alternation(currencies)
    units = _alternation(UNITS)
    # A unit straight after the number (or after the range's end) makes it a measurement; a letter glued to a
    # Latin/Cyrillic currency word ("euros" is fine, "eurostar" is not) ends the word first.
    unit_guard = rf"(?!\s*(?:{units})(?![{_SPACED_LETTER}]))"
    compiled = []
    pattern: PricePattern
    for pattern in spec["patterns"]:
        source = pattern.regex.format(a=_amount("a", words), b=_amount("b", words))
        regex = re.compile(rf"(?<![{_SPACED_LETTER}])(?:{source}){unit_guard}(?![{_SPACED_LETTER}\d])", re.IGNORECASE)
        compiled.append(_Compiled(pattern.kind, regex, pattern.needs_currency))
    return tuple(compiled), currencies


def parse_amount(raw: str, multiplier: str | None = None) -> Decimal | None:
    """``"1.299,99"`` / ``"1,299.99"`` / ``"3 000"`` / ``"49,99"`` → Decimal; a lone separator before three digits
    groups thousands ("1.500" is 1500), before one or two it is the decimal mark."""
    text = re.sub(r"[ \u00a0\u202f’']", "", raw)
    if "," in text and "." in text:
        decimal_mark = "," if text.rfind(",") > text.rfind(".") else "."
        text = text.replace("." if decimal_mark == "," else ",", "").replace(decimal_mark, ".")
    else:
        for mark in ",.":
            if mark in text:
                head, _, tail = text.rpartition(mark)
                text = text.replace(mark, "") if text.count(mark) > 1 or len(tail) == 3 else f"{head}.{tail}"
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    if multiplier:
        value *= MULTIPLIERS.get(multiplier) or MULTIPLIERS[multiplier.lower()]
    return value


def _languages_to_try(language: str | None) -> list[str]:
    first = [language] if language in LANGUAGES else []
    return first + [code for code in LANGUAGES if code != language]


def _bound(match: re.Match[str], slot: str, currencies: dict[str, str], default: str) -> tuple[PriceBound, bool]:
    written = match.group(f"pre_{slot}") or match.group(f"post_{slot}")
    amount = parse_amount(match.group(f"num_{slot}"), match.group(f"mul_{slot}"))
    assert amount is not None  # the regex only admits parseable numbers
    currency = currencies[written.casefold()] if written else default
    return PriceBound(amount, currency), written is not None


def _constraint(
    match: re.Match[str], pattern: _Compiled, currencies: dict[str, str], default: str
) -> tuple[PriceBound | None, PriceBound | None] | None:
    """The bounds a match says, or None when a loose form has no written currency."""
    if pattern.kind == "between":
        low, low_written = _bound(match, "a", currencies, default)
        high, high_written = _bound(match, "b", currencies, default)
        # "20-50 €": the one written currency is both ends'
        if low_written and not high_written:
            high = PriceBound(high.amount, low.currency)
        elif high_written and not low_written:
            low = PriceBound(low.amount, high.currency)
        if pattern.needs_currency and not (low_written or high_written):
            return None
        if low.amount > high.amount:
            low, high = high, low
        return low, high
    bound, written = _bound(match, "a", currencies, default)
    if pattern.needs_currency and not written:
        return None
    return (None, bound) if pattern.kind == "max" else (bound, None)


def warm() -> None:
    """Compile every language's price patterns now (about 60 large regexes: seconds on a busy machine), so a
    start pays for them before it listens instead of its first shopper's search."""
    for language in LANGUAGES:
        _compiled(language)


def parse_query(query: str, *, language: str | None, currency: str) -> ParsedQuery:
    """Find at most one lower and one upper price limit in ``query`` and cut them out of the text.

    ``language`` (the query's or the page's) decides which table is tried first; the others follow, so a
    Spanish query typed on the English page still works. ``currency`` is the shopper's, for limits without one.
    """
    digits = query.translate(_DIGITS)
    low: PriceBound | None = None
    high: PriceBound | None = None
    spans: list[tuple[int, int]] = []
    found_in = ""
    for code in _languages_to_try(language):
        patterns, currencies = _compiled(code)
        for pattern in patterns:
            for match in pattern.regex.finditer(digits):
                if any(match.start() < end and start < match.end() for start, end in spans):
                    continue
                bounds = _constraint(match, pattern, currencies, currency)
                if bounds is None:
                    continue
                new_low, new_high = bounds
                if (new_low and low) or (new_high and high):
                    continue  # one limit per side; a second "under" is left in the text
                low, high = low or new_low, high or new_high
                spans.append(match.span())
                found_in = found_in or code
        if spans:
            break  # one language's reading of the query; mixing tables invites false matches
    if not spans:
        return ParsedQuery(query, query, None)
    spans.sort()
    kept, said, cursor = [], [], 0
    for start, end in spans:
        kept.append(query[cursor:start])
        said.append(query[start:end].strip())
        cursor = end
    kept.append(query[cursor:])
    text = re.sub(r"\s+", " ", " ".join(kept)).strip(" ,.;:!?¿¡、，。")
    return ParsedQuery(text, query, PriceConstraint(low, high, " … ".join(said), found_in))
