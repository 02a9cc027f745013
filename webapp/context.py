"""The running app's services for the current request: a leaf module every blueprint may import.

Flask's tutorial keeps its per-request accessor (``get_db``) in its own module for the same reason: the
package ``__init__`` builds the app and imports the blueprints, so an accessor defined there would put every
blueprint in an import cycle with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from flask import Flask, current_app

if TYPE_CHECKING:  # only for the annotation: importing webapp.services here would undo the leaf
    from webapp.services import AppServices

#: Key of the ``AppServices`` in ``app.extensions``.
EXTENSION = "shoprank"


def app_services(app: Flask | None = None) -> AppServices:
    """The ``AppServices`` of ``app`` (default: the app handling the current request)."""
    return cast("AppServices", (app or current_app).extensions[EXTENSION])
