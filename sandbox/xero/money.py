"""Decimal money helpers: parsing request numbers, Xero's rounding, JSON output."""

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

ZERO = Decimal("0")
CENT = Decimal("0.01")
UNIT4 = Decimal("0.0001")


def to_decimal(value, default: Decimal | None = None) -> Decimal:
    """Parse a JSON number or numeric string into Decimal; ValueError when not a number."""
    if value is None or value == "":
        if default is None:
            raise ValueError("missing number")
        return default
    if isinstance(value, bool):
        raise ValueError("boolean is not a number")
    try:
        result = Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise ValueError(f"not a number: {value!r}") from exc
    if not result.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return result


def round2(value: Decimal) -> Decimal:
    """Round half away from zero to cents."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def round_dp(value: Decimal, places: int) -> Decimal:
    """Round half away from zero to `places` decimals."""
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def stored(value: Decimal) -> str:
    """The string form money is kept in state (exact, JSON friendly)."""
    return str(value)


def dec(value) -> Decimal:
    """Read a stored money string back as Decimal (missing → 0)."""
    return Decimal(value) if value not in (None, "") else ZERO


def as_number(value) -> float:
    """A stored money value as a JSON number."""
    return float(dec(value))
