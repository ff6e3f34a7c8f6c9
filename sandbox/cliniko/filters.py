"""Parse and apply Cliniko's `q[]` filters (`FIELD:OPERATORVALUE`, repeated filters are ANDed)."""

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation

from .clock import parse_iso
from .resources import ARRAY, BOOLEAN, DATE, DATETIME, DECIMAL, INT64, INTEGER, STRING

# Longest operators first so that ">=" is not read as ">" followed by "=".
OPERATORS = ("!?", ">=", "<=", "!=", "~~", "=", ">", "<", "~", "?", "*")

# The documented operators per type; "=" and "!=" are also taken for date-times and "*" (any value)
# for every type, which the docs list only for date-times.
ALLOWED = {
    INT64: {"=", "!=", ">=", ">", "<=", "<", "?", "!?", "*"},
    INTEGER: {"=", "!=", ">=", ">", "<=", "<", "?", "!?", "*"},
    DECIMAL: {"=", "!=", ">=", ">", "<=", "<", "?", "!?", "*"},
    DATE: {"=", "!=", ">=", ">", "<=", "<", "?", "!?", "*"},
    DATETIME: {"=", "!=", ">=", ">", "<=", "<", "?", "!?", "*"},
    STRING: {"=", "!=", "~", "~~", "?", "!?", "*"},
    BOOLEAN: {"=", "!=", "*"},
    ARRAY: {"~", "*"},
}
_VALUELESS = {"?", "!?", "*"}


class FilterError(ValueError):
    """A `q[]` or `sort` value the API refuses (answered with 400)."""


@dataclass(frozen=True)
class Filter:
    """One parsed `q[]` filter; `matches(record)` says whether a stored record passes it."""

    field: str
    op: str
    value: object
    kind: str

    def matches(self, record: dict) -> bool:
        """Whether `record` passes this filter."""
        actual = record.get(self.field)
        op = self.op
        if op == "*":
            return True
        if op == "?":
            return actual is not None
        if op == "!?":
            return actual is None
        if actual is None:  # SQL semantics: NULL matches no comparison
            return False
        kind = self.kind
        if kind in (INT64, INTEGER):
            actual = int(actual)
        elif kind == DECIMAL:
            actual = Decimal(str(actual))
        elif kind == DATETIME:
            actual = parse_iso(actual)
        elif kind == ARRAY:
            return self.value in {str(v) for v in actual}
        elif kind == STRING:
            text = str(actual)
            if op == "~":
                return self.value in text.lower()
            if op == "~~":
                return self.value.fullmatch(text) is not None
        elif kind == DATE and op == "=" and isinstance(self.value, re.Pattern):
            return self.value.fullmatch(str(actual)) is not None
        if op == "=":
            return actual in self.value if isinstance(self.value, frozenset) else actual == self.value
        if op == "!=":
            return actual != self.value
        if op == ">":
            return actual > self.value
        if op == ">=":
            return actual >= self.value
        if op == "<":
            return actual < self.value
        if op == "<=":
            return actual <= self.value
        return False


def parse_filter(text: str, fields: dict[str, str]) -> Filter:
    """Parse one `q[]` value against the resource's filterable fields."""
    name, sep, rest = text.partition(":")
    name = name.strip()
    if not sep or not name:
        raise FilterError(f"Invalid filter '{text}': expected FIELD:OPERATORVALUE")
    if name not in fields:
        raise FilterError(f"Invalid filter field '{name}'")
    op = next((o for o in OPERATORS if rest.startswith(o)), None)
    if op is None:
        raise FilterError(f"Invalid filter operator in '{text}'")
    kind = fields[name]
    if op not in ALLOWED[kind]:
        raise FilterError(f"Operator '{op}' is not allowed for {kind} field '{name}'")
    raw = rest[len(op) :]
    if op in _VALUELESS:
        if raw:
            raise FilterError(f"Operator '{op}' takes no value in '{text}'")
        return Filter(name, op, None, kind)
    return Filter(name, op, _convert(kind, op, raw, text), kind)


def _convert(kind: str, op: str, raw: str, text: str):
    try:
        if kind in (INT64, INTEGER):
            if op == "=":
                return frozenset(int(v) for v in raw.split(","))
            return int(raw)
        if kind == DECIMAL:
            if op == "=":
                return frozenset(_decimal(v) for v in raw.split(","))
            return _decimal(raw)
        if kind == DATETIME:
            return parse_iso(raw)
        if kind == DATE:
            if "*" in raw and op == "=":
                if not re.fullmatch(r"[\d*]{4}-[\d*]{2}-[\d*]{2}", raw):
                    raise ValueError(raw)
                return re.compile(raw.replace("*", r"\d"))
            datetime.strptime(raw, "%Y-%m-%d")
            return raw
        if kind == BOOLEAN:
            if raw.lower() not in ("true", "false"):
                raise ValueError(raw)
            return raw.lower() == "true"
        if kind == STRING:
            if op == "~":
                return raw.lower()
            if op == "~~":
                parts = [re.escape(p) for p in raw.split("%")]
                return re.compile(".*".join(parts), re.IGNORECASE | re.DOTALL)
            return raw
        if kind == ARRAY:
            return raw
    except ValueError as exc:
        raise FilterError(f"Invalid value in filter '{text}'") from exc
    raise FilterError(f"Invalid filter '{text}'")


def _decimal(raw: str) -> Decimal:
    try:
        value = Decimal(raw)
    except InvalidOperation as exc:
        raise ValueError(raw) from exc
    if not value.is_finite():
        raise ValueError(raw)
    return value


def parse_filters(values: list[str], fields: dict[str, str]) -> list[Filter]:
    """Parse every `q[]` value of a request."""
    return [parse_filter(v, fields) for v in values if v != ""]


def visible(record: dict, hidden_fields: tuple[str, ...], filtered_fields: set[str]) -> bool:
    """Whether a record shows in a list: archived/deleted/cancelled ones only when their field is filtered."""
    return all(record.get(f) is None or f in filtered_fields for f in hidden_fields)


def select(records, filters: list[Filter], hidden_fields: tuple[str, ...] = (), also_shown: set[str] = frozenset()):
    """The records that are visible and pass every filter."""
    shown = {f.field for f in filters} | set(also_shown)
    return [r for r in records if visible(r, hidden_fields, shown) and all(f.matches(r) for f in filters)]
