"""The dashboard's one blueprint, in its own module so the view modules can register routes on it without
importing the package that imports them."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("dashboard", __name__, url_prefix="/dashboard")
