"""Xero's messages and the clients' errors → the category, plain reason and fix a person sees on the row."""

import pytest

from webapp.clients.errors import (
    AmbiguousError,
    AuthError,
    BadResponseError,
    BudgetExhaustedError,
    CallRecord,
    ErrorPageError,
    NetworkError,
    NotFoundError,
    NotSentError,
    RateLimitedError,
    ServerError,
    UnexpectedStatusError,
    ValidationError,
)
from webapp.sync.xero_errors import GENERIC_FIX, explain_exception, explain_messages, messages_of

# (message exactly as Xero sends it, category, words the reason must contain, words the fix must contain)
KNOWN = [
    ("Invoice # must be unique.", "conflict", ["already has an invoice"], ["prefix"]),
    ("The document date cannot be before the period lock date, currently set at 30-Nov-2018", "validation",
     ["The invoice date is before the Xero lock date (30-Nov-2018)."], ["accountant", "lock date", "Cliniko"]),
    ("The document date cannot be before the end of year lock date, currently set at 30-Nov-2018", "validation",
     ["end-of-year lock date (30-Nov-2018)"], ["accountant"]),
    ("Account code '476' has been removed as it does not match a recognised account.", "mapping",
     ["476"], ["Choose an active account", "Mappings"]),
    ("Account code 250 is not a valid code for this document.", "mapping", ["Account 250"],
     ["Choose an active account for 250 in Mappings"]),
    ("Account code has been archived or deleted", "mapping", ["archived or deleted"], ["Mappings"]),
    ("Account must be valid.", "mapping", ["account"], ["Mappings"]),
    ("Tax rate must be valid.", "mapping", ["tax rate"], ["Mappings"]),
    ("The TaxType code 'OUTPUT' cannot be used with account code '610'.", "mapping",
     ["tax rate OUTPUT on account 610"], ["suits account 610"]),
    ("The TaxType code TAX001 does not exist or cannot be used for this type of transaction.", "mapping",
     ["TAX001"], ["instead of TAX001"]),
    ("Payments can only be made against Authorised documents.", "conflict", ["not approved"], ["Approve"]),
    ("Payment amount exceeds the amount outstanding on this document", "conflict", ["more than what is still owing"],
     ["payments in Xero"]),
    ("The document with the supplied id was not found for this endpoint.", "conflict", ["no longer has"], ["Xero"]),
    ("The contact name Buzz Lightyear is already assigned to another contact. The contact name must be unique "
     "across all active contacts.", "conflict", ["Another Xero contact already has the name Buzz Lightyear."],
     ["contact number"]),
    ("The contact with the specified contact details has been archived. The contact must be un-archived before "
     "creating new invoices or credit notes.", "validation", ["archived"], ["Un-archive the contact in Xero"]),
    ("Invoice not of valid status for modification", "conflict", ["will not change"], ["payments"]),
    ("This document cannot be edited as it has a payment or credit note allocated to it.", "conflict",
     ["paid"], ["Remove the payment"]),
    ("The status SUBMITTED cannot be applied to the invoice because it has payments or credit notes allocated to "
     "it.", "conflict", ["SUBMITTED"], ["Remove"]),
    ("To update fields on a paid invoice line item, you must supply a LineItemID", "conflict", ["paid"], ["payment"]),
    ("Item code 'X' is not valid", "mapping", ["'X'"], ["item"]),
    ("You have reached the limit of invoices you can approve", "validation", ["limit"], ["DRAFT"]),
    ("The Contact must contain at least 1 of the following elements to identify the contact: Name, ContactID, "
     "ContactNumber", "validation", ["without a contact"], ["patient"]),
    ("The tracking option 'Bondi (closed)' is archived and cannot be used.", "mapping",
     ["tracking option 'Bondi (closed)'"], ["tracking option"]),
    ("The tracking category 'Region' does not exist.", "mapping", ["tracking category 'Region'"], ["Mappings"]),
    ("You must specify an Account code or Account ID for the payment", "mapping", ["no account"],
     ["payment account"]),
    ("Account code must be specified", "mapping", ["no account"], ["sales account"]),
    ("The contact number CLK-1 is already assigned to another contact. The contact number must be unique across "
     "all contacts", "conflict", ["CLK-1"], ["Un-archive"]),
    ("Invoice not of valid status for creation", "validation", ["status"], ["AUTHORISED"]),
    ("Email address must be valid.", "validation", ["email"], ["Cliniko"]),
]


