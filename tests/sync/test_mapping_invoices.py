"""Cliniko invoice → Xero invoice: every rule, precedence, filter, discount, rounding and bad-input case."""

import json
import random
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from sandbox.cliniko.money import price_line
from sandbox.xero.accounting import lines as sandbox_lines
from webapp.clients.cliniko_records import convert
from webapp.sync.mapping_common import MappingError
from webapp.sync.mapping_invoices import (
    InvoicePlan,
    SkipPlan,
    cliniko_line_total,
    explain,
    payload_hash,
    plan_invoice,
    xero_line,
    xero_total,
)
from webapp.sync.settings import Mappings, PracticeSettings, TrackingChoice, XeroRefs

D = Decimal
BASE_SETTINGS = {"sales_account": "200", "tax_exempt": "EXEMPTOUTPUT", "rounding_account": "860"}
REFS = XeroRefs.from_rows(
    [{"code": c} for c in ("200", "260", "270", "860", "611")] + [{"code": "250", "status": "ARCHIVED"}],
    [{"tax_type": "OUTPUT", "effective_rate": "10"}, {"tax_type": "EXEMPTOUTPUT", "effective_rate": "0"},
     {"tax_type": "BASEXCLUDED", "effective_rate": "0"}, {"tax_type": "NZOUTPUT", "effective_rate": "15"}],
)
GST = {"kind": "tax", "cliniko_id": "t1", "cliniko_name": "GST", "tax_type": "OUTPUT"}
TRACKING = [
    TrackingChoice("loc", "Location", "north", "North"),
    TrackingChoice("loc", "Location", "south", "South"),
    TrackingChoice("prac", "Practitioner", "amelia", "Dr Amelia Chen"),
]


def settings(**extra):
    return PracticeSettings.from_dict({**BASE_SETTINGS, **extra})


def mappings(*rows, tax=True):
    return Mappings.from_rows(([GST] if tax else []) + list(rows), {t.option_id: t for t in TRACKING})


def item(unit="100.0", quantity="1", tax_rate=10, discount=None, monetary=False, **extra):
    """A converted Cliniko invoice item priced with Cliniko's documented arithmetic (the sandbox's money.py)."""
    raw = {"id": "i1", "name": "Initial Consultation", "code": "INIT", "tax_name": "GST" if tax_rate else None,
           "invoice": {"links": {"self": "https://api.au1.cliniko.com/v1/invoices/9"}},
           "billable_item": {"links": {"self": "https://api.au1.cliniko.com/v1/billable_items/31"}}}
    priced = price_line(unit, quantity, tax_rate, discount, monetary)
    priced.pop("_line_tax")
    raw.update(priced)
    raw.update(extra)
    return convert(loads(dumps(raw)))  # through JSON as the client reads it: numbers become Decimals


def safe_item(**kw):
    """An item whose monetary discount does not exceed its price (a negative line would make a credit)."""
    it = item(**kw)
    if it["total_including_tax"] < 0:
        kw.pop("discount"), kw.pop("monetary")
        it = item(**kw)
    return it


def invoice(items, **extra):
    total = sum((i["total_including_tax"] for i in items), D(0))
    raw = {"id": "9", "number": 1001, "issue_date": "2026-03-02", "total_amount": str(total), "status": 10,
           "status_description": "Open",
           "patient": {"links": {"self": "https://api.au1.cliniko.com/v1/patients/380"}},
           "practitioner": {"links": {"self": "https://api.au1.cliniko.com/v1/practitioners/26"}},
           "business": {"links": {"self": "https://api.au1.cliniko.com/v1/businesses/5"}}}
    raw.update(extra)
    return convert(raw)


def dumps(raw):
    return json.dumps(raw, default=str)


def loads(text):
    return json.loads(text, parse_float=Decimal)


PATIENT = {"id": "380", "first_name": "Jane", "last_name": "Smith"}
PRACTITIONER = {"id": "26", "first_name": "Amelia", "last_name": "Chen", "display_name": "Dr Amelia Chen"}
BUSINESS = {"id": "5", "business_name": "Harbourside North", "time_zone_identifier": "Australia/Sydney"}
APPOINTMENT = {"id": "70", "starts_at": datetime(2026, 3, 1, 22, 30, tzinfo=UTC)}  # 2 March in Sydney


