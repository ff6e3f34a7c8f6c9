"""The emulator's in-memory state: accounts (one per API key), call counters, clock; optional JSON file."""

import hashlib
import json
import logging
import os
import re
import tempfile
import threading
from collections import Counter

from .clock import Clock
from .resources import TABLES

log = logging.getLogger(__name__)

SHARD_RE = re.compile(r"^\w{2}\d{1,2}$")
FIRST_ID = 480_000_000_000_000_000


def concession_price_id(billable_item_id: str, concession_type_id: str) -> str:
    """A stable id for a billable item's concession price (derived, so no id is taken from the counter)."""
    digest = hashlib.sha256(f"concession-price:{billable_item_id}:{concession_type_id}".encode()).digest()
    return str(5 * 10**18 + int.from_bytes(digest[:8], "big") % 10**18)


def split_key(key: str) -> tuple[str, str | None]:
    """An API key without its shard suffix, and the shard (`…-au2` → au2; none → None)."""
    base, sep, suffix = key.rpartition("-")
    if sep and base and SHARD_RE.match(suffix):
        return base, suffix.lower()
    return key, None


class Account:
    """One Cliniko account: its settings and tables of records (id → record), plus id/number counters."""

    def __init__(self, key: str, seed: int = 0, patients: int = 0, invoices: int = 0):
        self.key = key
        self.seed = seed
        self.params = {"seed": seed, "patients": patients, "invoices": invoices}
        self.settings: dict = {}
        self.tables: dict[str, dict[str, dict]] = {name: {} for name in TABLES}
        self.next_id = FIRST_ID + (seed % 10_000) * 10**12
        self.next_number = 1001
        self.activity_runs = 0
        self._item_index: dict[str, list[str]] = {}

    def allocate_id(self) -> str:
        """A new record id: a large, increasing integer, as a string (like Cliniko's int64 ids)."""
        value = self.next_id
        self.next_id += 1 + (value * 2654435761) % 9973
        return str(value)

    def allocate_number(self) -> int:
        """The next invoice number."""
        value = self.next_number
        self.next_number += 1
        return value

    def add(self, table: str, record: dict) -> dict:
        """Store a record (replacing one with the same id)."""
        self.tables[table][str(record["id"])] = record
        if table == "invoice_items" and record.get("invoice_id") is not None:
            self._item_index.setdefault(str(record["invoice_id"]), []).append(str(record["id"]))
        return record

    def records(self, table: str) -> list[dict]:
        """Every stored record of a table, hidden ones included."""
        return list(self.tables[table].values())

    def items_of(self, invoice_id: str) -> list[dict]:
        """The stored items of one invoice (deleted ones included)."""
        table = self.tables["invoice_items"]
        ids = dict.fromkeys(self._item_index.get(str(invoice_id), ()))
        return [table[i] for i in ids if i in table and table[i].get("invoice_id") == invoice_id]

    def reindex(self) -> None:
        """Rebuild the invoice → items index (after records were replaced wholesale)."""
        self._item_index = {}
        for item in self.tables["invoice_items"].values():
            if item.get("invoice_id") is not None:
                self._item_index.setdefault(str(item["invoice_id"]), []).append(str(item["id"]))

    def sync_concession_prices(self, stamp: str | None = None) -> list[str]:
        """Store a concession price record for every billable item's `_concession_prices` entry.

        The billable items' maps stay the source of prices (invoice lines use them); a missing record is
        created with a derived id, and a changed price updates the record. Returns the ids created or changed.
        """
        table = self.tables["concession_prices"]
        by_pair = {(r.get("billable_item_id"), r.get("concession_type_id")): r for r in table.values()}
        touched = []
        for item in self.tables["billable_items"].values():
            for type_id, price in (item.get("_concession_prices") or {}).items():
                record = by_pair.get((item["id"], type_id))
                if record is None:
                    concession = self.tables["concession_types"].get(type_id) or {}
                    created = max(item.get("created_at") or "", concession.get("created_at") or "")
                    record = {
                        "id": concession_price_id(item["id"], type_id),
                        "created_at": created,
                        "updated_at": created,
                        "billable_item_id": item["id"],
                        "concession_type_id": type_id,
                        "price": price,
                    }
                    self.add("concession_prices", record)
                    touched.append(record["id"])
                elif record.get("price") != price:
                    record["price"] = price
                    if stamp:
                        record["updated_at"] = stamp
                    touched.append(record["id"])
        return touched

    def to_json(self) -> dict:
        """The account as JSON (for the data file)."""
        return {
            "key": self.key,
            "params": self.params,
            "settings": self.settings,
            "tables": self.tables,
            "next_id": self.next_id,
            "next_number": self.next_number,
            "activity_runs": self.activity_runs,
        }

    @classmethod
    def from_json(cls, data: dict) -> "Account":
        """An account read back from `to_json`."""
        params = data.get("params", {})
        account = cls(data["key"], **{k: params.get(k, 0) for k in ("seed", "patients", "invoices")})
        account.settings = data.get("settings", {})
        for name in TABLES:
            account.tables[name] = dict(data.get("tables", {}).get(name, {}))
        account.next_id = data.get("next_id", account.next_id)
        account.next_number = data.get("next_number", account.next_number)
        account.activity_runs = data.get("activity_runs", 0)
        account.reindex()
        account.sync_concession_prices()  # data files written before concession prices were served
        return account

    def counts(self) -> dict:
        """Per table: total, archived and deleted records; invoices also by status."""
        out: dict = {}
        for name, table in self.tables.items():
            rows = table.values()
            out[name] = {
                "total": len(table),
                "archived": sum(1 for r in rows if r.get("archived_at")),
                "deleted": sum(1 for r in rows if r.get("deleted_at")),
            }
        live = [r for r in self.tables["invoices"].values() if not r.get("deleted_at")]
        out["invoices"]["by_status"] = {
            str(k): v for k, v in sorted(Counter(r.get("status") for r in live).items(), key=lambda kv: str(kv[0]))
        }
        return out


