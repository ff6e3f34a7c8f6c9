"""Cliniko's list envelope: `page`/`per_page` (50 by default, at most 100), `sort`, and absolute links."""

from decimal import Decimal
from urllib.parse import quote, urlencode

from .clock import parse_iso
from .filters import FilterError

DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 100


def _int_arg(value: str | None, default: int) -> int:
    try:
        return int(value) if value not in (None, "") else default
    except ValueError:
        return default


def page_params(args) -> tuple[int, int]:
    """The requested page (from 1) and page size (1–100, default 50; larger values are capped)."""
    page = max(_int_arg(args.get("page"), 1), 1)
    per_page = min(max(_int_arg(args.get("per_page"), DEFAULT_PER_PAGE), 1), MAX_PER_PAGE)
    return page, per_page


def parse_sort(sort: str | None, order: str | None) -> list[tuple[str, bool]]:
    """`sort=a,b:desc` (deprecated `order=asc|desc` for columns without a direction) → [(field, desc)]."""
    default_desc = (order or "asc").lower() == "desc"
    keys: list[tuple[str, bool]] = []
    for part in (sort or "").split(","):
        part = part.strip()
        if not part:
            continue
        name, _, direction = part.partition(":")
        direction = direction.lower()
        if direction not in ("", "asc", "desc"):
            raise FilterError(f"Invalid sort direction '{direction}'")
        keys.append((name, default_desc if not direction else direction == "desc"))
    if not keys:
        keys.append(("created_at", default_desc))
    return keys


def _sort_value(value, kind: str | None):
    if value is None:
        return None
    if kind in ("int64", "integer") or (kind is None and isinstance(value, str) and value.isdigit()):
        return int(value)
    if kind == "decimal":
        return Decimal(str(value))
    if kind == "date-time":
        return parse_iso(value)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, list | dict):
        return str(value)
    return value


def sort_records(records: list[dict], keys: list[tuple[str, bool]], kinds: dict[str, str]) -> list[dict]:
    """Sort like Postgres (NULLS LAST ascending, NULLS FIRST descending), ties broken by id ascending."""
    if records:
        known = set().union(*(r.keys() for r in records[:50])) | set(kinds)
        for name, _ in keys:
            if name not in known or name.startswith("_"):
                raise FilterError(f"Invalid sort field '{name}'")
    result = sorted(records, key=lambda r: int(r["id"]))
    for name, desc in reversed(keys):
        kind = kinds.get(name)
        present = [r for r in result if r.get(name) is not None]
        missing = [r for r in result if r.get(name) is None]
        present.sort(key=lambda r, n=name, k=kind: _sort_value(r.get(n), k), reverse=desc)
        result = missing + present if desc else present + missing
    return result


def page_url(base_url: str, args, page: int) -> str:
    """The absolute URL of `page`, keeping every other query parameter of the request."""
    pairs = [(k, v) for k, v in args.items(multi=True) if k != "page"]
    pairs.append(("page", str(page)))
    return f"{base_url}?{urlencode(pairs, quote_via=quote, safe='[]:,*')}"


def envelope(name: str, rendered: list[dict], total: int, page: int, per_page: int, base_url: str, args) -> dict:
    """`{name: [...], total_entries, links: {self, next?, previous?}}`, links only where they apply."""
    links = {"self": page_url(base_url, args, page)}
    if page * per_page < total:
        links["next"] = page_url(base_url, args, page + 1)
    if page > 1:
        links["previous"] = page_url(base_url, args, page - 1)
    return {name: rendered, "total_entries": total, "links": links}
