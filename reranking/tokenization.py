"""(query, passage) → model input ids with FlagReranker's truncation rules.

FlagReranker tokenizes the query alone (capped at 3/4 of ``max_length``), the
passage alone (capped at ``max_length``), then joins them with the model's special
tokens, truncating only the passage to fit. Transformers 5 removed the id-level
``prepare_for_model`` that did the joining, and decoding ids back to text to
re-tokenize is both slow and lossy, so the joining template (``<s> A </s></s> B
</s>`` for XLM-R, ``[CLS] A [SEP] B [SEP]`` for BERT) is read off the tokenizer
once by encoding a probe pair, and applied to ids directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from reranking.passage_budget import fit_to_budget

_PROBE_QUERY = "probe query"
_PROBE_PASSAGE = "probe passage text"


@dataclass(frozen=True, slots=True)
class EncodedPair:
    input_ids: list[int]
    token_type_ids: list[int] | None


@dataclass(frozen=True, slots=True)
class _PairTemplate:
    prefix: list[int]
    middle: list[int]
    suffix: list[int]
    #: token type of (prefix+query+middle, passage+suffix); None when the model has none.
    type_ids: tuple[int, int] | None

    @property
    def special_count(self) -> int:
        return len(self.prefix) + len(self.middle) + len(self.suffix)


def _find(haystack: Sequence[int], needle: Sequence[int], start: int = 0) -> int:
    for i in range(start, len(haystack) - len(needle) + 1):
        if list(haystack[i : i + len(needle)]) == list(needle):
            return i
    return -1


def _read_template(tokenizer: Any) -> _PairTemplate:
    query_ids = tokenizer(_PROBE_QUERY, add_special_tokens=False)["input_ids"]
    passage_ids = tokenizer(_PROBE_PASSAGE, add_special_tokens=False)["input_ids"]
    joined = tokenizer(_PROBE_QUERY, _PROBE_PASSAGE, return_token_type_ids=True)
    ids = list(joined["input_ids"])
    q_at = _find(ids, query_ids)
    p_at = _find(ids, passage_ids, q_at + len(query_ids)) if q_at >= 0 else -1
    if q_at < 0 or p_at < 0:
        raise ValueError("tokenizer joins pairs in a way this encoder cannot reproduce")
    type_ids = None
    token_types = joined.get("token_type_ids")
    if token_types is not None and any(token_types):
        type_ids = (int(token_types[q_at]), int(token_types[p_at]))
    return _PairTemplate(
        prefix=ids[:q_at],
        middle=ids[q_at + len(query_ids) : p_at],
        suffix=ids[p_at + len(passage_ids) :],
        type_ids=type_ids,
    )


class PairEncoder:
    """Turns pairs into id lists no longer than ``max_length``; the query is capped first."""

    def __init__(self, tokenizer: Any, max_length: int = 512, query_max_length: int | None = None) -> None:
        if max_length < 16:
            raise ValueError("max_length must be at least 16 tokens")
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.query_max_length = query_max_length or max_length * 3 // 4
        self._template = _read_template(tokenizer)
        self.pad_token_id: int = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.uses_token_types = self._template.type_ids is not None

    def encode(self, pairs: Sequence[tuple[str, str]], passage_tokens: int | None = None) -> list[EncodedPair]:
        """Ids per pair; ``passage_tokens`` caps each passage (description cut first, ``reranking.passage_budget``)."""
        if not pairs:
            return []
        queries = [q for q, _ in pairs]
        passages = [p for _, p in pairs]
        query_ids = self._tokenize(queries, self.query_max_length)
        if passage_tokens is not None and passage_tokens < self.max_length:
            passage_ids = self._tokenize_within(passages, passage_tokens)
        else:
            passage_ids = self._tokenize(passages, self.max_length)
        t = self._template
        encoded = []
        for q, p in zip(query_ids, passage_ids, strict=True):
            room = self.max_length - t.special_count - len(q)
            p = p[: max(0, room)]
            ids = t.prefix + q + t.middle + p + t.suffix
            types = None
            if t.type_ids is not None:
                first = len(t.prefix) + len(q) + len(t.middle)
                types = [t.type_ids[0]] * first + [t.type_ids[1]] * (len(ids) - first)
            encoded.append(EncodedPair(ids, types))
        return encoded

    def _tokenize_within(self, texts: list[str], budget: int) -> list[list[int]]:
        """Whole passages with their character offsets, then each fitted to ``budget`` ids."""
        unique = list(dict.fromkeys(texts))
        encoded = self.tokenizer(unique, add_special_tokens=False, return_offsets_mapping=True)
        by_text = {
            text: fit_to_budget(text, ids, offsets, budget)
            for text, ids, offsets in zip(unique, encoded["input_ids"], encoded["offset_mapping"], strict=True)
        }
        return [by_text[text] for text in texts]

    def _tokenize(self, texts: list[str], max_length: int) -> list[list[int]]:
        unique = list(dict.fromkeys(texts))  # one search = one query repeated 100 times
        ids = self.tokenizer(unique, add_special_tokens=False, truncation=True, max_length=max_length)["input_ids"]
        by_text = dict(zip(unique, ids, strict=True))
        return [by_text[text] for text in texts]