class SandboxState:
    """Everything the emulator holds, behind one re-entrant lock (handlers run on many threads)."""

    def __init__(self, clock: Clock, data_file: str | None = None):
        self.lock = threading.RLock()
        self.clock = clock
        self.data_file = data_file
        self.accounts: dict[str, Account] = {}
        self.primary_key: str | None = None
        self.calls: Counter = Counter()
        self.rate_limited: Counter = Counter()

    def account_for(self, key: str | None) -> Account | None:
        """The account an API key (with or without its shard suffix) opens, or None."""
        if not key:
            return None
        return self.accounts.get(split_key(key)[0])

    def put_account(self, account: Account, primary: bool = False) -> None:
        """Add or replace an account."""
        with self.lock:
            self.accounts[split_key(account.key)[0]] = account
            if primary or self.primary_key is None:
                self.primary_key = account.key

    def primary(self) -> Account:
        """The account of the key the emulator was started with."""
        return self.account_for(self.primary_key)

    def reset_counters(self) -> None:
        """Zero the per-key call counters."""
        with self.lock:
            self.calls.clear()
            self.rate_limited.clear()

    def save(self) -> None:
        """Write the accounts and clock to the data file, atomically (no-op without a file)."""
        if not self.data_file:
            return
        with self.lock:
            payload = {
                "version": 1,
                "clock": self.clock.to_json(),
                "primary_key": self.primary_key,
                "accounts": [a.to_json() for a in self.accounts.values()],
            }
            directory = os.path.dirname(os.path.abspath(self.data_file))
            fd, tmp = tempfile.mkstemp(prefix=".cliniko-", suffix=".json", dir=directory)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(payload, fh, ensure_ascii=False)
            os.replace(tmp, self.data_file)

    def load(self) -> bool:
        """Read accounts and clock back from the data file; False when there is none."""
        if not self.data_file or not os.path.exists(self.data_file):
            return False
        with open(self.data_file, encoding="utf-8") as fh:
            payload = json.load(fh)
        with self.lock:
            self.accounts.clear()
            for data in payload.get("accounts", []):
                self.put_account(Account.from_json(data))
            self.primary_key = payload.get("primary_key") or self.primary_key
            clock = payload.get("clock") or {}
            if clock.get("frozen"):
                self.clock.set(clock["now"], frozen=True)
        log.info("loaded Cliniko sandbox data from %s", self.data_file)
        return True