def plan(items, inv=None, *, s=None, m=None, refs=REFS, contact=None, **kw):
    inv = inv if inv is not None else invoice(items)
    args = {"patient": PATIENT, "practitioner": PRACTITIONER, "business": BUSINESS, "appointment": APPOINTMENT}
    args.update(kw)
    return plan_invoice(inv, items, settings=s or settings(), mappings=m or mappings(), refs=refs,
                        contact_id_or_number=contact, **args)


def reason(p, line, field):
    return next(r for r in p.reasons if r["line"] == line and r["field"] == field)


# -- the invoice header --------------------------------------------------------------------------------------------


def test_header_fields():
    p = plan([item()], s=settings(invoice_number_prefix="CLK-", due_days=14))
    assert isinstance(p, InvoicePlan)
    body = p.payload
    assert body["Type"] == "ACCREC"
    assert body["InvoiceNumber"] == "CLK-1001"
    assert body["Date"] == "2026-03-02"
    assert body["DueDate"] == "2026-03-16"
    assert body["Status"] == "AUTHORISED"
    assert body["LineAmountTypes"] == "Exclusive"
    assert body["Reference"] == "Cliniko 1001"
    assert body["Contact"] == {"ContactNumber": "CLK-380"}
    assert "CurrencyCode" not in body
    assert p.invoice_number == "CLK-1001"


def test_draft_status_setting():
    assert plan([item()], s=settings(invoice_status="DRAFT")).payload["Status"] == "DRAFT"


@pytest.mark.parametrize(("given", "expected"), [
    ("3f2b8c1e-1111-4a2b-9c3d-0123456789ab", {"ContactID": "3f2b8c1e-1111-4a2b-9c3d-0123456789ab"}),
    ("CLK-380", {"ContactNumber": "CLK-380"}),
    ({"ContactID": "abc", "Name": "x"}, {"ContactID": "abc"}),
])
def test_contact_by_id_or_number(given, expected):
    assert plan([item()], contact=given).payload["Contact"] == expected


def test_reference_template_placeholders():
    s = settings(reference_template="#{number} {patient} / {practitioner} @ {business} on {appointment_date}")
    assert plan([item()], s=s).payload["Reference"] == \
        "#1001 Jane Smith / Dr Amelia Chen @ Harbourside North on 2026-03-02"


def test_reference_placeholders_without_records_are_empty():
    s = settings(reference_template="Cliniko {number} {practitioner}{appointment_date}")
    p = plan([item()], s=s, practitioner=None, appointment=None, patient=None, business=None)
    assert p.payload["Reference"] == "Cliniko 1001"


def test_empty_reference_is_left_out():
    s = settings(reference_template="{practitioner}")
    assert "Reference" not in plan([item()], s=s, practitioner=None).payload


def test_reference_is_cleaned_and_cut():
    s = settings(reference_template="{patient}")
    p = plan([item()], s=s, patient={"first_name": "Jane\x00\n", "last_name": "X" * 10_000})
    assert len(p.payload["Reference"]) == 255
    assert p.payload["Reference"].startswith("Jane XXX")


def test_line_description_template():
    s = settings(line_description_template="{item} ({code}) – {practitioner}, {appointment_date}")
    line = plan([item()], s=s).payload["LineItems"][0]
    assert line["Description"] == "Initial Consultation (INIT) – Dr Amelia Chen, 2026-03-02"


def test_item_without_name_uses_code_then_generic():
    assert plan([item(name=None)]).payload["LineItems"][0]["Description"] == "INIT"
    assert plan([item(name=None, code=None)]).payload["LineItems"][0]["Description"] == "Cliniko item"


# -- account precedence ------------------------------------------------------------------------------------------


ITEM_ROW = {"kind": "billable_item", "cliniko_id": "31", "cliniko_name": "Initial consult", "account_code": "260"}
PRAC_ROW = {"kind": "practitioner", "cliniko_id": "26", "cliniko_name": "Dr X", "account_code": "270"}
BUS_ROW = {"kind": "business", "cliniko_id": "5", "cliniko_name": "North", "account_code": "611"}


