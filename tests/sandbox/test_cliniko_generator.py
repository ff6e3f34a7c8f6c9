"""The demo data generator: deterministic, fast, realistic, and arithmetically consistent."""

import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from sandbox.cliniko.generator import generate
from sandbox.cliniko.money import price_line

NOW = datetime(2025, 6, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def clinic():
    return generate(seed=0, now=NOW)


def test_cliniko_documented_discount_example():
    line = price_line("100.0", 1, 10, "20.0", monetary=True)
    assert line["unit_price"] == "100.0"
    assert line["discount_percentage"] == 18.1818
    assert line["net_price"] == "81.818"
    assert line["tax_rate"] == 10.0
    assert line["total_including_tax"] == 90.0
    assert line["discounted_amount"] == "20.0" and line["is_monetary_discount"] is True


def test_percentage_discount_and_decimal_quantity():
    line = price_line("160.0", "1.5", 10, "10")
    assert line["quantity"] == 1.5
    assert line["total_including_tax"] == 237.6  # 160 × 1.5 × 1.1 × 0.9
    assert line["net_price"] == "144.0" and line["discounted_amount"] == "26.4"


def test_defaults_and_generation_time():
    started = time.monotonic()
    account = generate(seed=3, now=NOW)
    assert time.monotonic() - started < 2.0
    assert len(account.tables["patients"]) == 300
    assert len(account.tables["invoices"]) == 2000


def test_same_seed_same_data_different_seed_different_data(clinic):
    again = generate(seed=0, now=NOW)
    other = generate(seed=1, now=NOW)
    assert again.tables == clinic.tables and again.settings == clinic.settings
    assert other.tables["invoices"] != clinic.tables["invoices"]
    assert [p["first_name"] for p in other.tables["patients"].values()] != [
        p["first_name"] for p in clinic.tables["patients"].values()
    ]


def test_parameters_are_honoured():
    account = generate(seed=5, patients=40, invoices=120, now=NOW)
    assert len(account.tables["patients"]) == 40 and len(account.tables["invoices"]) == 120


def test_invoices_span_about_six_months_before_the_clock(clinic):
    created = sorted(i["created_at"] for i in clinic.tables["invoices"].values())
    assert created[-1] < NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert created[0] >= (NOW - timedelta(days=190)).strftime("%Y-%m-%d")
    assert created[0] < (NOW - timedelta(days=150)).strftime("%Y-%m-%d")


def test_invoice_totals_are_consistent(clinic):
    for invoice in clinic.tables["invoices"].values():
        items = [i for i in clinic.items_of(invoice["id"]) if not i["deleted_at"] or invoice["deleted_at"]]
        total = sum((Decimal(str(i["total_including_tax"])) for i in items), Decimal(0))
        assert Decimal(invoice["total_amount"]) == total.quantize(Decimal("0.01")), invoice["number"]
        assert Decimal(invoice["net_amount"]) + Decimal(invoice["tax_amount"]) == Decimal(invoice["total_amount"])
        for item in items:
            again = price_line(
                item["unit_price"],
                item["quantity"],
                item["tax_rate"],
                item["discounted_amount"] if item["is_monetary_discount"] else item["discount_percentage"],
                item["is_monetary_discount"],
            )
            assert again["total_including_tax"] == item["total_including_tax"]


def test_statuses_and_lifecycle(clinic):
    invoices = list(clinic.tables["invoices"].values())
    statuses = Counter(i["status"] for i in invoices)
    assert set(statuses) == {10, 20, 30, 40}
    for inv in invoices:
        assert inv["status_description"] == {10: "Open", 20: "Paid", 30: "Closed", 40: "Open credit"}[inv["status"]]
        assert (inv["closed_at"] is not None) == (inv["status"] in (20, 30))
        assert inv["updated_at"] >= inv["created_at"]
    assert any(i["archived_at"] for i in invoices) and any(i["deleted_at"] for i in invoices)
    edited = [i for i in invoices if i["status"] == 20 and i["updated_at"] > i["closed_at"]]
    assert edited, "edits after payment"
    assert any(i["status"] == 40 and Decimal(i["total_amount"]) < 0 for i in invoices), "reversal credits"
    numbers = [i["number"] for i in invoices]
    assert len(set(numbers)) == len(numbers)


def test_items_cover_discounts_taxes_quantities_products_concessions(clinic):
    items = list(clinic.tables["invoice_items"].values())
    assert any(i["is_monetary_discount"] and float(i["discounted_amount"]) > 0 for i in items)
    assert any(not i["is_monetary_discount"] and i["discount_percentage"] > 0 for i in items)
    assert {i["tax_rate"] for i in items} >= {0.0, 10.0, 15.0}
    assert any(isinstance(i["quantity"], float) for i in items)
    assert any(i["product_id"] for i in items) and any(i["billable_item_id"] for i in items)
    assert any(i["concession_type_name"] for i in items)
    by_invoice: dict[str, set] = {}
    for i in items:
        by_invoice.setdefault(i["invoice_id"], set()).add(i["tax_name"])
    assert any(len(names) >= 2 for names in by_invoice.values()), "an invoice with several taxes"


def test_patients_are_realistic(clinic):
    patients = list(clinic.tables["patients"].values())
    names = Counter((p["first_name"], p["last_name"]) for p in patients)
    assert sum(1 for n in names.values() if n >= 2) >= 2, "same-name pairs"
    assert any(not (p["first_name"] + p["last_name"]).isascii() for p in patients), "unicode names"
    assert any(p["email"] is None for p in patients)
    merged = [p for p in patients if p["merged_at"]]
    assert len(merged) == 1 and merged[0]["merged_with_patient_id"] in clinic.tables["patients"]
    deleted = [p for p in patients if p["deleted_at"]]
    assert len(deleted) == 1 and deleted[0]["archived_at"]
    invoice_patients = {i["patient_id"] for i in clinic.tables["invoices"].values()}
    assert deleted[0]["id"] in invoice_patients, "an invoice whose patient was deleted"


def test_businesses_catalogue_and_appointments(clinic):
    zones = {b["time_zone_identifier"] for b in clinic.tables["businesses"].values() if not b["archived_at"]}
    assert zones == {"Australia/Sydney", "Australia/Perth"}
    taxes = {t["name"]: t["rate"] for t in clinic.tables["taxes"].values()}
    assert taxes["GST"] == 10.0 and taxes["GST Free"] == 0.0
    assert all(b["tax_id"] in clinic.tables["taxes"] for b in clinic.tables["billable_items"].values())
    assert clinic.tables["concession_types"]
    appts = list(clinic.tables["individual_appointments"].values())
    assert any(a["patient_arrived"] for a in appts)
    assert any(a["did_not_arrive"] for a in appts)
    assert any(a["cancelled_at"] and a["cancellation_reason_description"] for a in appts)
    linked = {i["appointment_id"] for i in clinic.tables["invoices"].values() if i["appointment_id"]}
    assert linked <= set(clinic.tables["individual_appointments"])


def test_issue_date_is_the_local_date_of_the_business(clinic):
    from zoneinfo import ZoneInfo

    for inv in list(clinic.tables["invoices"].values())[:300]:
        appt = clinic.tables["individual_appointments"].get(inv["appointment_id"] or "")
        if appt is None:
            continue
        zone = ZoneInfo(clinic.tables["businesses"][inv["business_id"]]["time_zone_identifier"])
        starts = datetime.fromisoformat(appt["starts_at"].replace("Z", "+00:00"))
        assert inv["issue_date"] == starts.astimezone(zone).date().isoformat()


@pytest.mark.parametrize("seed", range(5))
def test_small_data_sets_still_have_every_feature(seed):
    account = generate(seed=seed, patients=30, invoices=16, now=NOW)
    invoices = list(account.tables["invoices"].values())
    items = list(account.tables["invoice_items"].values())
    assert {i["status"] for i in invoices} == {10, 20, 30, 40}
    assert any(i["archived_at"] for i in invoices) and any(i["deleted_at"] for i in invoices)
    assert any(i["is_monetary_discount"] for i in items) and any(isinstance(i["quantity"], float) for i in items)
    assert any(i["concession_type_name"] for i in items) and any(i["product_id"] for i in items)
