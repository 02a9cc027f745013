"""Shopper pages: home, search results, category, product, generated image placeholders."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from flask import Blueprint, Response, abort, render_template, request
from markupsafe import escape

from shoprank.catalog import browse
from shoprank.search.index import item_from_row
from shoprank.search.service import SearchInputError
from webapp import services
from webapp.http import current_request_id, ensure_visitor_id
from webapp.i18n import translate, ui_language

bp = Blueprint("shop", __name__)

PAGE_SIZE = 24
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_IMPRESSION = re.compile(r"^[A-Za-z0-9-]{8,64}$")


def _categories() -> list[tuple[str, int]]:
    return services().index.category_counts()


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


@bp.get("/")
def home() -> Any:
    ensure_visitor_id()
    featured = browse.featured(services().db, ui_language(), 12, item_from_row)
    return render_template("home.html", featured=featured, categories=_categories())


@bp.get("/search")
def search() -> Any:
    ensure_visitor_id()
    app = services()
    raw_query = request.args.get("q", "")
    language = ui_language()
    if not raw_query.strip():
        return render_template("search.html", query="", result=None, error=translate(language, "empty_query"))
    try:
        result = app.search.search(
            raw_query,
            limit=PAGE_SIZE,
            language=language,
            unit_id=ensure_visitor_id(),
            request_id=current_request_id(),
            surface="shop",
            market=shopper_market(),
        )
    except SearchInputError as exc:
        message = (
            translate(language, "query_too_long", max=app.settings.max_query_chars)
            if exc.code == "query_too_long"
            else translate(language, "empty_query")
        )
        return render_template("search.html", query=raw_query[:200], result=None, error=message), 400
    return render_template("search.html", query=result.query, result=result, error=None)


@bp.get("/c/<slug>")
def category(slug: str) -> Any:
    ensure_visitor_id()
    if not _SLUG.match(slug):
        abort(404)
    page = request.args.get("page", "1")
    page_number = int(page) if page.isdigit() and 0 < int(page) < 100_000 else 1
    items, total = browse.category_page(services().db, slug, page_number, PAGE_SIZE, item_from_row)
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
    )


@bp.get("/product/<sku>")
def product(sku: str) -> Any:
    ensure_visitor_id()
    item = services().index.item(sku) if len(sku) <= 64 else None
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