@pytest.mark.parametrize(("rows", "code", "rule"), [
    ([ITEM_ROW, PRAC_ROW, BUS_ROW], "260", "billable item 'Initial consult' override"),
    ([PRAC_ROW, BUS_ROW], "270", "practitioner 'Dr X' override"),
    ([BUS_ROW], "611", "business 'North' override"),
    ([], "200", "default sales account"),
    ([{**ITEM_ROW, "account_code": None}, {**PRAC_ROW, "account_code": None}], "200", "default sales account"),
])
def test_account_precedence(rows, code, rule):
    p = plan([item()], m=mappings(*rows))
    assert p.payload["LineItems"][0]["AccountCode"] == code
    assert reason(p, 0, "AccountCode")["rule"] == rule


def test_product_override_applies_to_product_lines():
    product = item(name="Foam Roller", billable_item=None,
                   product={"links": {"self": "https://api.au1.cliniko.com/v1/products/44"}})
    row = {"kind": "product", "cliniko_id": "44", "account_code": "260"}
    p = plan([product], m=mappings(row, PRAC_ROW))
    assert p.payload["LineItems"][0]["AccountCode"] == "260"
    assert reason(p, 0, "AccountCode")["rule"] == "product 'Foam Roller' override"


def test_override_label_falls_back_to_cliniko_records():
    p = plan([item()], m=mappings({**PRAC_ROW, "cliniko_name": None}))
    assert reason(p, 0, "AccountCode")["rule"] == "practitioner 'Dr Amelia Chen' override"


def test_no_account_at_all_is_a_mapping_error():
    with pytest.raises(MappingError) as info:
        plan([item()], s=PracticeSettings.from_dict({"tax_exempt": "EXEMPTOUTPUT"}))
    assert info.value.category == "mapping"
    assert "default sales account" in info.value.fix


@pytest.mark.parametrize(("rows", "words"), [
    ([{**ITEM_ROW, "account_code": "250"}], ["250", "billable item 'Initial consult'", "archived"]),
    ([{**PRAC_ROW, "account_code": "999"}], ["999", "practitioner 'Dr X'", "not in Xero"]),
])
def test_inactive_mapped_account_is_a_mapping_error(rows, words):
    with pytest.raises(MappingError) as info:
        plan([item()], m=mappings(*rows))
    assert info.value.category == "mapping"
    for word in words:
        assert word in info.value.reason + info.value.fix


def test_inactive_default_account():
    with pytest.raises(MappingError, match="default sales account 250"):
        plan([item()], s=settings(sales_account="250"))


# -- tax types ---------------------------------------------------------------------------------------------------


def test_mapped_tax():
    p = plan([item()])
    assert p.payload["LineItems"][0]["TaxType"] == "OUTPUT"
    assert reason(p, 0, "TaxType")["rule"] == "Cliniko tax 'GST' mapped"


def test_tax_matched_by_id_when_present():
    p = plan([item(tax_name="Goods and Services", tax_id="t1")])
    assert p.payload["LineItems"][0]["TaxType"] == "OUTPUT"


def test_untaxed_line_uses_exempt_rate():
    p = plan([item(tax_rate=0)])
    assert p.payload["LineItems"][0]["TaxType"] == "EXEMPTOUTPUT"
    assert reason(p, 0, "TaxType")["rule"] == "no tax on line → tax-exempt rate EXEMPTOUTPUT"


def test_unmapped_zero_rate_tax_uses_exempt_rate():
    p = plan([item(tax_rate=0, tax_name="GST Free")])
    assert reason(p, 0, "TaxType")["rule"] == "unmapped tax 'GST Free' → tax-exempt rate EXEMPTOUTPUT"


def test_unmapped_taxed_line_fails_totals_with_a_mapping_fix():
    with pytest.raises(MappingError) as info:
        plan([item()], m=mappings(tax=False))
    assert info.value.category == "totals"
    assert info.value.reason == "Totals differ: Cliniko $110.00, Xero would compute $100.00"
    assert "Map 'GST' to a Xero tax rate" in info.value.fix


def test_no_tax_rate_available_is_a_mapping_error():
    with pytest.raises(MappingError) as info:
        plan([item()], m=mappings(tax=False), s=settings(tax_exempt=""))
    assert info.value.category == "mapping"
    assert "GST" in info.value.reason and "tax-exempt" in info.value.fix


