"""Shopper pages: home, search results, category, product, generated image placeholders."""

from __future__ import annotations

import hashlib
import re
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, abort, g, render_template, request, url_for
from markupsafe import escape
from werkzeug.datastructures import MultiDict

from catalog import browse
from search.index import item_from_row
from search.service import SearchInputError
from search.shopper_currency import shopper_currency
from webapp.context import app_services
from webapp.errors import ApiError
from webapp.http import current_request_id, ensure_visitor_id
from webapp.i18n import format_locale, translate, ui_language
from webapp.impressions import listing_kind, signed_id, signed_page
from webapp.presenters import converted_price
from webapp.search_params import parse_search_params

bp = Blueprint("shop", __name__)

PAGE_SIZE = 24
MAX_PAGE_SIZE = 96
CURRENCY_COOKIE = "sr_cur"
#: Offered in the currency switcher (any currency with a rate also works as ``?currency=``).
SHOP_CURRENCIES = ("USD", "EUR", "GBP", "CNY", "JPY", "KRW", "RUB", "SAR", "AED", "BRL")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_IMPRESSION = re.compile(r"^[A-Za-z0-9-]{8,64}$")
#: Orders from this amount, in the shop's currency (SHOPRANK_REPORTING_CURRENCY), ship free (the banner and help).
FREE_DELIVERY_FROM = Decimal(50)
DEALS_LIMIT = 48


def _categories() -> list[tuple[str, int]]:
    return app_services().index.category_counts()


@bp.app_context_processor
def navigation() -> dict[str, Any]:
    """Every page's category bar (HTML error pages included)."""
    try:
        return {"categories": _categories()}
    except Exception:  # the error page must render even when the catalog cannot load
        return {"categories": []}


def shopper_market() -> str | None:
    """The region of the browser's preferred language (``de-CH`` → ``CH``): the page's market for targeting."""
    for tag, _quality in request.accept_languages:
        parts = tag.replace("_", "-").split("-")
        if len(parts) >= 2 and len(parts[1]) == 2 and parts[1].isalpha():
            return parts[1].upper()
        return None
    return None


@bp.app_context_processor
def shop_terms() -> dict[str, Any]:
    """The free-delivery threshold in the shop's currency (formatted per page language by ``price``)."""
    try:
        currency = app_services().settings.reporting_currency
    except Exception:  # the error page must render without services
        currency = "USD"
    return {"free_delivery": (FREE_DELIVERY_FROM, currency)}


def listing_impression_id(kind: str, items: int) -> str:
    """A fresh id for a listing's impression (the page's add-to-cart and purchase events point at it), signed for
    its kind and product count, so search analytics counts it as a listing this server showed."""
    return signed_id(kind=kind, items=items)


@bp.get("/")
def home() -> Any:
    ensure_visitor_id()
    featured = browse.featured(app_services().db, ui_language(), 12, item_from_row)
    return render_template(
        "home.html",
        featured=featured,
        categories=_categories(),
        impression_id=listing_impression_id("home", len(featured)),
    )


@bp.get("/deals")
def deals() -> Any:
    """Discounted products (a regular price above the price in the feed), biggest saving first."""
    ensure_visitor_id()
    found = browse.deals(app_services().db, DEALS_LIMIT, item_from_row)
    return render_template("deals.html", deals=found, impression_id=listing_impression_id("deals", len(found)))


@bp.get("/help")
def help_page() -> Any:
    ensure_visitor_id()
    return render_template("help.html")


def page_currency() -> str:
    """The shopper's currency: ``?currency=`` (remembered in a cookie), else the cookie, else from language/market."""
    if "page_currency" in g:
        chosen: str = g.page_currency
        return chosen
    fx = app_services().search.fx
    requested = request.args.get("currency", "").strip().upper()
    remembered = request.cookies.get(CURRENCY_COOKIE, "")
    if requested and fx.knows(requested) and len(requested) == 3:
        currency = requested
        if remembered != requested:
            g.set_currency_cookie = requested
    elif remembered and len(remembered) == 3 and fx.knows(remembered):
        currency = remembered
    else:
        currency = shopper_currency(ui_language(), _market_for_currency(), fx)
    g.page_currency = currency
    return currency


def _market_for_currency() -> str | None:
    """The browser's region counts only when the page is in the browser's language: an en-US browser on the
    Spanish page thinks in euros, an es-MX browser on it in pesos."""
    for tag, _quality in request.accept_languages:
        if tag.replace("_", "-").split("-")[0].lower() == ui_language():
            return shopper_market()
        return None
    return None


@bp.after_request
def remember_currency(response: Response) -> Response:
    chosen = g.get("set_currency_cookie")
    if chosen:
        response.set_cookie(
            CURRENCY_COOKIE, chosen, max_age=365 * 24 * 3600, httponly=True, samesite="Lax", secure=request.is_secure
        )
    return response


@bp.app_context_processor
def shopper_prices() -> dict[str, Any]:
    """``approx_price(item)``: the listing's price in the shopper's currency ("" when it is already in it)."""

    def approx_price(item: Any) -> str:
        try:
            converted = converted_price(item, page_currency(), app_services().search.fx, format_locale(ui_language()))
        except Exception:  # a price hint must never break a page
            return ""
        return converted["display"] if converted else ""

    return {"approx_price": approx_price, "shop_currencies": SHOP_CURRENCIES}


