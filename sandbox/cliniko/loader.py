"""Load arbitrary records into an account (for tests that need exact cases), filling what is left out."""

from .clock import iso
from .generator import STATUS_DESCRIPTIONS
from .money import invoice_totals, price_line
from .resources import RESOURCES, TABLES
from .state import Account

_ITEM_DERIVED = ("net_price", "total_including_tax", "discount_percentage", "discounted_amount", "tax_amount")
_TOTALS = ("total_amount", "net_amount", "tax_amount", "discounted_amount")


def _id_from_link(value) -> str | None:
    if isinstance(value, dict):
        url = (value.get("links") or {}).get("self")
        if isinstance(url, str) and url.rstrip("/"):
            return url.rstrip("/").rsplit("/", 1)[-1]
    return None


def normalise(account: Account, table: str, raw: dict, now_iso: str) -> dict:
    """A loaded record in stored form: string id, relations as `<x>_id`, timestamps and defaults filled in."""
    if not isinstance(raw, dict):
        raise ValueError(f"{table}: every record must be a JSON object")
    resource = RESOURCES[table]
    record = {k: v for k, v in raw.items() if k != "links"}
    for key, (fk, _target) in resource.relations.items():
        if key in record and not key.endswith("_id"):
            linked = _id_from_link(record.pop(key))
            record.setdefault(fk, linked)
    for key in resource.collections:
        record.pop(key, None)
    for key, value in list(record.items()):
        if (key == "id" or key.endswith("_id")) and isinstance(value, int) and not isinstance(value, bool):
            record[key] = str(value)
    record["id"] = str(record.get("id") or account.allocate_id())
    record.setdefault("created_at", now_iso)
    record.setdefault("updated_at", record["created_at"])
    for name in resource.hidden_unless_filtered:
        record.setdefault(name, None)
    if table == "invoices":
        record.setdefault("number", account.allocate_number())
        record.setdefault("issue_date", record["created_at"][:10])
        record.setdefault("status", 10)
        if record["status"] in STATUS_DESCRIPTIONS:
            record.setdefault("status_description", STATUS_DESCRIPTIONS[record["status"]])
        record.setdefault("closed_at", None)
    if table == "invoice_items" and "unit_price" in record:
        missing = [k for k in _ITEM_DERIVED if k not in record]
        if missing:
            monetary = bool(record.get("is_monetary_discount"))
            discount = record.get("discounted_amount") if monetary else record.get("discount_percentage")
            computed = price_line(
                record["unit_price"],
                record.get("quantity", 1),
                record.get("tax_rate") or 0,
                discount,
                monetary,
            )
            for key in [*missing, "is_monetary_discount", "quantity"]:
                record.setdefault(key, computed[key])
    if table == "practitioners":
        record.setdefault("active", True)
    return record


def _mirror_concession_prices(account: Account, ids: list[str]) -> None:
    """Loaded concession prices become their billable item's prices (what invoice lines use); one per pair."""
    table = account.tables["concession_prices"]
    for record_id in ids:
        record = table[record_id]
        pair = (record.get("billable_item_id"), record.get("concession_type_id"))
        for other in [r for r in table.values() if r["id"] != record_id]:
            if (other.get("billable_item_id"), other.get("concession_type_id")) == pair:
                del table[other["id"]]
        item = account.tables["billable_items"].get(pair[0] or "")
        if item is not None and pair[1] is not None and record.get("price") is not None:
            item.setdefault("_concession_prices", {})[pair[1]] = record["price"]


def load(account: Account, payload: dict, now) -> dict:
    """Store the records of `payload` (`{table: [records]}`, optional `replace` and `settings`)."""
    unknown = set(payload) - set(TABLES) - {"replace", "settings", "api_key"}
    if unknown:
        raise ValueError(f"unknown collection(s): {', '.join(sorted(unknown))}")
    now_iso = iso(now)
    if payload.get("replace"):
        for name in TABLES:
            account.tables[name].clear()
        account.reindex()
    if isinstance(payload.get("settings"), dict):
        account.settings = payload["settings"]
    loaded: dict[str, list[str]] = {}
    new_invoices: list[tuple[dict, set[str]]] = []
    for table in TABLES:
        rows = payload.get(table) or []
        if not isinstance(rows, list):
            raise ValueError(f"{table} must be a list")
        for raw in rows:
            record = normalise(account, table, raw, now_iso)
            account.add(table, record)
            loaded.setdefault(table, []).append(record["id"])
            if table == "invoices" and not all(k in raw for k in _TOTALS):
                new_invoices.append((record, {k for k in _TOTALS if k not in raw}))
    _mirror_concession_prices(account, loaded.get("concession_prices", []))
    account.sync_concession_prices(now_iso)
    for invoice, missing in new_invoices:
        items = [i for i in account.items_of(invoice["id"]) if not i.get("deleted_at")]
        totals = invoice_totals(items)
        for key in missing:
            invoice[key] = totals[key]
    account.reindex()
    return {"loaded": {k: len(v) for k, v in loaded.items()}, "ids": loaded}