def test_inactive_mapped_tax_type():
    with pytest.raises(MappingError, match="TAX001"):
        plan([item()], m=mappings({**GST, "tax_type": "TAX001"}))


def test_xero_rate_differing_from_cliniko_is_explained():
    with pytest.raises(MappingError) as info:
        plan([item()], m=mappings({**GST, "tax_type": "NZOUTPUT"}, tax=False))
    assert "10% in Cliniko but NZOUTPUT is 15% in Xero" in info.value.fix


def test_unknown_xero_rates_assume_cliniko_rate():
    p = plan([item()], refs=XeroRefs())
    assert p.xero_total == D("110.00") and p.rounding == 0


# -- tracking ----------------------------------------------------------------------------------------------------


def test_tracking_by_business_and_practitioner():
    rows = [{"kind": "business", "cliniko_id": "5", "cliniko_name": "North", "tracking_option_id": "north"},
            {"kind": "practitioner", "cliniko_id": "26", "cliniko_name": "Dr X", "tracking_option_id": "amelia"}]
    p = plan([item(), item(id="i2")], m=mappings(*rows))
    for line in p.payload["LineItems"]:
        assert line["Tracking"] == [{"Name": "Location", "Option": "North"},
                                    {"Name": "Practitioner", "Option": "Dr Amelia Chen"}]
    rules = [r["rule"] for r in p.reasons if r["field"] == "Tracking"]
    assert rules == ["business 'North' tracking", "practitioner 'Dr X' tracking"]


def test_no_tracking_key_without_mapping():
    assert "Tracking" not in plan([item()]).payload["LineItems"][0]


def test_same_tracking_category_twice_is_refused():
    rows = [{"kind": "business", "cliniko_id": "5", "tracking_option_id": "north"},
            {"kind": "practitioner", "cliniko_id": "26", "tracking_option_id": "south"}]
    with pytest.raises(MappingError, match="Location"):
        plan([item()], m=mappings(*rows))


def test_tracking_option_gone_from_xero():
    with pytest.raises(MappingError) as info:
        plan([item()], m=mappings({"kind": "business", "cliniko_id": "5", "tracking_option_id": "gone"}))
    assert info.value.category == "mapping" and "Harbourside North" in info.value.reason


# -- amounts, discounts, quantities --------------------------------------------------------------------------------


def test_plain_line():
    p = plan([item(unit="90.0", quantity="2")])
    line = p.payload["LineItems"][0]
    assert (line["Quantity"], line["UnitAmount"]) == (D("2"), D("90.00"))
    assert "DiscountRate" not in line and "DiscountAmount" not in line
    assert p.cliniko_total == p.xero_total == D("198.00")


def test_clinikos_documented_monetary_discount_totals_90():
    it = item(unit="100.0", discount="20.0", monetary=True)
    assert (it["discount_percentage"], it["net_price"], it["total_including_tax"]) == \
        (D("18.1818"), D("81.818"), D("90.0"))
    p = plan([it])
    line = p.payload["LineItems"][0]
    assert line["DiscountAmount"] == D("18.18")  # the ex-tax discount
    assert "DiscountRate" not in line
    assert p.xero_total == D("90.00") and p.rounding == 0
    assert "monetary discount $20.00" in reason(p, 0, "DiscountAmount")["rule"]


def test_percentage_discount_uses_discount_rate():
    p = plan([item(unit="120.0", discount="15")])
    line = p.payload["LineItems"][0]
    assert line["DiscountRate"] == D("15")
    assert "DiscountAmount" not in line
    assert p.xero_total == p.cliniko_total


@pytest.mark.parametrize("mode", ["Exclusive", "Inclusive"])
def test_random_cliniko_lines_reach_the_same_total(mode):
    rng = random.Random(7)
    for _ in range(300):
        lines = []
        for n in range(rng.randint(1, 4)):
            monetary = rng.random() < 0.3
            discount = rng.choice(["5.0", "10.0", "20.0", "7.35"]) if monetary else rng.choice([None, "5", "12.5"])
            lines.append(safe_item(unit=rng.choice(["18.1818", "40.9091", "26.087", "100.0", "63.6364", "35.0"]),
                              quantity=rng.choice(["1", "2", "3", "0.25", "2.75"]),
                              tax_rate=rng.choice([0, 10]), discount=discount, monetary=monetary, id=f"i{n}"))
        p = plan(lines, s=settings(line_amount_types=mode))
        assert p.xero_total == p.cliniko_total
        assert abs(p.rounding) <= D("0.05")


