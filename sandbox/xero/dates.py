"""Xero's date formats: `/Date(ms+0000)/` out, `YYYY-MM-DD` (and friends) in."""

import datetime as dt
import email.utils
import re

_MS_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def date_to_ms(day: dt.date) -> int:
    """Midnight UTC of `day` as epoch milliseconds."""
    return int((dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC) - EPOCH).total_seconds() * 1000)


def ms_date(day: dt.date) -> str:
    """A date in Xero's response form, e.g. `/Date(1551916800000+0000)/`."""
    return f"/Date({date_to_ms(day)}+0000)/"


def ms_timestamp(ms: int) -> str:
    """A timestamp (UpdatedDateUTC) in Xero's response form."""
    return f"/Date({int(ms)}+0000)/"


def envelope_timestamp(ms: int) -> str:
    """The envelope's DateTimeUTC form, which Xero writes without an offset."""
    return f"/Date({int(ms)})/"


def date_string(day: dt.date) -> str:
    """The `DateString` companion of a date field."""
    return f"{day.isoformat()}T00:00:00"


def timestamp_string(ms: int) -> str:
    """The `UpdatedDateUTCString` companion, e.g. `2019-03-11 17:58:46+00:00`."""
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S+00:00")


def parse_date(value) -> dt.date:
    """Parse a request date: `YYYY-MM-DD`, an ISO datetime or `/Date(ms)/`; ValueError if bad."""
    if isinstance(value, dt.date):
        return value
    if not isinstance(value, str) or not value.strip():
        raise ValueError("empty date")
    text = value.strip()
    match = _MS_DATE.match(text)
    if match:
        return (EPOCH + dt.timedelta(milliseconds=int(match.group(1)))).date()
    if len(text) >= 10 and text[4] == "-":
        return dt.date.fromisoformat(text[:10])
    raise ValueError(f"unrecognised date {value!r}")


def parse_iso_date(value: str | None) -> dt.date | None:
    """Parse an ISO `YYYY-MM-DD` stored in state (None stays None)."""
    return dt.date.fromisoformat(value) if value else None


def lock_date_text(day: dt.date) -> str:
    """The lock-date form used in Xero's messages, e.g. `30-Nov-2018`."""
    return day.strftime("%d-%b-%Y")


def parse_modified_since(value: str | None) -> int | None:
    """Parse an If-Modified-Since header (HTTP-date or ISO, UTC assumed) into epoch ms."""
    if not value:
        return None
    text = value.strip()
    try:
        parsed = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        parsed = None
    if parsed is None:
        try:
            parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return int((parsed - EPOCH).total_seconds() * 1000)