def search_url(remove: tuple[str, str] | None = None, **changes: Any) -> str:
    """This search with one filter value removed or parameters changed; any change but ``page`` goes to page 1."""
    args = MultiDict(request.args)
    if remove is not None:
        name, value = remove
        raw = args.getlist(name)
        values = raw[0].split(",") if len(raw) == 1 and "," in raw[0] else raw
        args.setlist(name, [v for v in values if v.strip().casefold() != value.casefold()])
    for key, value in changes.items():
        if value is None or value == "":
            args.poplist(key)
        else:
            args.setlist(key, [str(value)])
    if "page" not in changes:
        args.poplist("page")
    query = urlencode([(k, v) for k, v in args.items(multi=True) if v != ""])
    return url_for("shop.search") + ("?" + query if query else "")


@bp.get("/search")
def search() -> Any:
    ensure_visitor_id()
    app = app_services()
    raw_query = request.args.get("q", "")
    language = ui_language()
    currency = page_currency()
    try:
        params = parse_search_params(
            request.args,
            fx=app.search.fx,
            default_currency=currency,
            default_per_page=PAGE_SIZE,
            max_per_page=MAX_PAGE_SIZE,
        )
    except ApiError as exc:
        return render_template("search.html", query=raw_query[:200], page=None, error=exc.message), 400
    if not raw_query.strip() and params.filters.is_empty():
        return render_template("search.html", query="", page=None, error=translate(language, "empty_query"))
    try:
        page = app.shop_search.search(
            params.query(
                raw_query,
                language=language,
                unit_id=ensure_visitor_id(),
                request_id=current_request_id(),
                surface="shop",
                market=shopper_market(),
            )
        )
    except SearchInputError as exc:
        message = (
            translate(language, "query_too_long", max=app.settings.max_query_chars)
            if exc.code == "query_too_long"
            else translate(language, "empty_query")
        )
        return render_template("search.html", query=raw_query[:200], page=None, error=message), 400
    if page.total > 0 and raw_query.strip() and not g.get("set_visitor_cookie"):
        # Autocomplete learns only from what this server answered with results, once per returning shopper (a
        # cookie minted by this very request is no shopper yet: a cookieless script would be a new one each time).
        app.answered_searches.record(raw_query.strip(), language, ensure_visitor_id())
    popular = app.suggester.popular(language) if page.total == 0 else []
    # shop.js reports the query as typed (data-query) and every product card in #results, related ones included
    page = signed_page(page, query=raw_query, items=len(page.hits) + len(page.related))
    return render_template(
        "search.html",
        query=raw_query,
        page=page,
        result=page.result,
        popular=popular,
        search_url=search_url,
        listing_kind=listing_kind,
        error=None,
    )


@bp.get("/c/<slug>")
def category(slug: str) -> Any:
    ensure_visitor_id()
    if not _SLUG.match(slug):
        abort(404)
    page = request.args.get("page", "1")
    page_number = int(page) if page.isdigit() and 0 < int(page) < 100_000 else 1
    items, total = browse.category_page(app_services().db, slug, page_number, PAGE_SIZE, item_from_row)
    if not total:
        abort(404)
    pages = max(1, -(-total // PAGE_SIZE))
    if page_number > pages:
        abort(404)
    return render_template(
        "category.html",
        slug=slug,
        items=items,
        categories=_categories(),
        total=total,
        page=page_number,
        pages=pages,
        impression_id=listing_impression_id("category", len(items)),
    )


@bp.get("/product/<sku>")
def product(sku: str) -> Any:
    ensure_visitor_id()
    item = app_services().index.item(sku) if len(sku) <= 64 else None
    if item is None:
        abort(404)
    impression = request.args.get("imp", "")
    position = request.args.get("pos", "")
    return render_template(
        "product.html",
        item=item,
        impression_id=impression if _IMPRESSION.match(impression) else "",
        position=position if position.isdigit() and len(position) < 6 else "",
        back_query=request.args.get("q", "")[:1000],
    )


def _hue(text: str) -> int:
    return int(hashlib.blake2b(text.encode(), digest_size=2).hexdigest(), 16) % 360


@bp.get("/placeholder/<slug>.svg")
def placeholder(slug: str) -> Response:
    """A soft, category-coloured tile with the category's initial: a real image's place, no external resource."""
    if not _SLUG.match(slug):
        abort(404)
    hue = _hue(slug)
    initial = escape(slug[:1].upper())
    svg = f"""<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 400 300" role="img" aria-label="{escape(slug)}">
<defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1">
<stop offset="0" stop-color="hsl({hue},70%,95%)"/>
<stop offset="1" stop-color="hsl({hue},55%,84%)"/></linearGradient></defs>
<rect width="400" height="300" fill="url(#g)"/>
<circle cx="330" cy="60" r="90" fill="hsl({(hue + 30) % 360},60%,90%)" opacity="0.7"/>
<circle cx="60" cy="270" r="70" fill="hsl({(hue + 330) % 360},55%,88%)" opacity="0.8"/>
<rect x="140" y="90" width="120" height="120" rx="28" fill="hsl({hue},45%,55%)" opacity="0.92"/>
<text x="200" y="170" text-anchor="middle" font-family="Helvetica, Arial, sans-serif" font-size="64"
 font-weight="700" fill="#fff">{initial}</text>
</svg>"""
    response = Response(svg, mimetype="image/svg+xml")
    response.headers["Cache-Control"] = "public, max-age=86400"
    return response
