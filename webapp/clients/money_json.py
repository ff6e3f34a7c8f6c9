"""JSON with exact money: Decimal in, Decimal out, never through float."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any


def loads(text: str | bytes) -> Any:
    """Parse JSON, turning every non-integer number into a Decimal."""
    return json.loads(text, parse_float=Decimal)


def dumps(value: Any) -> str:
    """Serialise to compact JSON, writing Decimals as exact JSON numbers; floats are refused."""
    return "".join(_encode(value))


def _encode(value: Any):
    if value is None:
        yield "null"
    elif value is True:
        yield "true"
    elif value is False:
        yield "false"
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"cannot send a non-finite amount: {value}")
        # Fixed-point text keeps every digit and never uses an exponent Xero might misread.
        yield format(value, "f")
    elif isinstance(value, int):
        yield str(int(value))
    elif isinstance(value, float):
        raise TypeError("float in a payload; use decimal.Decimal for amounts")
    elif isinstance(value, str):
        yield json.dumps(value)
    elif isinstance(value, datetime | date):
        yield json.dumps(value.isoformat())
    elif isinstance(value, dict):
        yield "{"
        for i, (key, item) in enumerate(value.items()):
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys must be strings, got {key!r}")
            yield ("," if i else "") + json.dumps(key) + ":"
            yield from _encode(item)
        yield "}"
    elif isinstance(value, list | tuple):
        yield "["
        for i, item in enumerate(value):
            if i:
                yield ","
            yield from _encode(item)
        yield "]"
    else:
        raise TypeError(f"cannot serialise {type(value).__name__} to JSON")