def test_decimal_quantities_are_kept():
    p = plan([item(unit="160.0", quantity="0.25", tax_rate=0)])
    line = p.payload["LineItems"][0]
    assert line["Quantity"] == D("0.25")
    assert p.xero_total == D("40.00")


def test_quantity_beyond_four_places_is_rounded_and_said():
    it = item(unit="100.0", quantity="1", tax_rate=0)
    it["quantity"] = D("1.00004")
    p = plan([it])
    assert p.payload["LineItems"][0]["Quantity"] == D("1")
    assert "4 decimal places" in reason(p, 0, "Quantity")["rule"]


def test_zero_quantity_lines_are_dropped_with_a_reason():
    p = plan([item(), item(id="i2", name="Freebie", quantity="0")])
    assert len(p.payload["LineItems"]) == 1
    assert p.dropped_lines == [{"item_id": "i2", "name": "Freebie", "reason": "quantity is 0"}]


def test_negative_quantity_line_is_kept_on_a_positive_invoice():
    lines = [item(unit="100.0"), item(id="i2", unit="20.0", quantity="-1")]
    p = plan(lines)
    assert p.payload["LineItems"][1]["Quantity"] == D("-1")
    assert p.xero_total == D("88.00")
    assert "negative" in reason(p, 1, "Quantity")["rule"]


def test_negative_total_credit_is_skipped():
    p = plan([item(quantity="-1")])
    assert isinstance(p, SkipPlan)
    assert "credit note" in p.reason


def test_inclusive_mode_converts_unit_prices():
    p = plan([item(unit="100.0")], s=settings(line_amount_types="Inclusive"))
    line = p.payload["LineItems"][0]
    assert p.payload["LineAmountTypes"] == "Inclusive"
    assert line["UnitAmount"] == D("110.00")
    assert p.xero_total == D("110.00")
    assert "+ 10% tax" in reason(p, 0, "UnitAmount")["rule"]


def test_inclusive_monetary_discount_is_sent_tax_inclusive():
    p = plan([item(unit="100.0", discount="20.0", monetary=True)], s=settings(line_amount_types="Inclusive"))
    line = p.payload["LineItems"][0]
    assert (line["UnitAmount"], line["DiscountAmount"]) == (D("110.00"), D("20.00"))
    assert p.xero_total == D("90.00")


def test_four_decimal_unit_prices_are_sent():
    p = plan([item(unit="18.1818", quantity="3")])
    assert p.payload["LineItems"][0]["UnitAmount"] == D("18.1818")


# -- rounding and the totals check ---------------------------------------------------------------------------------


def test_exact_total_needs_no_rounding_line():
    p = plan([item()])
    assert p.rounding == 0
    assert all(line["Description"] != "Rounding" for line in p.payload["LineItems"])


@pytest.mark.parametrize("delta", [D("0.01"), D("-0.03"), D("0.05"), D("-0.05")])
def test_small_difference_adds_a_rounding_line(delta):
    it = item()
    inv = invoice([it])
    inv["total_amount"] += delta
    p = plan([it], inv)
    rounding = p.payload["LineItems"][-1]
    assert rounding == {"Description": "Rounding", "Quantity": D("1"), "UnitAmount": delta, "AccountCode": "860",
                        "TaxType": "BASEXCLUDED"}
    assert p.rounding == delta
    assert p.xero_total == p.cliniko_total == D("110.00") + delta
    assert reason(p, 1, "AccountCode")["rule"] == "rounding account"


def test_rounding_line_uses_exempt_type_when_xero_has_no_basexcluded():
    refs = XeroRefs.from_rows([{"code": "200"}, {"code": "860"}],
                              [{"tax_type": "OUTPUT", "effective_rate": "10"}, {"tax_type": "EXEMPTOUTPUT"}])
    it = item()
    inv = invoice([it])
    inv["total_amount"] += D("0.02")
    assert plan([it], inv, refs=refs).payload["LineItems"][-1]["TaxType"] == "EXEMPTOUTPUT"


