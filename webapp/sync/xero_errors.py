"""Xero's validation messages and the clients' typed errors → error category, plain reason and suggested fix."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from webapp.clients.errors import (
    AmbiguousError,
    AuthError,
    BadResponseError,
    BudgetExhaustedError,
    ClientError,
    ConfigurationError,
    NetworkError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    TransientError,
    UnexpectedStatusError,
    ValidationError,
)

GENERIC_FIX = "Read Xero's message above, correct the invoice in Cliniko or the setting in Xero, then re-queue the row."
REQUEUE = "then re-queue the row."


@dataclass(frozen=True)
class Explanation:
    """Why a Xero call failed, in plain words: category, reason, suggested fix, and Xero's own messages."""

    category: str
    reason: str
    fix: str
    messages: list[str] = field(default_factory=list)
    outcome_unknown: bool = False
    retry_after: float | None = None
    known: bool = True


@dataclass(frozen=True)
class KnownMessage:
    """One row of the table: a pattern for Xero's text and what to tell people when it matches."""

    key: str
    pattern: re.Pattern
    category: str
    reason: str
    fix: str


def _m(key: str, pattern: str, category: str, reason: str, fix: str) -> KnownMessage:
    return KnownMessage(key, re.compile(pattern, re.IGNORECASE | re.DOTALL), category, reason, fix)


