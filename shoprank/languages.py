"""Language codes: which are real (Babel's CLDR data decides), and how to name them for a reader."""

from __future__ import annotations

import re
from functools import lru_cache

from babel import Locale, UnknownLocaleError

_CODE = re.compile(r"^[a-z]{2,3}$")


@lru_cache(maxsize=512)
def is_known_language(code: str) -> bool:
    """ISO 639 code CLDR knows (``en``, ``zh``, ``ar``…); region and script subtags are not accepted."""
    if not isinstance(code, str) or not _CODE.match(code):
        return False
    try:
        Locale.parse(code)
    except (UnknownLocaleError, ValueError):
        return False
    return True


@lru_cache(maxsize=4096)
def language_name(code: str, in_locale: str = "en") -> str:
    """``language_name("de", "ja") == "ドイツ語"``; unknown codes come back as given."""
    try:
        return Locale.parse(in_locale).languages.get(code) or code
    except (UnknownLocaleError, ValueError):
        return code
