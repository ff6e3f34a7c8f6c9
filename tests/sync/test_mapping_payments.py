"""Paid Cliniko invoice → Xero payment: amount, local date, account precedence and the natural-key reference."""

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from webapp.sync.mapping_common import MappingError
from webapp.sync.mapping_payments import payment_reference, plan_payment
from webapp.sync.settings import Mappings, PracticeSettings, XeroRefs

INVOICE = {"id": "9", "number": 1001, "status": 20, "practitioner_id": "26", "business_id": "5",
           "closed_at": datetime(2026, 3, 31, 14, 30, tzinfo=UTC)}
SYDNEY = {"id": "5", "business_name": "Harbourside", "time_zone": "Sydney", "time_zone_identifier": "Australia/Sydney"}
PERTH = {"id": "5", "business_name": "Swan River", "time_zone_identifier": "Australia/Perth"}
PRACTITIONER = {"id": "26", "first_name": "Amelia", "last_name": "Chen"}


def pay(invoice=None, *, settings=None, mappings=None, business=SYDNEY, amount="110.00", xero_id="inv-uuid", **kw):
    return plan_payment(invoice if invoice is not None else INVOICE, invoice_xero_id=xero_id, amount_due=amount,
                        business=business, practitioner=PRACTITIONER,
                        settings=settings or PracticeSettings.from_dict({"payment_account": "090"}),
                        mappings=mappings or Mappings(), **kw)


def test_payload():
    plan = pay()
    assert plan.payload == {"Invoice": {"InvoiceID": "inv-uuid"}, "Account": {"Code": "090"},
                            "Date": "2026-04-01", "Amount": Decimal("110.00"),
                            "Reference": "Cliniko invoice 1001"}


def test_closed_at_is_dated_in_the_business_time_zone():
    # 14:30 UTC on 31 March is 01:30 on 1 April in Sydney (AEDT) but 22:30 on 31 March in Perth.
    assert pay(business=SYDNEY).payload["Date"] == "2026-04-01"
    assert pay(business=PERTH).payload["Date"] == "2026-03-31"


def test_offset_timestamps_are_converted():
    invoice = {**INVOICE, "closed_at": datetime(2026, 7, 1, 8, 0, tzinfo=timezone(timedelta(hours=10)))}
    assert pay(invoice, business=PERTH).payload["Date"] == "2026-07-01"
    invoice = {**INVOICE, "closed_at": datetime(2026, 7, 1, 1, 0, tzinfo=timezone(timedelta(hours=10)))}
    assert pay(invoice, business=PERTH).payload["Date"] == "2026-06-30"


@pytest.mark.parametrize("business", [None, {}, {"time_zone": "Sydney"}, {"time_zone_identifier": "Nowhere/Land"}])
def test_time_zone_falls_back_to_practice_then_sydney(business):
    assert pay(business=business).payload["Date"] == "2026-04-01"
    perth = PracticeSettings.from_dict({"payment_account": "090", "time_zone": "Australia/Perth"})
    plan = pay(business=business, settings=perth)
    assert plan.payload["Date"] == "2026-03-31"
    assert "practice time zone Australia/Perth" in next(r["rule"] for r in plan.reasons if r["field"] == "Date")


def test_amount_is_rounded_to_cents():
    assert pay(amount=Decimal("99.995")).payload["Amount"] == Decimal("100.00")
    assert pay(amount="45").payload["Amount"] == Decimal("45.00")


@pytest.mark.parametrize("amount", ["0", "-5.00"])
def test_nothing_owing_is_a_conflict(amount):
    with pytest.raises(MappingError) as info:
        pay(amount=amount)
    assert info.value.category == "conflict"


def test_unknown_amount():
    with pytest.raises(MappingError, match="how much is owing"):
        pay(amount=None)


ROWS = [{"kind": "practitioner", "cliniko_id": "26", "cliniko_name": "Dr Chen", "payment_account_code": "611"},
        {"kind": "business", "cliniko_id": "5", "cliniko_name": "North", "payment_account_code": "612"}]


@pytest.mark.parametrize(("rows", "code", "rule"), [
    (ROWS, "611", "practitioner 'Dr Chen' override"),
    (ROWS[1:], "612", "business 'North' override"),
    ([{**ROWS[0], "payment_account_code": None, "account_code": "260"}], "090", "default payment account"),
    ([], "090", "default payment account"),
])
def test_account_precedence(rows, code, rule):
    plan = pay(mappings=Mappings.from_rows(rows))
    assert plan.payload["Account"] == {"Code": code}
    assert next(r for r in plan.reasons if r["field"] == "Account")["rule"] == rule


def test_no_payment_account():
    with pytest.raises(MappingError) as info:
        pay(settings=PracticeSettings.from_dict({}))
    assert info.value.category == "mapping" and "default payment account" in info.value.fix


def test_archived_payment_account_with_refs():
    refs = XeroRefs.from_rows([{"code": "090"}, {"code": "611", "status": "ARCHIVED"}])
    with pytest.raises(MappingError, match="611"):
        pay(mappings=Mappings.from_rows(ROWS), refs=refs)
    assert pay(refs=refs).payload["Account"] == {"Code": "090"}


@pytest.mark.parametrize("closed_at", [None, "2026-03-31", "garbage"])
def test_paid_without_closed_at(closed_at):
    with pytest.raises(MappingError) as info:
        pay({**INVOICE, "closed_at": closed_at})
    assert "closed date" in info.value.reason


def test_invoice_not_in_xero_yet():
    with pytest.raises(MappingError, match="not in Xero yet"):
        pay(xero_id=None)


def test_reference_uses_the_invoice_number_prefix():
    settings = PracticeSettings.from_dict({"payment_account": "090", "invoice_number_prefix": "CLK-"})
    assert payment_reference(settings, 1001) == "Cliniko invoice CLK-1001"
    assert pay(settings=settings).payload["Reference"] == "Cliniko invoice CLK-1001"


def test_invoice_without_number():
    with pytest.raises(MappingError, match="no number"):
        pay({**INVOICE, "number": None})


@pytest.mark.parametrize("field", sorted(INVOICE))
def test_each_invoice_field_missing(field):
    invoice = {k: v for k, v in INVOICE.items() if k != field}
    try:
        plan = pay(invoice)
    except MappingError as exc:
        assert field in ("number", "closed_at") and exc.reason
    else:
        assert plan.payload["Amount"] == Decimal("110.00")
