"""Practice scope and role checks for views and actions (404 outside scope, 403 for the wrong role)."""

from __future__ import annotations

from flask import abort
from flask_login import current_user

from webapp.extensions import db
from webapp.models import Practice


def practice_in_scope(practice_id: int, admin: bool = False) -> Practice:
    """The practice if the current user may see it (else 404); with admin=True, also require admin (403)."""
    practice = db.session.get(Practice, practice_id)
    if practice is None or not current_user.can_see_practice(practice.id):
        abort(404)
    if admin and not current_user.is_admin:
        abort(403)
    return practice
