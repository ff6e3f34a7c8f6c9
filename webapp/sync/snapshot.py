"""Cliniko records to and from JSON for the `source` column (Decimals and dates as strings)."""

from __future__ import annotations

import math
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from webapp.clients.cliniko_records import convert


def to_json(value: Any) -> Any:
    """A JSON-safe copy: Decimal → str (exact), datetime/date → ISO 8601."""
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, str) and "\x00" in value:
        return value.replace("\x00", "")  # Postgres JSONB cannot hold NUL
    if isinstance(value, float) and not math.isfinite(value):
        return None  # NaN / Infinity are not JSON
    return value


def from_json(value: Any) -> Any:
    """Back to the client's record types (Decimal money, aware datetimes, dates)."""
    return convert(value)