# Ordered most specific (and most actionable) first: when several messages come back, the first row that
# matches any of them explains the failure. Variable parts are captured and reused in the reason and fix.
KNOWN_MESSAGES: tuple[KnownMessage, ...] = (
    _m("allocated", r"^This document cannot be edited as it has a payment or credit note allocated to it\.?$",
       "conflict", "The invoice is paid (or has a credit note allocated) in Xero, so Xero will not change it.",
       "Remove the payment or credit note allocation in Xero, then re-queue the row; or leave Xero as it is and "
       "mark this row ignored."),
    _m("status_allocated", r"^The status (?P<status>\w+) cannot be applied to the invoice because it has payments",
       "conflict", "Xero cannot set the invoice to {status} because it has payments or credit notes allocated.",
       "Remove the payments or allocations in Xero first, " + REQUEUE),
    _m("paid_line", r"^To update fields on a paid invoice line item, you must supply a LineItemID",
       "conflict", "The invoice is already paid in Xero, so its lines cannot be replaced.",
       "Remove the payment in Xero if the invoice must change, " + REQUEUE),
    _m("not_modifiable", r"^Invoice not of valid status for modification\.?$", "conflict",
       "Xero will not change the invoice in its current state (it is paid, voided or deleted there).",
       "Check the invoice in Xero: remove its payments if it must change, or mark this row ignored."),
    _m("period_lock",
       r"^The document date cannot be before the period lock date, currently set at (?P<date>[^.]+?)\.?$",
       "validation", "The invoice date is before the Xero lock date ({date}).",
       "Ask your accountant to move the lock date in Xero (Settings → Advanced → Financial settings), or change "
       "the invoice date in Cliniko, " + REQUEUE),
    _m("year_lock",
       r"^The document date cannot be before the end of year lock date, currently set at (?P<date>[^.]+?)\.?$",
       "validation", "The invoice date is before the Xero end-of-year lock date ({date}).",
       "Ask your accountant to move the end-of-year lock date in Xero (Settings → Advanced → Financial settings), "
       "or change the invoice date in Cliniko, " + REQUEUE),
    _m("tax_vs_account", r"^The TaxType code '(?P<tax>[^']*)' cannot be used with account code '(?P<code>[^']*)'\.?$",
       "mapping", "Xero does not allow tax rate {tax} on account {code}.",
       "In Mappings, choose a tax rate that suits account {code} (or a different account for this item), "
       + REQUEUE),
    _m("tax_missing", r"^The TaxType code '?(?P<tax>[^' ]*)'? does not exist or cannot be used for this type of "
       r"transaction\.?$", "mapping", "Xero has no usable tax rate {tax} (it is archived, deleted or not for sales).",
       "Choose an active sales tax rate instead of {tax} in Mappings (or the tax-exempt rate in Settings), " + REQUEUE),
    _m("account_removed", r"^Account code '(?P<code>[^']*)' has been removed as it does not match a recognised account",
       "mapping", "Xero does not recognise account code {code}.",
       "Choose an active account for {code} in Mappings (or the defaults in Settings), " + REQUEUE),
    _m("account_invalid", r"^Account code (?P<code>\S+) is not a valid code for this document\.?$", "mapping",
       "Account {code} cannot be used on this document in Xero (it is archived, deleted, or a bank account).",
       "Choose an active account for {code} in Mappings (or the defaults in Settings), " + REQUEUE),
    _m("account_archived", r"^Account code has been archived or deleted\.?$", "mapping",
       "An account used on the invoice has been archived or deleted in Xero.",
       "Choose an active account for the item in Mappings (or the defaults in Settings), " + REQUEUE),
    _m("payment_account_missing", r"^You must specify an Account code or Account ID for the payment", "mapping",
       "The payment has no account to go to.", "Choose a default payment account in Settings, " + REQUEUE),
    _m("account_required", r"^Account code must be specified\.?$", "mapping", "A line has no account.",
       "Choose a default sales account in Settings, " + REQUEUE),
    _m("account_must_be_valid", r"^Account must be valid\.?$", "mapping",
       "An account on the invoice is not valid in Xero.",
       "Choose an active account in Mappings (or the defaults in Settings), " + REQUEUE),
    _m("tax_must_be_valid", r"^Tax rate must be valid\.?$", "mapping",
       "A tax rate on the invoice is not valid in Xero.",
       "Choose an active tax rate in Mappings (or the tax-exempt rate in Settings), " + REQUEUE),
    _m("tracking", r"^The tracking (category|option) '(?P<name>[^']*)' (does not exist|is archived)", "mapping",
       "The tracking {1} '{name}' is no longer active in Xero.",
       "Choose an active tracking option in Mappings (and refresh Xero's settings), " + REQUEUE),
    _m("item_code", r"^Item code '(?P<code>[^']*)' is not valid", "mapping", "Xero has no item with code '{code}'.",
       "Remove the item code or create the item in Xero, " + REQUEUE),
    _m("contact_archived", r"^The contact with the specified contact details has been archived", "validation",
       "The patient's contact is archived in Xero, so no invoices can be made for it.",
       "Un-archive the contact in Xero (Contacts → Archived), " + REQUEUE),
    _m("contact_name_taken", r"^The contact name (?P<name>.+?) is already assigned to another contact", "conflict",
       "Another Xero contact already has the name {name}.",
       "The sync adds the contact number to the name to tell them apart; if this persists, rename or archive "
       "the other contact in Xero, " + REQUEUE),
    _m("contact_number_taken", r"^The contact number (?P<number>.+?) is already assigned to another contact",
       "conflict", "Another Xero contact (possibly archived) already uses contact number {number}.",
       "Un-archive that contact in Xero so the sync can adopt it, or change the contact number prefix in "
       "Settings, " + REQUEUE),
    _m("contact_missing", r"^The Contact must contain at least 1 of the following elements", "validation",
       "The invoice was sent without a contact.", "Check the invoice's patient in Cliniko, " + REQUEUE),
    _m("approval_limit", r"reached the limit of .*approve", "validation",
       "Your Xero plan's limit on approved invoices has been reached.",
       "Upgrade the Xero plan (or wait for the limit to reset), or set the invoice status to DRAFT in Settings, "
       + REQUEUE),
    _m("overpayment", r"^Payment amount exceeds the amount (outstanding on this document|due on this invoice)",
       "conflict", "The payment is more than what is still owing on the invoice in Xero; part of it is probably "
       "already paid there.", "Check the invoice's payments in Xero; remove the duplicate payment there, or mark "
       "this row ignored."),
    _m("not_authorised", r"^Payments can only be made against Authorised documents\.?$", "conflict",
       "Xero only takes payments on approved invoices, and this invoice is not approved in Xero (it is a draft, "
       "or already paid, voided or deleted).",
       "Approve the invoice in Xero (or set the invoice status to AUTHORISED in Settings), then re-queue the row; "
       "if it is already paid or voided in Xero, mark this row ignored."),
    _m("duplicate_number", r"^Invoice # must be unique\.?$", "conflict",
       "Xero already has an invoice with this number.",
       "If it is this invoice the sync adopts it; otherwise void or renumber the other invoice in Xero, or set an "
       "invoice number prefix in Settings, " + REQUEUE),
    _m("not_found", r"^The document with the supplied id was not found for this endpoint", "conflict",
       "Xero no longer has the document this refers to (it may have been deleted in Xero).",
       "Check the invoice in Xero; re-queue the invoice row to create it again."),
    _m("not_creatable", r"^Invoice not of valid status for creation", "validation",
       "Xero refused to create the invoice with that status.",
       "Set the invoice status to AUTHORISED or DRAFT in Settings, " + REQUEUE),
    _m("email", r"^Email address must be valid", "validation", "The patient's email address is not valid for Xero.",
       "Correct the patient's email in Cliniko, or choose 'name only' contact details in Settings, " + REQUEUE),
    _m("idempotency", r"Idempotency.?Key.*different request", "transient",
       "Xero matched a retry to a different earlier request.", "The next attempt uses a fresh key; nothing to do."),
)


