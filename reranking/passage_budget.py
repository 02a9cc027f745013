"""A token budget for product passages: the description is cut first, the title last.

Why: a passage (``reranking.passages``) is ``Title: …`` (brand included), ``Description: …`` (the
key attributes appended in parentheses) and ``Price: …``. Feed descriptions run to thousands of
characters, and a cross-encoder's cost grows with every token, while what decides relevance for
a shop query sits mostly in the title, brand and attributes. Cutting from the end of the text
(what a tokenizer's ``max_length`` does) would drop the attributes and the price before a word of
the description. This keeps everything but the description body, then as much of the body as
the budget leaves; only when the rest alone is over budget is the passage cut from its end, which
reaches the title last.

It works on token ids with the tokenizer's character offsets, so it is exact (no re-tokenizing a
cut text), and it applies to any text: one without a ``Description:`` line is cut from its end.
"""

from __future__ import annotations

from collections.abc import Sequence

DESCRIPTION_PREFIX = "Description: "
#: The smallest budget a deployment or variant may set: a title and a few attribute tokens.
MIN_PASSAGE_TOKENS = 16
#: The largest: the model's window (XLM-R reads 512 tokens, query included).
MAX_PASSAGE_TOKENS = 512


def description_body(passage: str) -> tuple[int, int] | None:
    """Character span of the description's own text (attributes excluded), or None when there is none."""
    if passage.startswith(DESCRIPTION_PREFIX):
        line = 0
    else:
        line = passage.find("\n" + DESCRIPTION_PREFIX)
        if line < 0:
            return None
        line += 1
    start = line + len(DESCRIPTION_PREFIX)
    end = passage.find("\n", start)
    end = len(passage) if end < 0 else end
    if passage[start:end].endswith(")"):  # "text (colour: black; size: M)": the attributes are kept
        attributes = passage.rfind(" (", start, end)
        if attributes >= 0:
            end = attributes
        elif passage[start] == "(":  # attributes only, no description text
            end = start
    return (start, end) if end > start else None


def fit_to_budget(passage: str, ids: Sequence[int], offsets: Sequence[tuple[int, int]], budget: int) -> list[int]:
    """The ids of ``passage`` (tokenized without special tokens, ``offsets`` per id) within ``budget`` tokens."""
    if len(ids) <= budget:
        return list(ids)
    span = description_body(passage)
    if span is not None:
        start, end = span
        body = [i for i, (a, _) in enumerate(offsets) if start <= a < end]
        keep_body = len(body) - (len(ids) - budget)
        if keep_body >= 0:
            dropped = set(body[keep_body:])
            return [token for i, token in enumerate(ids) if i not in dropped]
        body_set = set(body)
        ids = [token for i, token in enumerate(ids) if i not in body_set]
    return list(ids[:budget])
