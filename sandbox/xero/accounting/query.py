"""GET list helpers: where/IDs/If-Modified-Since filters, paging and the views `where` sees."""

from flask import request

from sandbox.xero.accounting import where as where_clause
from sandbox.xero.dates import parse_modified_since

PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


def csv_values(name: str) -> list[str]:
    """A comma-separated query parameter as a list of trimmed, lower-cased values."""
    raw = request.args.get(name) or ""
    return [part.strip().lower() for part in raw.split(",") if part.strip()]


def flag(name: str, default: bool = False) -> bool:
    """A boolean query parameter."""
    raw = request.args.get(name)
    if raw is None:
        return default
    return raw.strip().lower() in ("true", "1", "yes")


def modified_since() -> int | None:
    """The If-Modified-Since header as epoch ms."""
    return parse_modified_since(request.headers.get("If-Modified-Since"))


def where_tree():
    """The parsed `where` parameter (None when absent); WhereError when unparseable."""
    text = request.args.get("where")
    return where_clause.parse(text) if text and text.strip() else None


def apply_where(records: list, tree, view) -> list:
    """Keep records whose view matches the where tree."""
    if tree is None:
        return records
    return [r for r in records if where_clause.matches(tree, view(r))]


def paging() -> tuple[int | None, int]:
    """(page or None, pageSize) from the query."""
    page = request.args.get("page")
    size = request.args.get("pageSize")
    try:
        page_number = max(1, int(page)) if page not in (None, "") else None
    except ValueError:
        page_number = 1
    try:
        page_size = min(MAX_PAGE_SIZE, max(1, int(size))) if size else PAGE_SIZE
    except ValueError:
        page_size = PAGE_SIZE
    return page_number, page_size


def paginate(records: list, page: int | None, size: int) -> tuple[list, dict | None]:
    """Slice one page; returns (records, pagination block or None when unpaged)."""
    if page is None:
        return records, None
    count = len(records)
    start = (page - 1) * size
    pages = (count + size - 1) // size
    return records[start : start + size], {
        "page": page,
        "pageSize": size,
        "pageCount": pages,
        "itemCount": count,
    }


def invoice_view(org, record: dict) -> dict:
    """What `where` can see of an invoice or credit note."""
    contact = org.contacts.get(record.get("ContactID") or "") or {}
    view = {k: v for k, v in record.items() if not isinstance(v, list | dict)}
    view["Contact"] = {
        "ContactID": contact.get("ContactID"),
        "Name": contact.get("Name"),
        "ContactNumber": contact.get("ContactNumber"),
    }
    view["RemainingCredit"] = record.get("AmountDue")
    view["UpdatedDateUTC"] = record.get("UpdatedMs")
    return view


def contact_view(record: dict) -> dict:
    """What `where` can see of a contact."""
    return {k: v for k, v in record.items() if not isinstance(v, list | dict)}


def payment_view(org, record: dict) -> dict:
    """What `where` can see of a payment."""
    view = dict(record)
    invoice = org.invoices.get(record.get("InvoiceID") or "") or {}
    view["Invoice"] = {
        "InvoiceID": invoice.get("InvoiceID"),
        "InvoiceNumber": invoice.get("InvoiceNumber"),
        "Type": invoice.get("Type"),
    }
    return view
