"""In-memory state of the emulator (organisations and identity), with optional JSON persistence."""

import copy
import json
import logging
import os
import tempfile
import threading

from sandbox.xero import fixtures

logger = logging.getLogger(__name__)

STATE_VERSION = 1


class Org:
    """One organisation (tenant): its records plus look-up indices rebuilt from them."""

    def __init__(self, data: dict) -> None:
        self.data = data
        self.reindex()

    # -- identity -------------------------------------------------------------------------------
    @property
    def tenant_id(self) -> str:
        """The tenant id clients send in `xero-tenant-id`."""
        return self.data["tenant_id"]

    @property
    def name(self) -> str:
        """The organisation's name."""
        return self.data["name"]

    @property
    def contacts(self) -> dict:
        """Contacts by ContactID."""
        return self.data["contacts"]

    @property
    def invoices(self) -> dict:
        """Invoices by InvoiceID."""
        return self.data["invoices"]

    @property
    def credit_notes(self) -> dict:
        """Credit notes by CreditNoteID."""
        return self.data["credit_notes"]

    @property
    def payments(self) -> dict:
        """Payments by PaymentID."""
        return self.data["payments"]

    # -- indices --------------------------------------------------------------------------------
    def reindex(self) -> None:
        """Rebuild the look-up indices from the records."""
        self.accounts_by_code = {a["Code"].upper(): a for a in self.data["accounts"] if a.get("Code")}
        self.accounts_by_id = {a["AccountID"].lower(): a for a in self.data["accounts"]}
        self.tax_rates_by_type = {t["TaxType"].upper(): t for t in self.data["tax_rates"]}
        self.invoice_numbers: dict[str, str] = {}
        for invoice in self.invoices.values():
            self.index_invoice(invoice)
        self.credit_note_numbers: dict[str, str] = {}
        for note in self.credit_notes.values():
            self.index_credit_note(note)
        self.contact_names: dict[str, str] = {}
        self.contact_numbers: dict[str, str] = {}
        for contact in self.contacts.values():
            self.index_contact(contact)

    def index_invoice(self, invoice: dict) -> None:
        """Record an ACCREC invoice number as taken (deleted and voided ones included)."""
        if invoice["Type"] == "ACCREC" and invoice.get("InvoiceNumber"):
            self.invoice_numbers[invoice["InvoiceNumber"].strip().lower()] = invoice["InvoiceID"]

    def unindex_invoice(self, invoice: dict) -> None:
        """Forget an invoice's number (used when the number changes)."""
        key = (invoice.get("InvoiceNumber") or "").strip().lower()
        if self.invoice_numbers.get(key) == invoice["InvoiceID"]:
            del self.invoice_numbers[key]

    def index_credit_note(self, note: dict) -> None:
        """Record a credit note number."""
        if note.get("CreditNoteNumber"):
            self.credit_note_numbers[note["CreditNoteNumber"].strip().lower()] = note["CreditNoteID"]

    def index_contact(self, contact: dict) -> None:
        """Index a contact's active name and (any status) number."""
        if contact.get("ContactStatus") == "ACTIVE" and contact.get("Name"):
            self.contact_names[contact["Name"].strip().lower()] = contact["ContactID"]
        if contact.get("ContactNumber"):
            self.contact_numbers[contact["ContactNumber"].strip().lower()] = contact["ContactID"]

    def unindex_contact(self, contact: dict) -> None:
        """Remove a contact from the name/number indices."""
        name = (contact.get("Name") or "").strip().lower()
        if self.contact_names.get(name) == contact["ContactID"]:
            del self.contact_names[name]
        number = (contact.get("ContactNumber") or "").strip().lower()
        if self.contact_numbers.get(number) == contact["ContactID"]:
            del self.contact_numbers[number]

    # -- look-ups -------------------------------------------------------------------------------
    def account(self, code: str | None = None, account_id: str | None = None) -> dict | None:
        """Find an account by Code or AccountID."""
        if account_id:
            return self.accounts_by_id.get(str(account_id).lower())
        if code:
            return self.accounts_by_code.get(str(code).strip().upper())
        return None

    def tax_rate(self, tax_type: str) -> dict | None:
        """Find a tax rate by TaxType."""
        return self.tax_rates_by_type.get(str(tax_type).strip().upper())

    def invoice_by_number(self, number: str) -> dict | None:
        """Find an ACCREC invoice by number (case-insensitive)."""
        invoice_id = self.invoice_numbers.get(str(number).strip().lower())
        return self.invoices.get(invoice_id) if invoice_id else None

    def find_invoice(self, key: str) -> dict | None:
        """Find an invoice by InvoiceID or InvoiceNumber."""
        return self.invoices.get(str(key).lower()) or self.invoice_by_number(key)

    def find_credit_note(self, key: str) -> dict | None:
        """Find a credit note by CreditNoteID or CreditNoteNumber."""
        found = self.credit_notes.get(str(key).lower())
        if found:
            return found
        note_id = self.credit_note_numbers.get(str(key).strip().lower())
        return self.credit_notes.get(note_id) if note_id else None

    def contact_by_name(self, name: str) -> dict | None:
        """The active contact with this name."""
        contact_id = self.contact_names.get(str(name).strip().lower())
        return self.contacts.get(contact_id) if contact_id else None

    def contact_by_number(self, number: str) -> dict | None:
        """The contact (any status) with this ContactNumber."""
        contact_id = self.contact_numbers.get(str(number).strip().lower())
        return self.contacts.get(contact_id) if contact_id else None

    def next_number(self, kind: str, prefix: str, taken: dict) -> str:
        """The next free auto-generated document number, e.g. INV-0001."""
        while True:
            self.data["sequences"][kind] += 1
            candidate = f"{prefix}{self.data['sequences'][kind]:04d}"
            if candidate.lower() not in taken:
                return candidate


