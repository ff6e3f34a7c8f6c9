"""The job list's filter: parsed from the query string, JSON-safe for bulk jobs, turned into SQL.

Every query built here is limited to the user's practice scope; the view and the bulk jobs share it,
so "re-queue all matching" touches exactly what the list shows.
"""

from __future__ import annotations

import base64
import re
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Select, func, or_, select, tuple_, union_all

from webapp.models import ERROR_CATEGORIES, JOB_KINDS, JOB_STATUSES, SyncJob, User

SEARCH_FIELDS = ("any", "invoice", "patient", "cliniko", "xero")
DATE_FIELDS = ("updated", "issued")
MAX_SEARCH = 255
UNROUTED = "unrouted"


def _date(value) -> str:
    try:
        return date.fromisoformat(str(value)).isoformat() if value else ""
    except ValueError:
        return ""


def _connection(value) -> str:
    value = str(value or "").strip()
    if value == UNROUTED:
        return value
    return value if value.isdigit() and int(value) < 2**31 else ""


def _int(value) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class JobFilter:
    """What the job list shows. Unknown or malformed values are dropped, never an error."""

    practice: int | None = None
    kind: str = ""
    state: str = ""
    category: str = ""
    date_field: str = "updated"
    date_from: str = ""
    date_to: str = ""
    q: str = ""
    by: str = "any"
    #: A Xero connection id (as text), or UNROUTED for rows not routed to an organisation yet.
    connection: str = ""

    @classmethod
    def from_dict(cls, data) -> JobFilter:
        data = data if hasattr(data, "get") else {}
        return cls(
            practice=_int(data.get("practice")),
            kind=data.get("kind") if data.get("kind") in JOB_KINDS else "",
            state=data.get("state") if data.get("state") in JOB_STATUSES else "",
            category=data.get("category") if data.get("category") in ERROR_CATEGORIES else "",
            date_field=data.get("date_field") if data.get("date_field") in DATE_FIELDS else "updated",
            date_from=_date(data.get("date_from")),
            date_to=_date(data.get("date_to")),
            q=str(data.get("q") or "").strip()[:MAX_SEARCH],
            by=data.get("by") if data.get("by") in SEARCH_FIELDS else "any",
            connection=_connection(data.get("connection")),
        )

    def to_dict(self) -> dict:
        """The non-default values (JSON-safe; also the query string of links)."""
        defaults = JobFilter()
        return {k: v for k, v in asdict(self).items() if v != getattr(defaults, k) and v not in (None, "")}

    def replace(self, **changes) -> dict:
        """to_dict() with some values changed (for tab links)."""
        data = {**asdict(self), **changes}
        return JobFilter.from_dict(data).to_dict()


def _patient_prefix(term: str):
    """lower(patient_name) equal to, or starting with, the term, as a range the index on
    lower(patient_name) answers (the database collates by code point: C.UTF-8)."""
    low = term.lower()
    upper = low[:-1] + chr(ord(low[-1]) + 1)
    escaped = re.sub(r"([\\%_])", r"\\\1", low)
    column = func.lower(SyncJob.patient_name)
    return (column >= low) & (column < upper) & column.like(escaped + "%", escape="\\")


def search_condition(q: str, by: str):
    """Exact search (invoice number, Cliniko id, Xero id) or patient name prefix, case-insensitive."""
    conditions = []
    if by in ("any", "invoice"):
        conditions.append(SyncJob.invoice_number == q)
    if by in ("any", "cliniko"):
        conditions.append(SyncJob.cliniko_id == q)
    if by in ("any", "xero"):
        conditions.append(SyncJob.xero_id == q)
    if by in ("any", "patient"):
        conditions.append(_patient_prefix(q))
    return or_(*conditions)


def scope_ids(user: User, practice: int | None) -> list[int] | None:
    """Practice ids to restrict to: the user's own practice, the chosen one, both (maybe none), or all."""
    if user.practice_id is not None:
        return [user.practice_id] if practice in (None, user.practice_id) else []
    return [practice] if practice is not None else None


def filtered_query(filters: JobFilter, user: User, query: Select, *, with_state: bool = True) -> Select:
    """Apply scope and filters (all but the state when with_state is False, for the tab counts)."""
    practice_ids = scope_ids(user, filters.practice)
    if practice_ids is not None:
        query = query.where(SyncJob.practice_id.in_(practice_ids))
    if filters.kind:
        query = query.where(SyncJob.kind == filters.kind)
    if filters.connection == UNROUTED:
        query = query.where(SyncJob.connection_id.is_(None))
    elif filters.connection:
        query = query.where(SyncJob.connection_id == int(filters.connection))
    if with_state and filters.state:
        query = query.where(SyncJob.status == filters.state)
    if filters.category:
        query = query.where(SyncJob.error_category == filters.category)
    column = SyncJob.issue_date if filters.date_field == "issued" else SyncJob.updated_at
    if filters.date_from:
        query = query.where(column >= datetime.fromisoformat(filters.date_from).replace(tzinfo=UTC))
    if filters.date_to:
        end = datetime.fromisoformat(filters.date_to).replace(tzinfo=UTC) + timedelta(days=1)
        query = query.where(column < end)
    if filters.q:
        query = query.where(search_condition(filters.q, filters.by))
    return query


# -- keyset cursors ------------------------------------------------------------------------------

def encode_cursor(updated_at: datetime, row_id: int) -> str:
    raw = f"{updated_at.astimezone(UTC).isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(value: str | None) -> tuple[datetime, int] | None:
    if not value:
        return None
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        stamp, row_id = raw.rsplit("|", 1)
        moment = datetime.fromisoformat(stamp)
        if moment.tzinfo is None:
            return None
        return moment, int(row_id)
    except (ValueError, UnicodeDecodeError):
        return None


def keyset_page(query: Select, *, after=None, before=None, limit: int = 50) -> Select:
    """One page of (updated_at desc, id desc); `before` reads backwards (the caller reverses)."""
    key = tuple_(SyncJob.updated_at, SyncJob.id)
    if before is not None:
        return query.where(key > tuple_(*before)).order_by(SyncJob.updated_at.asc(), SyncJob.id.asc()).limit(limit)
    if after is not None:
        query = query.where(key < tuple_(*after))
    return query.order_by(SyncJob.updated_at.desc(), SyncJob.id.desc()).limit(limit)


def page_keys(filters: JobFilter, user, *, after=None, before=None, limit: int = 50) -> list[tuple[datetime, int]]:
    """(updated_at, id) of one page, newest first, whatever `before`/`after` said.

    Without a state filter the page is merged from one keyset read per state, each answered by an
    index that leads with the state (ix_sync_jobs_list / ix_sync_jobs_practice_list), so the "All"
    tab costs at most len(JOB_STATUSES) × limit index entries instead of sorting the whole table.
    """
    states = [filters.state] if filters.state else list(JOB_STATUSES)
    parts = []
    for state in states:
        query = filtered_query(replace(filters, state=state), user, select(SyncJob.updated_at, SyncJob.id))
        inner = keyset_page(query, after=after, before=before, limit=limit).subquery()
        parts.append(select(inner.c.updated_at, inner.c.id))
    merged = (parts[0] if len(parts) == 1 else union_all(*parts)).subquery()
    if before is not None:
        order = (merged.c.updated_at.asc(), merged.c.id.asc())
    else:
        order = (merged.c.updated_at.desc(), merged.c.id.desc())
    from webapp.extensions import db

    keys = [tuple(r) for r in db.session.execute(select(merged.c.updated_at, merged.c.id).order_by(*order)
                                                  .limit(limit))]
    if before is not None:
        keys.reverse()
    return keys
