"""Per-element outcomes of Xero batch writes, matched back to the request by natural key."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .errors import CallRecord

#: Collection name → (natural key field, Xero id field).
KEYS = {
    "Contacts": ("ContactNumber", "ContactID"),
    "Invoices": ("InvoiceNumber", "InvoiceID"),
    "Payments": ("Reference", "PaymentID"),
}
_NIL_UUID = "00000000-0000-0000-0000-000000000000"


@dataclass(frozen=True)
class ElementOutcome:
    """One element's result: ok with its Xero id, or the validation messages Xero gave."""

    key: str | None
    ok: bool
    xero_id: str | None
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    #: Xero said OK but returned no id: it may or may not exist; reconcile before re-sending.
    ambiguous: bool = False
    element: dict = field(default_factory=dict, compare=False, repr=False)


@dataclass
class BatchResult:
    """All outcomes of one batch call, by natural key; never rely on element order."""

    collection: str
    outcomes: dict[str, ElementOutcome]
    call: CallRecord | None
    #: Keys that were sent but did not come back (treat as unknown: reconcile).
    missing: list[str] = field(default_factory=list)
    #: Returned elements whose key matched nothing that was sent.
    unmatched: list[ElementOutcome] = field(default_factory=list)
    envelope_id: str | None = None

    def __getitem__(self, key: str) -> ElementOutcome:
        return self.outcomes[key]

    def __contains__(self, key: object) -> bool:
        return key in self.outcomes

    @property
    def succeeded(self) -> dict[str, ElementOutcome]:
        """Outcomes that are ok."""
        return {k: o for k, o in self.outcomes.items() if o.ok}

    @property
    def failed(self) -> dict[str, ElementOutcome]:
        """Outcomes with validation errors (or an ambiguous missing id)."""
        return {k: o for k, o in self.outcomes.items() if not o.ok}


def _messages(items: Any) -> tuple[str, ...]:
    if not isinstance(items, list):
        return ()
    return tuple(str(i.get("Message")) for i in items if isinstance(i, dict) and i.get("Message"))


def element_key(collection: str, element: dict) -> str | None:
    """The natural key of a request element, or its Xero id when it has no natural key (updates)."""
    natural, id_field = KEYS[collection]
    for name in (natural, id_field):
        value = element.get(name)
        if value not in (None, ""):
            return str(value)
    return None


def outcome_of(collection: str, element: dict, key: str | None = None) -> ElementOutcome:
    """Read one returned element: errors from `ValidationErrors`/`StatusAttributeString`, id, warnings."""
    natural, id_field = KEYS[collection]
    errors = _messages(element.get("ValidationErrors"))
    status = str(element.get("StatusAttributeString") or "").upper()
    failed = bool(errors) or status == "ERROR" or element.get("HasValidationErrors") is True \
        or element.get("HasErrors") is True
    if failed and not errors:
        errors = ("Xero marked this element as an error without a message.",)
    xero_id = element.get(id_field)
    xero_id = None if xero_id in (None, "", _NIL_UUID) else str(xero_id)
    ambiguous = not failed and xero_id is None
    if ambiguous:
        errors = (f"Xero reported success but returned no {id_field}.",)
    return ElementOutcome(
        key=key if key is not None else (str(element[natural]) if element.get(natural) else None),
        ok=not failed and not ambiguous,
        xero_id=xero_id,
        errors=errors,
        warnings=_messages(element.get("Warnings")),
        ambiguous=ambiguous,
        element=element,
    )


def sent_keys(collection: str, elements: Iterable[dict]) -> list[str]:
    """Keys of the elements about to be sent; each must have one, and no two may share one."""
    natural, id_field = KEYS[collection]
    keys: list[str] = []
    for element in elements:
        key = element_key(collection, element)
        if key is None:
            raise ValueError(f"every {collection} element needs {natural} (or {id_field}) to match results")
        keys.append(key)
    if len(set(keys)) != len(keys):
        raise ValueError(f"duplicate {natural} in one batch: results could not be matched back")
    return keys


def match(collection: str, keys: list[str], returned: list[Any], call: CallRecord | None,
          envelope_id: str | None = None) -> BatchResult:
    """Match returned elements to the sent keys by natural key (or id), never by position."""
    natural, id_field = KEYS[collection]
    wanted = set(keys)
    outcomes: dict[str, ElementOutcome] = {}
    unmatched: list[ElementOutcome] = []
    for element in returned:
        if not isinstance(element, dict):
            continue
        key = next((str(element[n]) for n in (natural, id_field)
                    if element.get(n) not in (None, "") and str(element[n]) in wanted), None)
        outcome = outcome_of(collection, element, key)
        if key is None or key in outcomes:
            unmatched.append(outcome)
        else:
            outcomes[key] = outcome
    missing = [k for k in keys if k not in outcomes]
    return BatchResult(collection, outcomes, call, missing=missing, unmatched=unmatched,
                       envelope_id=envelope_id)