@pytest.mark.parametrize(("message", "category", "reason_words", "fix_words"), KNOWN, ids=[k[0][:40] for k in KNOWN])
def test_known_message(message, category, reason_words, fix_words):
    explained = explain_messages([message])
    assert explained.category == category
    assert explained.known
    for word in reason_words:
        assert word in explained.reason
    for word in fix_words:
        assert word in explained.fix
    assert explained.messages == [message]
    assert "{" not in explained.reason + explained.fix  # every placeholder was filled


def test_lock_date_captures_other_dates():
    explained = explain_messages(["The document date cannot be before the period lock date, currently set at "
                                  "31-Mar-2026."])
    assert explained.reason == "The invoice date is before the Xero lock date (31-Mar-2026)."


def test_unknown_messages_pass_through_verbatim():
    explained = explain_messages(["Something new went wrong.", "And another thing"])
    assert explained.category == "validation"
    assert explained.reason == "Something new went wrong.; And another thing"
    assert explained.fix == GENERIC_FIX
    assert not explained.known


def test_no_messages():
    explained = explain_messages([])
    assert explained.category == "validation" and "without saying why" in explained.reason


def test_most_specific_message_wins():
    explained = explain_messages(["Something unknown", "Account must be valid.",
                                  "The TaxType code 'OUTPUT' cannot be used with account code '610'."])
    assert explained.reason == "Xero does not allow tax rate OUTPUT on account 610."
    assert len(explained.messages) == 3
    conflict = explain_messages(["Account must be valid.",
                                 "This document cannot be edited as it has a payment or credit note allocated to it."])
    assert conflict.category == "conflict"


def test_whitespace_differences_still_match():
    assert explain_messages(["  Invoice #  must be unique. "]).known


def test_messages_of_element():
    element = {"StatusAttributeString": "ERROR", "ValidationErrors": [{"Message": "Invoice # must be unique."}, {}]}
    assert messages_of(element) == ["Invoice # must be unique."]
    assert messages_of(None) == [] and messages_of({"ValidationErrors": None}) == []


def test_validation_error_goes_through_the_table():
    exc = ValidationError("A validation exception occurred", status=400,
                          messages=["Payments can only be made against Authorised documents."])
    assert explain_exception(exc).category == "conflict"
    bare = explain_exception(ValidationError("Bad thing", status=400))
    assert bare.reason == "Bad thing"


def test_xero_auth_error():
    explained = explain_exception(AuthError("401", status=401, call=CallRecord("GET", "https://api.xero.com/x")))
    assert explained.category == "auth"
    assert "Xero refused our access" in explained.reason
    assert "Reconnect" in explained.fix


def test_cliniko_auth_error():
    call = CallRecord("GET", "https://api.au1.cliniko.com/v1/invoices")
    explained = explain_exception(AuthError("401", status=401, call=call))
    assert explained.category == "auth" and "Cliniko" in explained.reason


@pytest.mark.parametrize("cls", [RateLimitedError, BudgetExhaustedError])
def test_rate_limited_is_transient_with_retry_after(cls):
    explained = explain_exception(cls("429", retry_after=42.0, problem="minute"))
    assert explained.category == "transient"
    assert explained.retry_after == 42.0
    assert "42 s" in explained.reason and "minute" in explained.reason


@pytest.mark.parametrize("exc", [ServerError("503", status=503), NetworkError("reset"), NotSentError("refused"),
                                 BadResponseError("html"), ErrorPageError("502 page", status=502)])
def test_transient_errors(exc):
    explained = explain_exception(exc)
    assert explained.category == "transient"
    assert not explained.outcome_unknown


def test_ambiguous_error_flags_unknown_outcome():
    explained = explain_exception(AmbiguousError("read timeout"))
    assert explained.category == "transient" and explained.outcome_unknown
    assert "checks Xero" in explained.fix


def test_other_errors():
    assert explain_exception(NotFoundError("404", status=404)).category == "conflict"
    assert explain_exception(UnexpectedStatusError("413", status=413)).category == "validation"
    unexpected = explain_exception(KeyError("boom"))
    assert unexpected.category == "transient" and "KeyError" in unexpected.reason
