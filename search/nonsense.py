"""Is a query made of words at all? "xyzzyqwerty", "qxvbzt wrpl", "ывфщз кцуй" are not, in any language.

Similarity models always find a nearest product, and a small bi-encoder scores letter salad about as high as a
weak cross-lingual match, so "does anything score high enough" cannot tell nonsense from a real query in another
language (on the demo catalog the two ranges overlap). Whether the words exist can: ``wordfreq`` (word
frequencies from large corpora in ~40 languages, a maintained package that ships its data) knows "Kopfhörer",
"لابتوب", "zapatillas", "bycicle" (a common misspelling) and brand names such as "sony" or "lego", and knows none
of the strings above. A query counts as nonsense only when none of its letter tokens is a word of any of those
languages; model codes and numbers ("WH-1000XM5", "1000") are judged by the catalog's own vocabulary instead
(the lexical first stage), and Chinese, Japanese and Korean text is never called nonsense here (wordfreq needs
extra segmenters for those scripts, and random CJK characters are rare as typed queries).
"""

from __future__ import annotations

import functools
import re
import unicodedata

_LETTERS = re.compile(r"[^\W\d_]+")
_CJK = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
#: Languages whose word lists need a segmenter we do not install; their scripts are handled above.
_SEGMENTED = frozenset({"zh", "ja", "ko"})


@functools.lru_cache(maxsize=1)
def _languages() -> tuple[str, ...]:
    import wordfreq

    return tuple(sorted(set(wordfreq.available_languages()) - _SEGMENTED))


@functools.lru_cache(maxsize=65_536)
def is_word(token: str) -> bool:
    """Whether ``token`` (lower-case, as ``tokenize`` gives it) is a word in any wordfreq language."""
    import wordfreq

    return any(wordfreq.word_frequency(token, language) > 0 for language in _languages())


def _is_compound(token: str) -> bool:
    """Two words run together ("laufuhr", "cykelhjälm", "kaffeemühle"), with an optional linking letter."""
    for cut in range(3, len(token) - 2):
        left, right = token[:cut], token[cut:]
        if is_word(right) and (is_word(left) or (left[-1] in "sen" and len(left) > 3 and is_word(left[:-1]))):
            return True
    return False


def has_words(text: str) -> bool:
    """False only for text with letter tokens none of which is a word (see the module docstring).

    Tokens keep their accents here ("kaffeemühle", not the index's folded "kaffeemuhle": wordfreq knows words
    as they are written); compounds of two words count as words.
    """
    if _CJK.search(text or ""):
        return True
    folded = unicodedata.normalize("NFKC", text or "").casefold()
    letters = [t for t in _LETTERS.findall(folded) if not any(ch.isdigit() for ch in t)]
    if not letters:
        return True  # digits and codes only: the catalog's vocabulary decides
    return any(is_word(t) or (len(t) >= 7 and _is_compound(t)) for t in letters)