class Store:
    """All emulator state behind one re-entrant lock; persisted to `data_file` when given."""

    def __init__(self, settings, clock) -> None:
        self.settings = settings
        self.clock = clock
        self.lock = threading.RLock()
        self.dirty = False
        self.orgs: dict[str, Org] = {}
        self.identity: dict = {}
        self._saver: threading.Thread | None = None
        self._stop = threading.Event()
        self.reset()
        if settings.data_file and os.path.exists(settings.data_file):
            self.load_file(settings.data_file)

    # -- lifecycle ------------------------------------------------------------------------------
    def reset(self) -> None:
        """Back to the fixtures: two organisations, no documents, no tokens."""
        with self.lock:
            orgs = fixtures.default_organisations(self.clock.now_ms())
            self.orgs = {tid: Org(data) for tid, data in orgs.items()}
            self.identity = fixtures.default_identity(self.settings)
            self.dirty = True

    def org(self, tenant_id: str | None) -> Org | None:
        """The organisation with this tenant id, if any."""
        if not tenant_id:
            return None
        return self.orgs.get(str(tenant_id).strip().lower())

    def default_org(self) -> Org:
        """The first (demo) organisation."""
        return next(iter(self.orgs.values()))

    def mark_dirty(self) -> None:
        """Note that state changed and should be saved."""
        self.dirty = True

    # -- snapshots ------------------------------------------------------------------------------
    def snapshot(self) -> dict:
        """A deep JSON-able copy of the whole state."""
        with self.lock:
            return copy.deepcopy(
                {
                    "version": STATE_VERSION,
                    "orgs": {tid: org.data for tid, org in self.orgs.items()},
                    "identity": self.identity,
                }
            )

    def restore(self, snapshot: dict) -> None:
        """Replace the whole state with a snapshot produced by `snapshot()`."""
        if snapshot.get("version") != STATE_VERSION:
            raise ValueError("unsupported sandbox state version")
        with self.lock:
            data = copy.deepcopy(snapshot)
            self.orgs = {tid.lower(): Org(org) for tid, org in data["orgs"].items()}
            self.identity = data["identity"]
            self.dirty = True

    def load_file(self, path: str) -> None:
        """Load state saved by `save_file`."""
        with open(path, encoding="utf-8") as handle:
            self.restore(json.load(handle))
        self.dirty = False
        logger.info("sandbox Xero state loaded from %s", path)

    def save_file(self, path: str | None = None) -> None:
        """Write the state atomically to `path` (default: data_file)."""
        path = path or self.settings.data_file
        if not path:
            return
        with self.lock:
            payload = json.dumps(self.snapshot())
            self.dirty = False
        directory = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".xero-sandbox-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(payload)
        os.replace(tmp, path)

    def start_autosave(self) -> None:
        """Save dirty state to data_file every `autosave_seconds` in a daemon thread."""
        if not self.settings.data_file or self._saver:
            return

        def loop() -> None:
            while not self._stop.wait(self.settings.autosave_seconds):
                if self.dirty:
                    try:
                        self.save_file()
                    except OSError:
                        logger.exception("could not save sandbox Xero state")

        self._saver = threading.Thread(target=loop, name="xero-sandbox-autosave", daemon=True)
        self._saver.start()

    def stop_autosave(self) -> None:
        """Stop the autosave thread and write a last time."""
        self._stop.set()
        if self.settings.data_file and self.dirty:
            self.save_file()
