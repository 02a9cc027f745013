"""Text clean-up shared by passage formatting, query handling and the cache key."""

from __future__ import annotations

import html
import re
import unicodedata
from html.parser import HTMLParser
from typing import Any

_BLOCK_TAGS = frozenset(
    [
        "p",
        "div",
        "br",
        "li",
        "ul",
        "ol",
        "tr",
        "td",
        "th",
        "table",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "section",
        "article",
        "header",
        "footer",
        "dd",
        "dt",
    ]
)
_SKIPPED_TAGS = frozenset({"script", "style", "noscript", "template"})
_WHITESPACE = re.compile(r"\s+")
#: Unicode categories Cc (controls, except tab/newline/CR) and Cs (lone surrogates), as one character class:
#: a regex pass instead of a ``unicodedata.category`` call per character (the slowest part of passage formatting).
_CONTROL_OR_SURROGATE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


_BLOCK_BREAK = "\x1e"  # record separator: marks where a block element ended
_SENTENCE_END = tuple(".!?;:。！？；：…")


class _TextExtractor(HTMLParser):
    """Collects visible text; block-level boundaries are marked so list items don't fuse."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip_depth = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in _SKIPPED_TAGS:
            self._skip_depth += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append(_BLOCK_BREAK)

    def handle_startendtag(self, tag: str, attrs: Any) -> None:
        if tag in _BLOCK_TAGS:
            self.parts.append(_BLOCK_BREAK)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_TAGS:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append(_BLOCK_BREAK)

    def handle_data(self, data: str) -> None:
        if not self._skip_depth:
            self.parts.append(data)

    def text(self) -> str:
        """Blocks joined as sentences: ``<li>30h battery</li><li>USB-C</li>`` → ``30h battery. USB-C``."""
        blocks = [" ".join(block.split()) for block in "".join(self.parts).split(_BLOCK_BREAK)]
        blocks = [block for block in blocks if block]
        return " ".join(
            block if i == len(blocks) - 1 or block.endswith(_SENTENCE_END) else block + "."
            for i, block in enumerate(blocks)
        )


def clean_text(value: str | None) -> str:
    """Visible text of a possibly-HTML string, NFC-normalized, whitespace collapsed.

    Case and punctuation are kept: brand names and model numbers ("iPhone 15 Pro",
    "WH-1000XM5") are signals the cross-encoder uses.
    """
    if not value:
        return ""
    text = value
    if "<" in text or "&" in text:
        extractor = _TextExtractor()
        extractor.feed(text)
        extractor.close()
        text = html.unescape(extractor.text())
    text = unicodedata.normalize("NFC", text)
    # Drop control characters and lone surrogates; keep format characters (Cf: ZWJ, RLM),
    # which shape Arabic and Indic text.
    text = _CONTROL_OR_SURROGATE.sub("", text)
    return _WHITESPACE.sub(" ", text).strip()


def trim_at_word_boundary(text: str, max_chars: int) -> str:
    """Cut ``text`` to at most ``max_chars`` characters, preferring a word boundary.

    Scripts written without spaces (Chinese, Japanese, Thai) have no boundary to
    prefer; those are cut at the character budget.
    """
    if max_chars <= 0:
        return ""
    if len(text) <= max_chars:
        return text
    cut = text[: max_chars - 1]  # keep one char for the ellipsis
    space = cut.rfind(" ")
    if space >= max_chars * 0.6:
        cut = cut[:space]
    return cut.rstrip(" ,;:-") + "…"


def normalize_query(query: str) -> str:
    """The query the model sees and the cache keys on: NFC, whitespace collapsed, case kept.

    Case is not folded: "Apple" the brand and "apple" the fruit score differently,
    so folding would make the cache return the wrong one's score.
    """
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFC", query)).strip()