def test_rounding_respects_a_custom_tolerance():
    it = item()
    inv = invoice([it])
    inv["total_amount"] += D("0.08")
    with pytest.raises(MappingError):
        plan([it], inv)
    assert plan([it], inv, s=settings(rounding_tolerance="0.10")).rounding == D("0.08")


def test_difference_beyond_tolerance_fails_with_totals():
    it = item()
    inv = invoice([it])
    inv["total_amount"] = D("110.06")
    with pytest.raises(MappingError) as info:
        plan([it], inv)
    assert info.value.category == "totals"
    assert info.value.reason == "Totals differ: Cliniko $110.06, Xero would compute $110.00"


def test_rounding_without_rounding_account_is_a_mapping_error():
    it = item()
    inv = invoice([it])
    inv["total_amount"] += D("0.01")
    with pytest.raises(MappingError) as info:
        plan([it], inv, s=settings(rounding_account=""))
    assert info.value.category == "mapping" and "rounding account" in info.value.fix


def test_archived_rounding_account():
    it = item()
    inv = invoice([it])
    inv["total_amount"] += D("0.01")
    with pytest.raises(MappingError, match="rounding account 250"):
        plan([it], inv, s=settings(rounding_account="250"))


def test_xero_arithmetic_matches_the_sandbox_emulator():
    """Our prediction of Xero's amounts equals what sandbox Xero's lines.py computes for the same payload."""

    class Org:
        data = {"tracking_categories": []}

        def account(self, code=None, account_id=None):
            return {"Code": code, "Status": "ACTIVE", "Type": "REVENUE", "Class": "REVENUE", "AccountID": code}

        def tax_rate(self, tax_type):
            rate = {"OUTPUT": "10", "NZOUTPUT": "15"}.get(tax_type, "0")
            return {"TaxType": tax_type, "Status": "ACTIVE", "Rate": rate, "AppliesTo": {"revenue"}}

    rng = random.Random(3)
    for mode in ("Exclusive", "Inclusive"):
        for _ in range(200):
            lines = [safe_item(unit=rng.choice(["18.1818", "99.99", "26.087", "0.3333"]),
                          quantity=rng.choice(["1", "3", "0.75", "1.3333"]), tax_rate=rng.choice([0, 10]),
                          discount=rng.choice([None, "10", "33.3333", "4.99"]),
                          monetary=rng.random() < 0.4, id=f"i{n}") for n in range(3)]
            p = plan(lines, s=settings(line_amount_types=mode))
            errors: list[str] = []
            built = [sandbox_lines.build_line(Org(), {k: str(v) if isinstance(v, Decimal) else v
                                                      for k, v in raw.items()},
                                              "ACCREC", mode, 4, True, errors)
                     for raw in p.payload["LineItems"]]
            assert errors == []
            assert D(sandbox_lines.totals(built, mode)["Total"]) == p.xero_total


def test_xero_line_helpers():
    assert xero_line(D("1"), D("100"), D("10"), "Exclusive", discount_rate=D("18.1818")) == (D("81.82"), D("8.18"))
    assert xero_line(D("1"), D("110"), D("10"), "Inclusive", discount_amount=D("20")) == (D("90.00"), D("8.18"))
    assert xero_total([(D("81.82"), D("8.18"))], "Exclusive") == D("90.00")
    assert xero_total([(D("90.00"), D("8.18"))], "Inclusive") == D("90.00")


def test_cliniko_line_total_is_recomputed_when_absent():
    it = item(unit="100.0", discount="20.0", monetary=True)
    it["total_including_tax"] = None
    assert cliniko_line_total(it) == D("90.00")
    it = item(unit="100.0", discount="10")
    it["total_including_tax"] = None
    assert cliniko_line_total(it) == D("99.00")


# -- filters -------------------------------------------------------------------------------------------------------


def test_issued_before_sync_from_is_skipped():
    p = plan([item()], s=settings(sync_from="2026-03-03"))
    assert isinstance(p, SkipPlan) and "before the sync-from date 2026-03-03" in p.reason
    assert isinstance(plan([item()], s=settings(sync_from="2026-03-02")), InvoicePlan)


