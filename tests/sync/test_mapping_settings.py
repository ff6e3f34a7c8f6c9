"""Practice settings, mapping rows and Xero reference data: defaults, parsing and refusals that name the setting."""

from datetime import date
from decimal import Decimal

import pytest

from webapp.sync.settings import Mappings, PracticeSettings, SettingsError, TrackingChoice, XeroRefs


def test_defaults():
    s = PracticeSettings.from_dict({})
    assert s.invoice_status == "AUTHORISED"
    assert s.reference_template == "Cliniko {number}"
    assert s.line_description_template == "{item}"
    assert s.line_amount_types == "Exclusive"
    assert s.contact_number_prefix == "CLK-"
    assert s.contact_details == "email"
    assert s.due_days == 0
    assert s.rounding_tolerance == Decimal("0.05")
    assert s.closed_policy == "ignore"
    assert s.sync_from is None
    assert s.exclude_products == ()
    assert (s.skip_zero_total, s.only_paid) == (False, False)
    assert PracticeSettings.from_dict(None) == s


def test_unknown_keys_are_ignored():
    assert PracticeSettings.from_dict({"colour": "blue", "sales_account": "200"}).sales_account == "200"


def test_values_are_parsed():
    s = PracticeSettings.from_dict({
        "sales_account": " 200 ", "invoice_status": "draft", "line_amount_types": "inclusive", "due_days": "14",
        "sync_from": "2026-01-31", "exclude_products": "11, 12,,11", "exclude_businesses": [3, "4"],
        "skip_zero_total": "true", "only_paid": 1, "closed_policy": "VOID", "rounding_tolerance": "0.10",
        "contact_details": "Full", "invoice_number_prefix": "CLK ", "time_zone": "Australia/Perth",
    })
    assert s.sales_account == "200"
    assert s.invoice_status == "DRAFT"
    assert s.line_amount_types == "Inclusive"
    assert s.due_days == 14
    assert s.sync_from == date(2026, 1, 31)
    assert s.exclude_products == ("11", "12")
    assert s.exclude_businesses == ("3", "4")
    assert s.skip_zero_total is True and s.only_paid is True
    assert s.closed_policy == "void"
    assert s.rounding_tolerance == Decimal("0.10")
    assert s.contact_details == "full"
    assert s.invoice_number_prefix == "CLK "  # a prefix keeps its space
    assert s.time_zone == "Australia/Perth"


def test_empty_account_codes_mean_not_set():
    assert PracticeSettings.from_dict({"rounding_account": "", "tax_exempt": None}).rounding_account is None


@pytest.mark.parametrize(("key", "value"), [
    ("invoice_status", "PAID"),
    ("line_amount_types", "NoTax"),
    ("due_days", "soon"),
    ("due_days", -1),
    ("due_days", True),
    ("sync_from", "31/01/2026"),
    ("exclude_products", {"a": 1}),
    ("exclude_practitioners", [None]),
    ("skip_zero_total", "maybe"),
    ("closed_policy", "delete"),
    ("rounding_tolerance", "-0.01"),
    ("rounding_tolerance", "lots"),
    ("rounding_tolerance", "5"),
    ("contact_details", "everything"),
    ("contact_number_prefix", "X" * 31),
    ("invoice_number_prefix", "A\nB"),
    ("reference_template", "Cliniko {number} {secret}"),
    ("reference_template", "Cliniko {number"),
    ("reference_template", "{number.__class__}"),
    ("reference_template", "{number!r}"),
    ("line_description_template", "{item} {business}"),
    ("time_zone", "Mars/Olympus"),
    ("sales_account", ["200"]),
])
def test_bad_values_name_the_setting(key, value):
    with pytest.raises(SettingsError) as info:
        PracticeSettings.from_dict({key: value})
    assert f"'{key}'" in str(info.value)


def test_settings_not_an_object():
    with pytest.raises(SettingsError):
        PracticeSettings.from_dict(["sales_account"])


def test_every_placeholder_is_accepted():
    s = PracticeSettings.from_dict({
        "reference_template": "{number} {patient} {practitioner} {business} {appointment_date}",
        "line_description_template": "{item} {code} {practitioner} {appointment_date}",
    })
    assert "{appointment_date}" in s.reference_template


def test_settings_are_frozen_and_round_trip():
    s = PracticeSettings.from_dict({"sync_from": "2026-02-01", "exclude_products": ["1"]})
    with pytest.raises(AttributeError):
        s.sales_account = "x"  # type: ignore[misc]
    assert PracticeSettings.from_dict(s.to_dict()) == s


def test_mappings_lookup_and_tax_by_name():
    m = Mappings.from_rows(
        [{"kind": "billable_item", "cliniko_id": 7, "cliniko_name": "Consult", "account_code": "260"},
         {"kind": "tax", "cliniko_id": "1", "cliniko_name": "  GST ", "tax_type": "OUTPUT"}],
        [{"category_id": "c1", "category_name": "Location", "option_id": "o1", "option_name": "North"},
         {"category_id": "c1", "category_name": "Location", "option_id": "o2", "option_name": "Old",
          "status": "ARCHIVED"}],
    )
    assert m.get("billable_item", "7").account_code == "260"
    assert m.get("billable_item", None) is None
    assert m.tax(tax_name="gst").tax_type == "OUTPUT"
    assert m.tax(tax_id="1").tax_type == "OUTPUT"
    assert m.tax(tax_id="99", tax_name="GST").tax_type == "OUTPUT"
    assert m.tax(tax_name="VAT") is None
    assert m.tracking("o1") == TrackingChoice("c1", "Location", "o1", "North")
    assert m.tracking("o2") is None  # archived options cannot be used


def test_mappings_accept_model_objects_and_choice_dict():
    class Row:
        kind, cliniko_id, cliniko_name, account_code = "business", "3", "North", "200"
        tax_type = tracking_option_id = payment_account_code = None

    choice = TrackingChoice("c", "Location", "o", "North")
    m = Mappings.from_rows([Row()], {"o": choice})
    assert m.get("business", "3").label == "North"
    assert m.tracking("o") is choice


@pytest.mark.parametrize("row", [{"kind": "patient", "cliniko_id": "1"}, {"kind": "tax", "cliniko_id": None}])
def test_bad_mapping_rows(row):
    with pytest.raises(SettingsError):
        Mappings.from_rows([row])


def test_xero_refs_explain_archived_and_unknown():
    refs = XeroRefs.from_rows(
        [{"code": "200", "status": "ACTIVE"}, {"Code": "250", "Status": "ARCHIVED"}, {"code": None}],
        [{"tax_type": "OUTPUT", "status": "ACTIVE", "effective_rate": Decimal("10")},
         {"TaxType": "TAX001", "Status": "ARCHIVED", "EffectiveRate": "12.5"}],
    )
    assert refs.account_problem("200") is None
    assert "archived" in refs.account_problem("250")
    assert "not in Xero" in refs.account_problem("999")
    assert refs.tax_problem("OUTPUT") is None
    assert "archived" in refs.tax_problem("TAX001")
    assert refs.rate("OUTPUT") == Decimal("10")
    unknown = XeroRefs()
    assert unknown.account_problem("anything") is None and unknown.tax_problem("X") is None
