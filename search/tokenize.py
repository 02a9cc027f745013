"""Lexical tokens for BM25 across scripts, without a dictionary per language.

- Chinese, Japanese and Korean are written without spaces: runs of those scripts
  become overlapping character bigrams (Lucene's CJKBigramFilter approach; a lone
  character stays a unigram), so "降噪耳机" matches "无线降噪耳机".
- Arabic gets the usual light normalisation: diacritics and tatweel removed, alef
  forms unified, alef maqsura → ya, taa marbuta → ha, and a leading definite
  article "ال" stripped from longer words.
- Cyrillic: ё → е. Latin: accents folded ("café" = "cafe").
- Everything is NFKC-normalised and case-folded (full-width letters become ASCII).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_CJK = "\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\u1100-\u11ff"
_TOKEN = re.compile(rf"([{_CJK}]+)|([^\W_]+)")
_CJK_RUN = re.compile(rf"^[{_CJK}]+$")
_ARABIC_DIACRITICS = re.compile("[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed\u0640]")
_ARABIC_LETTERS = str.maketrans({"أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "ى": "ي", "ة": "ه", "ؤ": "و", "ئ": "ي"})
_IS_ARABIC = re.compile("[\u0600-\u06ff]")


def _fold_latin(word: str) -> str:
    if word.isascii():
        return word
    decomposed = unicodedata.normalize("NFKD", word)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _arabic(word: str) -> str:
    # (Diacritics are already gone.) The article is stripped before alef forms are unified:
    # "إلغاء" (cancellation) starts with alef-hamza, not the article, and must keep its first letters.
    if word.startswith("ال") and len(word) > 4:
        word = word[2:]
    elif word.startswith(("وال", "بال", "كال", "فال")) and len(word) > 5:
        word = word[3:]
    return word.translate(_ARABIC_LETTERS)


def _cjk_grams(run: str) -> list[str]:
    if len(run) == 1:
        return [run]
    return [run[i : i + 2] for i in range(len(run) - 1)]


def tokenize(text: str) -> list[str]:
    """Index/query tokens for ``text`` in any script."""
    return [token for token, _ in tokenize_forms(text)]


def tokenize_forms(text: str) -> list[tuple[str, str]]:
    """``(token, written form)`` pairs: the written form is the case-folded word before accent folding
    ("kopfhorer", "kopfhörer"), what "did you mean" shows for a vocabulary word."""
    text = unicodedata.normalize("NFKC", text or "").casefold().replace("ё", "е")
    # Arabic diacritics are combining marks, not word characters: removed first, or they would split words.
    text = _ARABIC_DIACRITICS.sub("", text)
    tokens: list[tuple[str, str]] = []
    for cjk, word in _TOKEN.findall(text):
        if cjk:
            tokens.extend((gram, gram) for gram in _cjk_grams(cjk))
        else:
            tokens.extend(_word_forms(word))
    return tokens


@lru_cache(maxsize=1 << 16)  # words repeat across listings: an index build folds each common word once
def _word_forms(word: str) -> tuple[tuple[str, str], ...]:
    """The (token, written form) pairs of one non-CJK word: none, for an Arabic word that folds to nothing."""
    if _IS_ARABIC.search(word):
        folded = _arabic(word)
        return ((folded, folded),) if folded else ()
    return ((_fold_latin(word), word),)