def test_excluded_billable_item_drops_line_and_total():
    lines = [item(), item(id="i2", name="Foam Roller", unit="40.9091", billable_item=None,
                          product={"links": {"self": "https://api.au1.cliniko.com/v1/products/44"}})]
    p = plan(lines, s=settings(exclude_products=["44"]))
    assert [line["Description"] for line in p.payload["LineItems"]] == ["Initial Consultation"]
    assert p.dropped_lines == [{"item_id": "i2", "name": "Foam Roller",
                                "reason": "product 'Foam Roller' is excluded in Settings"}]
    assert p.cliniko_total == p.xero_total == D("110.00")
    assert any("Dropped 'Foam Roller'" in text for text in explain(p))


def test_every_line_excluded_skips_the_invoice():
    p = plan([item()], s=settings(exclude_billable_items=["31"]))
    assert isinstance(p, SkipPlan)
    assert "Every line is excluded" in p.reason and "Initial Consultation" in p.reason


def test_excluded_business_and_practitioner_skip():
    assert "Business 'Harbourside North' is excluded" in plan([item()], s=settings(exclude_businesses=["5"])).reason
    assert "Practitioner 'Dr Amelia Chen'" in plan([item()], s=settings(exclude_practitioners=["26"])).reason


def test_excluded_lines_need_no_mapping():
    bad_row = {**ITEM_ROW, "account_code": "250"}
    lines = [item(), item(id="i2", billable_item={"links": {"self": "https://x/billable_items/32"}})]
    m = mappings({**bad_row, "cliniko_id": "32"})
    assert isinstance(plan(lines, s=settings(exclude_billable_items=["32"]), m=m), InvoicePlan)


def test_skip_zero_total():
    lines = [item(unit="0.0")]
    assert isinstance(plan(lines), InvoicePlan)
    p = plan(lines, s=settings(skip_zero_total=True))
    assert isinstance(p, SkipPlan) and "Zero-total" in p.reason


def test_only_paid():
    p = plan([item()], s=settings(only_paid=True))
    assert isinstance(p, SkipPlan) and "this invoice is Open" in p.reason
    paid = invoice([item()], status=20)
    assert isinstance(plan([item()], paid, s=settings(only_paid=True)), InvoicePlan)


def test_deleted_items_are_left_out():
    lines = [item(), item(id="i2", deleted_at="2026-03-02T01:00:00Z")]
    inv = invoice(lines[:1])
    p = plan(lines, inv)
    assert len(p.payload["LineItems"]) == 1
    assert p.dropped_lines[0]["reason"] == "deleted in Cliniko"


def test_no_items():
    assert isinstance(plan([], invoice([], total_amount="0.0")), SkipPlan)
    with pytest.raises(MappingError, match="no items"):
        plan([], invoice([], total_amount="50.0"))


# -- bad or missing Cliniko data -----------------------------------------------------------------------------------


INVOICE_FIELDS = ["id", "number", "issue_date", "total_amount", "status", "status_description", "patient_id",
                  "practitioner_id", "business_id", "appointment_id", "closed_at"]
ITEM_FIELDS = ["id", "name", "code", "quantity", "unit_price", "discount_percentage", "discounted_amount",
               "is_monetary_discount", "net_price", "tax_name", "tax_rate", "tax_amount", "total_including_tax",
               "billable_item_id", "product_id", "invoice_id"]


def _outcome(fn):
    try:
        return fn()
    except MappingError as exc:
        assert exc.category in ("mapping", "totals")
        assert exc.reason and exc.fix
        return exc


@pytest.mark.parametrize("absent", [True, False], ids=["absent", "none"])
@pytest.mark.parametrize("field", INVOICE_FIELDS)
def test_each_invoice_field_missing(field, absent):
    it = item(unit="100.0", discount="20.0", monetary=True)
    inv = invoice([it], closed_at="2026-03-02T01:00:00Z")
    if absent:
        inv.pop(field, None)
    else:
        inv[field] = None
    result = _outcome(lambda: plan([it], inv))
    if isinstance(result, InvoicePlan):
        assert result.xero_total == D("90.00")
    if field in ("number", "issue_date", "patient_id"):
        assert isinstance(result, MappingError)


