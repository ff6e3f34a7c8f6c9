"""Appointment mode: which appointments are invoiced, and at what price (pure rules)."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from webapp.sync.mapping_appointments import (
    Catalogue,
    PriceProblem,
    completed,
    fact_skip,
    invoice_for,
    settings_skip,
)
from webapp.sync.settings import PracticeSettings, SettingsError

NOW = datetime(2026, 11, 20, 5, 0, tzinfo=UTC)
CAT = Catalogue(
    appointment_types={
        "10": {"id": "10", "name": "Initial Consultation", "billable_item_id": "100", "product_id": "200"},
        "11": {"id": "11", "name": "Standard Consultation", "billable_item_id": "101"},
        "12": {"id": "12", "name": "Group Class"},
    },
    billable_items={"100": {"id": "100", "name": "Initial Consultation", "item_code": "INIT", "price": "120.0",
                            "tax_id": "1"},
                    "101": {"id": "101", "name": "Standard Consultation", "item_code": "STD", "price": "90.0",
                            "tax_id": "2"}},
    products={"200": {"id": "200", "name": "Theraband", "item_code": "TB", "price_ex_tax": "18.1818", "tax_id": "2"}},
    taxes={"1": {"id": "1", "name": "GST Free", "rate": "0.0"}, "2": {"id": "2", "name": "GST", "rate": "10.0"}},
    businesses={"5": {"id": "5", "business_name": "Harbourside Physio Sydney",
                      "time_zone_identifier": "Australia/Sydney"},
                "6": {"id": "6", "business_name": "Swan River Physio Perth",
                      "time_zone_identifier": "Australia/Perth"}},
    concession_prices={("101", "7"): "70.0"},
)


def appt(**fields):
    base = {"id": "900", "appointment_type_id": "11", "business_id": "5", "patient_id": "42", "practitioner_id": "3",
            "starts_at": NOW - timedelta(hours=2), "ends_at": NOW - timedelta(hours=1, minutes=30),
            "patient_arrived": False, "did_not_arrive": False, "cancelled_at": None, "archived_at": None,
            "deleted_at": None, "updated_at": NOW - timedelta(hours=1)}
    base.update(fields)
    return base


def settings(**values):
    return PracticeSettings.from_dict({"invoice_source": "appointments", **values})


def test_an_appointment_is_done_when_arrived_or_by_the_ended_rule():
    arrived, ended = settings(), settings(appointment_completion="ended")
    assert completed(appt(patient_arrived=True), arrived, NOW)
    assert not completed(appt(), arrived, NOW)  # ended but nobody marked the patient arrived
    assert completed(appt(), ended, NOW)
    assert not completed(appt(ends_at=NOW + timedelta(minutes=5)), ended, NOW)  # not over yet
    assert not completed(appt(cancelled_at=NOW - timedelta(days=1)), ended, NOW)
    assert not completed(appt(did_not_arrive=True), ended, NOW)


def test_cancelled_no_show_deleted_and_patientless_appointments_say_why():
    assert fact_skip(appt(cancelled_at=NOW, cancellation_reason_description="Sick")) == (
        "Appointment cancelled in Cliniko (Sick)")
    assert fact_skip(appt(did_not_arrive=True)) == "Patient did not arrive (marked in Cliniko)"
    assert fact_skip(appt(deleted_at=NOW)) == "Appointment deleted in Cliniko"
    assert fact_skip(appt(patient_id=None)) == "The appointment has no patient"
    assert fact_skip(appt(patient_arrived=True)) is None


def test_practice_conditions_on_types_claims_and_businesses():
    only = settings(only_appointment_types=["10"])
    assert "'Standard Consultation' is not one of the types invoiced" in settings_skip(appt(), only, CAT)
    assert settings_skip(appt(appointment_type_id="10"), only, CAT) is None
    claims = settings(claim_appointment_types="11")
    assert "billed as a claim" in settings_skip(appt(), claims, CAT)
    sydney_only = settings(only_businesses=["5"])
    assert settings_skip(appt(business_id="5"), sydney_only, CAT) is None
    assert "'Swan River Physio Perth' is not one of the businesses" in settings_skip(appt(business_id="6"),
                                                                                     sydney_only, CAT)


def test_priced_from_the_billable_item_with_its_tax_and_the_types_product():
    invoice, items = invoice_for(appt(appointment_type_id="10"), CAT, concession_type_id=None, concession_name=None,
                                 time_zone="Australia/Sydney")
    assert invoice["number"] == "A900"
    assert [(i["name"], i["unit_price"], i["total_including_tax"]) for i in items] == [
        ("Initial Consultation", Decimal("120.0"), Decimal("120.00")),
        ("Theraband", Decimal("18.1818"), Decimal("20.00")),
    ]
    assert invoice["total_amount"] == Decimal("140.00")
    assert invoice["issue_date"] == date(2026, 11, 20)  # 03:00 UTC is the 20th in Sydney


def test_issue_date_is_the_local_day_of_the_business():
    late = appt(starts_at=datetime(2026, 11, 19, 14, 30, tzinfo=UTC), business_id="5")
    assert invoice_for(late, CAT, concession_type_id=None, concession_name=None,
                       time_zone="UTC")[0]["issue_date"] == date(2026, 11, 20)  # 01:30 next day in Sydney


def test_concession_price_for_a_patient_with_a_concession():
    _, items = invoice_for(appt(), CAT, concession_type_id="7", concession_name="Pensioner", time_zone="UTC")
    assert items[0]["unit_price"] == Decimal("70.0")
    assert items[0]["total_including_tax"] == Decimal("77.00")
    assert items[0]["concession_type_name"] == "Pensioner"
    _, items = invoice_for(appt(), CAT, concession_type_id="8", concession_name="Student", time_zone="UTC")
    assert items[0]["unit_price"] == Decimal("90.0")  # no concession price for this type: full price


def test_a_type_without_a_billable_item_cannot_be_priced_and_says_how_to_fix_it():
    with pytest.raises(PriceProblem) as info:
        invoice_for(appt(appointment_type_id="12"), CAT, concession_type_id=None, concession_name=None,
                    time_zone="UTC")
    assert "'Group Class' has no billable item" in info.value.reason
    assert "claim type" in info.value.fix


def test_bad_settings_values_are_refused_with_the_setting_named():
    with pytest.raises(SettingsError, match="invoice_source"):
        PracticeSettings.from_dict({"invoice_source": "emails"})
    with pytest.raises(SettingsError, match="contact_timing"):
        PracticeSettings.from_dict({"contact_timing": "never"})
    with pytest.raises(SettingsError, match="claim_appointment_types"):
        PracticeSettings.from_dict({"claim_appointment_types": {"a": 1}})
    s = PracticeSettings.from_dict({})
    assert (s.invoice_source, s.contact_timing, s.dry_run, s.reads_appointments) == (
        "invoices", "first_invoice", False, False)
