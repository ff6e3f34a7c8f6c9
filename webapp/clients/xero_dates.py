"""Xero's `/Date(ms+zzzz)/` timestamps: parse them, format them, and format request dates."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone

_MS_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_xero_date(value: str | None) -> datetime | None:
    """Parse `/Date(1234567890000+0000)/` (or an ISO string) into a timezone-aware datetime."""
    if value is None or value == "":
        return None
    match = _MS_DATE.match(value.strip())
    if match:
        millis, offset = match.groups()
        tz = UTC
        if offset and offset not in ("+0000", "-0000"):
            sign = -1 if offset[0] == "-" else 1
            tz = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5])))
        # The milliseconds count from the UTC epoch; the offset only says how to show the instant.
        return (_EPOCH + timedelta(milliseconds=int(millis))).astimezone(tz)
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"not a Xero date: {value!r}") from exc
    # Xero's *DateString fields carry no zone; they are the organisation's calendar date/time.
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def format_xero_date(value: datetime | date) -> str:
    """Format a datetime (aware, or naive meaning UTC) or date as `/Date(ms+0000)/`."""
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day, tzinfo=UTC)
    elif value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    millis = (value - _EPOCH) // timedelta(milliseconds=1)
    return f"/Date({millis}+0000)/"


def request_date(value: date | datetime) -> str:
    """Format a date the way Xero's write endpoints take it: `YYYY-MM-DD`."""
    if isinstance(value, datetime):
        value = value.date()
    return value.isoformat()


def xero_date_to_date(value: str | None) -> date | None:
    """Parse a Xero date field that means a calendar date (invoice Date, DueDate, payment Date)."""
    parsed = parse_xero_date(value)
    return parsed.date() if parsed else None
