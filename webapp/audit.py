"""Writing audit log entries for every admin action."""

from __future__ import annotations

from flask import has_request_context, request

from webapp.extensions import db
from webapp.models import AuditEntry, User


def record(
    action: str,
    user: User | None = None,
    object_type: str | None = None,
    object_id=None,
    practice_id: int | None = None,
    details: dict | None = None,
) -> AuditEntry:
    """Add an audit entry to the session (the caller commits with the change it describes)."""
    entry = AuditEntry(
        user_id=getattr(user, "id", None),
        actor=getattr(user, "email", None) or "system",
        action=action,
        object_type=object_type,
        object_id=None if object_id is None else str(object_id),
        practice_id=practice_id,
        details=details,
        ip=request.remote_addr if has_request_context() else None,
    )
    db.session.add(entry)
    return entry
