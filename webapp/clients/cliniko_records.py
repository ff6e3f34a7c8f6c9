"""Turn Cliniko's JSON records into plain dicts with Decimal money, aware datetimes and string ids."""

from __future__ import annotations

import logging
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

#: Fields that hold money, rates or quantities: parsed to Decimal (from decimal strings or numbers).
DECIMAL_FIELDS = frozenset({
    "total_amount", "net_amount", "tax_amount", "discounted_amount", "unit_price", "discount_percentage",
    "net_price", "tax_rate", "total_including_tax", "quantity", "price", "price_ex_tax",
    "price_including_tax", "cost_price", "rate", "amount", "deposit_price", "discount",
})
#: Calendar dates (no time of day).
DATE_FIELDS = frozenset({"issue_date", "date_of_birth"})
#: Key under which a record lists fields whose values could not be parsed (raw values kept there).
INVALID = "_invalid_fields"


def relation_id(value: Any) -> str | None:
    """The id at the end of a link-only relation `{"links": {"self": ".../patients/380"}}`, if any."""
    if not isinstance(value, dict):
        return None
    link = (value.get("links") or {}).get("self") if isinstance(value.get("links"), dict) else None
    if not isinstance(link, str):
        return None
    last = urlsplit(link).path.rstrip("/").rsplit("/", 1)[-1]
    return last if last.isdigit() else None


def parse_timestamp(value: str) -> datetime:
    """Parse Cliniko's ISO 8601 timestamp (`2014-12-18T10:47:05Z`) into an aware datetime."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp without a zone: {value!r}")
    return parsed


#: What each field name calls for (worked out once per name: records repeat the same few dozen names).
_PLAIN, _DECIMAL, _TIMESTAMP, _DATE, _ID = range(5)
_KINDS: dict[str, int] = {}


def _kind(key: str) -> int:
    kind = _KINDS.get(key)
    if kind is None:
        if key in DECIMAL_FIELDS:
            kind = _DECIMAL
        elif key.endswith("_at"):
            kind = _TIMESTAMP
        elif key in DATE_FIELDS:
            kind = _DATE
        elif key == "id" or key.endswith("_id"):
            kind = _ID
        else:
            kind = _PLAIN
        if len(_KINDS) < 10_000:  # names come from Cliniko's schema; never let odd input grow it without end
            _KINDS[key] = kind
    return kind


def _decimal(value: Any) -> Decimal:
    result = Decimal(str(value).strip())
    if not result.is_finite():
        raise ValueError(value)
    return result


def _convert_field(key: str, value: Any) -> Any:
    if value is None or value is True or value is False:
        return value
    kind = _kind(key)
    if kind == _PLAIN:
        return value
    if kind == _DECIMAL:
        return _decimal(value) if isinstance(value, str | int | Decimal) else value
    if kind == _ID:
        return str(value) if isinstance(value, int | str) else value
    if not isinstance(value, str):
        return value
    return parse_timestamp(value) if kind == _TIMESTAMP else date.fromisoformat(value)


def convert(record: Any) -> Any:
    """Convert one record (recursively); a field that cannot be parsed becomes None, listed in INVALID."""
    if isinstance(record, list):
        return [convert(item) for item in record]
    if not isinstance(record, dict):
        return record
    result: dict[str, Any] = {}
    invalid: dict[str, Any] = {}
    relations: dict[str, str] = {}
    for key, value in record.items():
        if isinstance(value, dict):
            rel = relation_id(value)
            if rel is not None and f"{key}_id" not in record:
                relations[f"{key}_id"] = rel
            result[key] = convert(value)
            continue
        if isinstance(value, list):
            result[key] = [convert(item) for item in value]
            continue
        try:
            result[key] = _convert_field(key, value)
        except (ValueError, InvalidOperation, TypeError):
            log.warning("cliniko record %s: unparseable %s", record.get("id"), key)
            invalid[key] = value
            result[key] = None
    if relations:
        result.update(relations)
    if invalid:
        result[INVALID] = invalid
    return result
