"""Admin pages: dashboard users and rerank API keys. Thin views over ``shoprank.users`` and ``shoprank.apikeys``.

Every route is admin-only (``login_required("admin")``) and every form posts the CSRF token. A new API key's
plaintext is rendered into that one response and never stored or flashed (a flash would put it in the session
cookie, which is signed, not encrypted).
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from sqlalchemy import select

from shoprank.apikeys import ApiKey, create_api_key, revoke_api_key
from shoprank.db import utcnow
from shoprank.users import ROLES, UserError, create_user, list_users, set_active, unlock_user
from webapp.context import app_services
from webapp.dashboard import auth_users
from webapp.dashboard.blueprint import bp

admin_only = auth_users.login_required("admin")


def _users_page(
    errors: dict[str, str] | None = None, values: dict[str, str] | None = None, status: int = 200
) -> tuple[str, int]:
    db_session = app_services().db.scoped()
    return (
        render_template(
            "dashboard/admin_users.html",
            users=list_users(db_session),
            roles=ROLES,
            errors=errors or {},
            values=values or {"role": "merchandiser"},
            now=utcnow(),
        ),
        status,
    )


@bp.get("/admin/users")
@admin_only
def admin_users() -> Any:
    return _users_page()


@bp.post("/admin/users")
@admin_only
def admin_user_create() -> Any:
    values = {"email": request.form.get("email", ""), "role": request.form.get("role", "")}
    db_session = app_services().db.scoped()
    try:
        user = create_user(db_session, values["email"], request.form.get("password", ""), values["role"])
        db_session.commit()
    except UserError as exc:
        db_session.rollback()
        return _users_page({"create": str(exc)}, values, 422)
    flash(f"Created {user.role} {user.email}.", "ok")
    return redirect(url_for("dashboard.admin_users"))


def _user_action(user_id: int, action: Any, message: str) -> Any:
    db_session = app_services().db.scoped()
    try:
        user = action(db_session, user_id)
        db_session.commit()
    except UserError as exc:
        db_session.rollback()
        flash(str(exc), "error")
    else:
        flash(message.format(email=user.email), "ok")
    return redirect(url_for("dashboard.admin_users"))


@bp.post("/admin/users/<int:user_id>/deactivate")
@admin_only
def admin_user_deactivate(user_id: int) -> Any:
    me = auth_users.current_user()
    if me is not None and me.id == user_id:
        flash("You cannot deactivate your own account.", "error")
        return redirect(url_for("dashboard.admin_users"))
    return _user_action(user_id, lambda s, i: set_active(s, i, False), "{email} is deactivated and signed out.")


@bp.post("/admin/users/<int:user_id>/reactivate")
@admin_only
def admin_user_reactivate(user_id: int) -> Any:
    return _user_action(user_id, lambda s, i: set_active(s, i, True), "{email} can sign in again.")


@bp.post("/admin/users/<int:user_id>/unlock")
@admin_only
def admin_user_unlock(user_id: int) -> Any:
    return _user_action(user_id, unlock_user, "{email} is unlocked.")


def _keys_page(
    created: tuple[ApiKey, str] | None = None, error: str | None = None, status: int = 200
) -> tuple[str, int]:
    keys = app_services().db.scoped().scalars(select(ApiKey).order_by(ApiKey.created_at.desc(), ApiKey.id.desc())).all()
    return render_template("dashboard/admin_api_keys.html", keys=keys, created=created, error=error), status


@bp.get("/admin/api-keys")
@admin_only
def admin_api_keys() -> Any:
    return _keys_page()


@bp.post("/admin/api-keys")
@admin_only
def admin_api_key_create() -> Any:
    db_session = app_services().db.scoped()
    try:
        key, plaintext = create_api_key(db_session, request.form.get("name", ""))
        db_session.commit()
    except ValueError as exc:
        db_session.rollback()
        return _keys_page(error=str(exc), status=422)
    return _keys_page(created=(key, plaintext), status=201)


@bp.post("/admin/api-keys/<int:key_id>/revoke")
@admin_only
def admin_api_key_revoke(key_id: int) -> Any:
    db_session = app_services().db.scoped()
    if revoke_api_key(db_session, key_id):
        db_session.commit()
        flash(f"API key #{key_id} is revoked: requests with it now get 401.", "ok")
    else:
        flash(f"API key #{key_id} does not exist or is already revoked.", "error")
    return redirect(url_for("dashboard.admin_api_keys"))
