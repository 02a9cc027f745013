"""UI strings: one JSON catalog per language in this folder, plus Babel's CLDR data for names and prices.

Why not Flask-Babel/gettext: the shop has a few dozen short strings. JSON catalogs
need no compile step (.po → .mo) in the build, are diffable, and a test checks
that every language has every key. Babel still does what needs locale data:
language names in the reader's language and currency formatting.

The shopper's language: ``?lang=`` (remembered in a cookie), else the cookie,
else the browser's Accept-Language, else English.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from babel import Locale
from flask import Flask, Response, current_app, g, request

from shoprank.languages import language_name
from webapp.context import app_services
from webapp.presenters import display_price

CATALOG_DIR = Path(__file__).resolve().parent
DEFAULT_LANGUAGE = "en"
UI_LANGUAGES = ("en", "zh", "es", "ar", "ru", "ja", "de", "fr")
RTL_LANGUAGES = frozenset({"ar", "he", "fa", "ur"})
LANG_COOKIE = "sr_lang"
#: CLDR locale used for number/currency formatting per UI language.
_FORMAT_LOCALES = {"en": "en_US", "zh": "zh_Hans_CN", "es": "es_ES", "ar": "ar", "ru": "ru_RU", "ja": "ja_JP"}


@cache
def catalog(language: str) -> dict[str, Any]:
    with (CATALOG_DIR / f"{language}.json").open(encoding="utf-8") as handle:
        messages: dict[str, Any] = json.load(handle)
        return messages


def translate(ui_language: str, key: str, /, **values: Any) -> str:
    text = catalog(ui_language).get(key) or catalog(DEFAULT_LANGUAGE).get(key) or key
    return text.format(**values) if values else text


@cache
def native_name(code: str) -> str:
    name = Locale.parse(code).get_display_name(code) or code
    return name[:1].upper() + name[1:]


def format_locale(language: str) -> str:
    return _FORMAT_LOCALES.get(language, language)


def ui_language() -> str:
    if "ui_language" in g:
        chosen: str = g.ui_language
        return chosen
    requested = request.args.get("lang", "")
    if requested in UI_LANGUAGES:
        language = requested
        if request.cookies.get(LANG_COOKIE) != requested:
            g.set_lang_cookie = requested
    elif request.cookies.get(LANG_COOKIE) in UI_LANGUAGES:
        language = request.cookies[LANG_COOKIE]
    else:
        language = request.accept_languages.best_match(UI_LANGUAGES) or DEFAULT_LANGUAGE
    g.ui_language = language
    return language


def category_label(slug: str, language: str, catalog_names: Mapping[str, Mapping[str, str]] | None = None) -> str:
    """The merchant's own display name for ``language`` when the catalog has one (``catalog_names``: slug →
    language → name), else this folder's translation table, else the English table, else the slug in words."""
    from_catalog = (catalog_names or {}).get(slug) or {}
    return (
        from_catalog.get(language)
        or (catalog(language).get("category_names") or {}).get(slug)
        or from_catalog.get(DEFAULT_LANGUAGE)
        or (catalog(DEFAULT_LANGUAGE).get("category_names") or {}).get(slug)
        or slug.replace("-", " ").replace("_", " ").capitalize()
    )


def attribute_label(key: str, language: str) -> str:
    """A product attribute's name (``noise_cancelling`` → "Cancelación de ruido"); unknown keys in words."""
    return (
        (catalog(language).get("attribute_names") or {}).get(key)
        or (catalog(DEFAULT_LANGUAGE).get("attribute_names") or {}).get(key)
        or key.replace("_", " ").capitalize()
    )


def catalog_category_names() -> Mapping[str, Mapping[str, str]]:
    """Category display names the catalog carries (slug → language → name, from merchant feeds); none otherwise."""
    try:
        return app_services().index.category_names()
    except Exception:  # the error page renders without a catalog
        return {}


def init_app(app: Flask) -> None:
    @app.context_processor
    def i18n_context() -> dict[str, Any]:
        language = ui_language()

        def t(key: str, /, **values: Any) -> str:
            return translate(language, key, **values)

        def lang_url(code: str) -> str:
            """This page in another UI language (other query parameters kept)."""
            args = request.args.to_dict()
            args["lang"] = code
            return request.path + "?" + urlencode(args)

        return {
            "t": t,
            "ui_lang": language,
            "ui_dir": "rtl" if language in RTL_LANGUAGES else "ltr",
            "ui_languages": [(code, native_name(code)) for code in UI_LANGUAGES],
            "price": lambda amount, currency: display_price(amount, currency, format_locale(language)),
            "language_name": lambda code: language_name(code, language),
            "category_label": lambda slug: category_label(slug, language, catalog_category_names()),
            "attribute_label": lambda key: attribute_label(key, language),
            "ui_strings": catalog(language),
            "lang_url": lang_url,
        }

    @app.after_request
    def remember_language(response: Response) -> Response:
        chosen = g.get("set_lang_cookie")
        if chosen:
            response.set_cookie(
                LANG_COOKIE,
                chosen,
                max_age=365 * 24 * 3600,
                httponly=True,  # only the server reads it
                samesite="Lax",
                secure=request.is_secure or bool(current_app.config.get("SESSION_COOKIE_SECURE")),  # as the session
            )
        return response
