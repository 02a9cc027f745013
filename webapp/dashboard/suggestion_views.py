"""Autocomplete's past searches for merchandisers: what shoppers are offered, a way to remove one, and the
block list (words or phrases never suggested). The rules behind the list are in
:mod:`experiments.store.suggestions`; removing a suggestion puts its exact phrase on the block list, so the
shoppers who keep searching it cannot bring it back."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for

from experiments.store.suggestions import block_phrase, blocked_phrases, past_searches, unblock_phrase
from search.suggest import blocked
from webapp.context import app_services
from webapp.dashboard import auth_users
from webapp.dashboard.blueprint import bp


def _actor() -> str:
    user = auth_users.current_user()
    return user.email if user else "unknown"


@bp.get("/suggestions")
@auth_users.login_required()
def suggestions() -> Any:
    app = app_services()
    session = app.db.scoped()
    minimum = app.settings.suggest_min_shoppers
    blocks = blocked_phrases(session)
    phrases = [block.phrase for block in blocks]
    rows = [(row, blocked(row.phrase, phrases)) for row in past_searches(session, min_shoppers=minimum, limit=200)]
    return render_template("dashboard/suggestions.html", rows=rows, blocks=blocks, min_shoppers=minimum)


def _change(phrase: str, message: str) -> Any:
    app = app_services()
    session = app.db.scoped()
    try:
        block_phrase(session, phrase, _actor())
    except ValueError as exc:
        session.rollback()
        return render_template(
            "dashboard/suggestions.html",
            rows=[],
            blocks=blocked_phrases(session),
            min_shoppers=app.settings.suggest_min_shoppers,
            error=f"phrase: {exc}",
        ), 422
    session.commit()
    app.suggester.invalidate()
    flash(message, "ok")
    return redirect(url_for("dashboard.suggestions"))


@bp.post("/suggestions/remove")
@auth_users.login_required()
def suggestion_remove() -> Any:
    phrase = request.form.get("phrase", "")
    return _change(phrase, f"“{' '.join(phrase.split())}” is no longer suggested (it is on the block list).")


@bp.post("/suggestions/block")
@auth_users.login_required()
def suggestion_block() -> Any:
    phrase = request.form.get("phrase", "")
    return _change(phrase, f"Suggestions containing “{' '.join(phrase.split())}” are blocked.")


@bp.post("/suggestions/unblock")
@auth_users.login_required()
def suggestion_unblock() -> Any:
    app = app_services()
    session = app.db.scoped()
    key = request.form.get("key", "")
    if not unblock_phrase(session, key):
        session.rollback()
        flash("That phrase was not on the block list.", "error")
    else:
        session.commit()
        app.suggester.invalidate()
        flash("Removed from the block list.", "ok")
    return redirect(url_for("dashboard.suggestions"))
