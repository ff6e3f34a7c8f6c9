"""Shared helpers for the Cliniko → Xero mapping functions: money, text cleaning, hashing, errors."""

from __future__ import annotations

import hashlib
import json
import unicodedata
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

CENT = Decimal("0.01")
UNIT4 = Decimal("0.0001")
ZERO = Decimal("0")
HUNDRED = Decimal("100")
DEFAULT_TIME_ZONE = "Australia/Sydney"

# Zero-width joiners are format characters but are part of correct spelling in several scripts (and emoji).
_KEEP_FORMAT = {"\u200c", "\u200d"}


class MappingError(Exception):
    """A Cliniko record cannot be turned into a correct Xero payload; says why and how to fix it."""

    def __init__(self, category: str, reason: str, fix: str) -> None:
        super().__init__(reason)
        self.category = category
        self.reason = reason
        self.fix = fix

    def __repr__(self) -> str:
        return f"MappingError({self.category!r}, {self.reason!r})"


def round2(value: Decimal) -> Decimal:
    """Round half away from zero to cents, as Xero rounds line amounts and tax."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def round4(value: Decimal) -> Decimal:
    """Round half away from zero to 4 places (Xero's UnitAmount/Quantity precision with unitdp=4)."""
    return value.quantize(UNIT4, rounding=ROUND_HALF_UP)


def as_decimal(value: Any) -> Decimal | None:
    """A Decimal from a Decimal, int or numeric string (floats via their repr); None when absent or not a number."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    try:
        # repr() keeps a float's shortest exact-looking text (0.1 → "0.1"), not its binary expansion.
        result = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError, TypeError):
        return None
    return result if result.is_finite() else None


def tidy(value: Decimal, min_places: int = 2) -> Decimal:
    """Drop trailing zeros beyond `min_places` (100.0000 → 100.00, 0.2500 → 0.25) so payloads read naturally."""
    normalized = value.normalize()
    if normalized.as_tuple().exponent > -min_places:  # type: ignore[operator]
        return value.quantize(Decimal(1).scaleb(-min_places))
    return normalized


def money_text(value: Decimal) -> str:
    """Money for people: $1,234.50 / -$0.03."""
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(round2(value)):,.2f}"


def clean_text(value: Any, limit: int | None = None) -> str:
    """Text fit for Xero: NFC, control and invisible format characters removed, whitespace collapsed, cut."""
    if value is None:
        return ""
    text = unicodedata.normalize("NFC", str(value))
    kept = []
    for char in text:
        category = unicodedata.category(char)
        if category in ("Cc", "Cs", "Co") or (category == "Cf" and char not in _KEEP_FORMAT):
            # Tabs and newlines become spaces (collapsed below); other control characters disappear.
            kept.append(" " if char in "\t\n\r\v\f" else "")
        else:
            kept.append(char)
    text = " ".join("".join(kept).split())
    if limit is not None and len(text) > limit:
        text = text[:limit].rstrip()
    return text


def person_name(record: dict | None) -> str:
    """A practitioner's or patient's display name: display_name, else "First Last" (may be empty)."""
    if not isinstance(record, dict):
        return ""
    display = clean_text(record.get("display_name"))
    if display:
        return display
    return clean_text(f"{record.get('first_name') or ''} {record.get('last_name') or ''}")


def business_name(record: dict | None) -> str:
    """A business's name: business_name, else display_name (may be empty)."""
    if not isinstance(record, dict):
        return ""
    return clean_text(record.get("business_name")) or clean_text(record.get("display_name"))


def zone_of(business: dict | None, fallback: str | None = None) -> tuple[ZoneInfo, str]:
    """The business's IANA time zone and where it came from; falls back to the practice's, then Sydney."""
    candidates: list[tuple[Any, str]] = []
    if isinstance(business, dict):
        # Cliniko's `time_zone` is often a Rails name ("Sydney"); `time_zone_identifier` is the IANA one.
        candidates.append((business.get("time_zone_identifier"), "business time zone"))
        candidates.append((business.get("time_zone"), "business time zone"))
    candidates.append((fallback, "practice time zone"))
    candidates.append((DEFAULT_TIME_ZONE, "default time zone"))
    for name, source in candidates:
        if isinstance(name, str) and "/" in name:
            try:
                return ZoneInfo(name), f"{source} {name}"
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo(DEFAULT_TIME_ZONE), f"default time zone {DEFAULT_TIME_ZONE}"


def local_date(moment: Any, zone: ZoneInfo) -> date | None:
    """The calendar date of an aware datetime in `zone` (naive datetimes are taken as UTC)."""
    if not isinstance(moment, datetime):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(zone).date()


def _canonical(value: Any) -> Any:
    if isinstance(value, Decimal):
        # Normalised text: 100, 100.0 and 100.00 are the same amount and must hash the same.
        text = format(value.normalize(), "f")
        return "0" if text in ("-0", "0") else text
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, float):
        return _canonical(Decimal(repr(value)))
    return value


def canonical_json(payload: Any) -> str:
    """Canonical JSON text of a payload: sorted keys, no spaces, Decimals as normalised strings."""
    return json.dumps(_canonical(payload), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_of(payload: Any) -> str:
    """sha256 hex digest of the payload's canonical JSON."""
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()