def messages_of(element: Any) -> list[str]:
    """The `ValidationErrors[].Message` texts of a Xero element (invoice, payment or contact) from a response."""
    if not isinstance(element, dict):
        return []
    return [str(e.get("Message")) for e in element.get("ValidationErrors") or []
            if isinstance(e, dict) and e.get("Message")]


def _fill(template: str, match: re.Match) -> str:
    groups = {k: v for k, v in match.groupdict().items() if v is not None}
    positional = ("",) + match.groups()
    try:
        return template.format(*positional, **groups)
    except (IndexError, KeyError):
        return template


def explain_messages(messages: list[str]) -> Explanation:
    """Explain Xero's validation messages with the most specific known row; unknown ones pass through verbatim."""
    texts = [" ".join(str(m).split()) for m in messages or [] if str(m or "").strip()]
    for known in KNOWN_MESSAGES:
        for text in texts:
            match = known.pattern.search(text)
            if match:
                return Explanation(known.category, _fill(known.reason, match), _fill(known.fix, match), texts)
    if not texts:
        return Explanation("validation", "Xero refused the request without saying why.", GENERIC_FIX, [], known=False)
    return Explanation("validation", "; ".join(texts), GENERIC_FIX, texts, known=False)


def _is_cliniko(exc: ClientError) -> bool:
    url = exc.call.url if exc.call else ""
    return "cliniko" in (url or "").lower()


def explain_exception(exc: BaseException) -> Explanation:
    """Explain an error raised by the Xero or Cliniko client (or anything else) for the job row."""
    if isinstance(exc, ValidationError):
        explained = explain_messages(exc.messages or [exc.message])
        return explained
    message = str(exc)
    if isinstance(exc, AuthError):
        if _is_cliniko(exc):
            return Explanation("auth", "Cliniko refused the practice's API key (it may have been revoked or lack "
                               "access).", "Paste a valid Cliniko API key on the practice page; the rows are "
                               "re-queued afterwards.", [message])
        return Explanation("auth", "Xero refused our access to this organisation (the connection was revoked or "
                           "has expired).", "Reconnect Xero for this practice (Practice → Connect to Xero); the "
                           "rows are re-queued afterwards.", [message])
    if isinstance(exc, RateLimitedError):
        who = "Our shared call budget" if isinstance(exc, BudgetExhaustedError) else "The provider's rate limit"
        scope = f" ({exc.problem} limit)" if exc.problem else ""
        wait = f"; retrying in about {int(exc.retry_after)} s" if exc.retry_after else ""
        return Explanation("transient", f"{who} was reached{scope}{wait}.",
                           "Nothing to do: the row is retried automatically.", [message],
                           retry_after=exc.retry_after)
    if isinstance(exc, AmbiguousError):
        return Explanation("transient", "The request was sent but no answer came back, so it may have been saved.",
                           "Nothing to do: before sending again the sync checks Xero for it.", [message],
                           outcome_unknown=True)
    if isinstance(exc, ServerError):
        status = f" ({exc.status})" if exc.status else ""
        return Explanation("transient", f"The provider had a server error{status}.",
                           "Nothing to do: the row is retried automatically.", [message])
    if isinstance(exc, BadResponseError):
        return Explanation("transient", "The provider sent an answer that was not what its API returns.",
                           "Nothing to do: the row is retried automatically.", [message])
    if isinstance(exc, NetworkError):
        return Explanation("transient", "The provider could not be reached (network error or timeout).",
                           "Nothing to do: the row is retried automatically.", [message])
    if isinstance(exc, TransientError):
        return Explanation("transient", message or "A temporary error.", "Nothing to do: the row is retried "
                           "automatically.", [message])
    if isinstance(exc, NotFoundError):
        return Explanation("conflict", "The record was not found (it may have been deleted).",
                           "Check the record in Xero and Cliniko, " + REQUEUE, [message])
    if isinstance(exc, ConfigurationError):
        return Explanation("validation", f"The connection settings are not usable: {message}",
                           "Correct the practice's connection settings, " + REQUEUE, [message])
    if isinstance(exc, UnexpectedStatusError):
        status = f" (HTTP {exc.status})" if exc.status else ""
        return Explanation("validation", f"The request was refused{status}: {message}", GENERIC_FIX, [message],
                           known=False)
    # Anything else is our own bug or an unforeseen condition: retried a bounded number of times, then failed.
    return Explanation("transient", f"Unexpected error: {type(exc).__name__}: {message}",
                       "If it keeps happening, report it with this row's details.", [message], known=False)