@pytest.mark.parametrize("absent", [True, False], ids=["absent", "none"])
@pytest.mark.parametrize("field", ITEM_FIELDS)
@pytest.mark.parametrize("discount", ["monetary", "percent", "none"])
def test_each_item_field_missing(field, absent, discount):
    kw = {"monetary": {"discount": "20.0", "monetary": True}, "percent": {"discount": "10"}, "none": {}}[discount]
    it = item(unit="100.0", **kw)
    inv = invoice([it])
    expected = inv["total_amount"]
    if absent:
        it.pop(field, None)
    else:
        it[field] = None
    result = _outcome(lambda: plan([it], inv))
    if isinstance(result, InvoicePlan):
        # Whatever was missing, what goes to Xero adds up to Cliniko's total.
        assert result.xero_total == expected
    if field in ("quantity", "unit_price"):
        assert isinstance(result, MappingError) and "Initial Consultation" in result.reason


def test_invalid_fields_from_the_client_behave_like_missing():
    raw = {"id": "i1", "name": "X", "quantity": "lots", "unit_price": "100.0", "total_including_tax": 110,
           "tax_rate": 10, "tax_name": "GST"}
    it = convert(raw)
    assert it["quantity"] is None
    with pytest.raises(MappingError, match="no quantity"):
        plan([it], invoice([{"total_including_tax": D("110")}]))


def test_related_records_missing_entirely():
    p = plan([item()], patient=None, practitioner=None, business=None, appointment=None)
    assert p.payload["InvoiceNumber"] == "1001"
    p = plan([item()], patient="garbage", practitioner=42, business=[], appointment={"starts_at": "not a time"})
    assert p.payload["Reference"] == "Cliniko 1001"


def test_control_characters_and_huge_names_in_items():
    it = item(name="Consult\x00\x1b[31m\u202e " + "é" * 10_000)
    line = plan([it]).payload["LineItems"][0]
    assert len(line["Description"]) == 4000
    assert "\x00" not in line["Description"] and "\x1b" not in line["Description"]
    assert "\u202e" not in line["Description"]


def test_html_in_names_is_sent_as_text():
    it = item(name="<script>alert(1)</script>")
    assert plan([it]).payload["LineItems"][0]["Description"] == "<script>alert(1)</script>"


def test_thousand_line_invoice():
    lines = [item(id=f"i{n}", unit="12.3456", quantity="1.5") for n in range(1000)]
    p = plan(lines)
    assert len(p.payload["LineItems"]) in (1000, 1001)
    assert p.xero_total == p.cliniko_total


# -- explain and hashing -------------------------------------------------------------------------------------------


def test_explain_says_which_rule_chose_what():
    rows = [ITEM_ROW, {"kind": "business", "cliniko_id": "5", "cliniko_name": "North", "tracking_option_id": "north"}]
    text = "\n".join(explain(plan([item()], m=mappings(*rows))))
    assert "AccountCode 260: billable item 'Initial consult' override" in text
    assert "TaxType OUTPUT: Cliniko tax 'GST' mapped" in text
    assert "Tracking Location: North: business 'North' tracking" in text
    assert "Cliniko total $110.00; Xero will compute $110.00." in text


def test_explain_skip_and_error():
    assert explain(SkipPlan("Zero-total invoices are skipped (Settings).")) == \
        ["Skipped: Zero-total invoices are skipped (Settings)."]
    lines = explain(MappingError("totals", "Totals differ", "Check it"))
    assert lines == ["Not sent (totals): Totals differ", "Fix: Check it"]


def test_explain_mentions_rounding():
    it = item()
    inv = invoice([it])
    inv["total_amount"] += D("0.02")
    assert "with a rounding line of $0.02" in explain(plan([it], inv))[-1]


def test_payload_hash_is_stable_and_detects_change():
    a = plan([item()]).payload
    b = plan([item()]).payload
    assert payload_hash(a) == payload_hash(b)
    assert len(payload_hash(a)) == 64
    b["LineItems"][0]["UnitAmount"] = D("100.0000")  # same amount, different scale
    assert payload_hash(a) == payload_hash(b)
    b["LineItems"][0]["UnitAmount"] = D("100.01")
    assert payload_hash(a) != payload_hash(b)
    assert payload_hash(plan([item()], s=settings(due_days=7)).payload) != payload_hash(a)
