"""Sandbox Xero invoices: totals and rounding, summarizeErrors, rules and messages, status machine, GET filters."""

import re

import pytest

LOCK_MESSAGE = re.compile(
    r"^The document date cannot be before the (period|end of year) lock date, currently set at "
    r"\d{2}-[A-Z][a-z]{2}-\d{4}$"
)


def _messages(element):
    return [e["Message"] for e in element.get("ValidationErrors", [])]


def _put(xero, *elements, summarize=None, unitdp=None):
    params = {}
    if summarize is not None:
        params["summarizeErrors"] = str(summarize).lower()
    if unitdp:
        params["unitdp"] = unitdp
    return xero.api("PUT", "Invoices", params=params, json={"Invoices": list(elements)})


def _single_error(xero, element):
    response = _put(xero, element, summarize=False)
    assert response.status_code == 200
    [result] = response.json()["Invoices"]
    assert result["StatusAttributeString"] == "ERROR"
    return _messages(result)


def test_envelope_dates_and_totals(xero):
    response = _put(xero, xero.invoice(amount="100.00", Total=5))
    body = response.json()
    assert response.status_code == 200
    assert set(body) >= {"Id", "Status", "ProviderName", "DateTimeUTC", "Invoices"}
    assert body["Status"] == "OK" and re.fullmatch(r"/Date\(\d+\)/", body["DateTimeUTC"])
    invoice = body["Invoices"][0]
    assert invoice["Date"] == "/Date(1740787200000+0000)/" and invoice["DateString"] == "2025-03-01T00:00:00"
    assert (invoice["SubTotal"], invoice["TotalTax"], invoice["Total"], invoice["AmountDue"]) == (
        100,
        10,
        110,
        110,
    )
    assert invoice["StatusAttributeString"] == "OK"


def test_per_line_tax_rounding_and_unitdp(xero):
    lines = [
        {
            "Description": f"Line {i}",
            "Quantity": 1,
            "UnitAmount": "0.15",
            "AccountCode": "200",
            "TaxType": "OUTPUT",
        }
        for i in range(3)
    ]
    invoice = _put(xero, xero.invoice("R1", LineItems=lines)).json()["Invoices"][0]
    # Tax per line 0.015 → 0.02 each, summed: 0.06 (not round(0.045) = 0.05).
    assert invoice["TotalTax"] == 0.06 and invoice["Total"] == 0.51
    four = [
        {
            "Description": "x",
            "Quantity": 3,
            "UnitAmount": "10.3333",
            "AccountCode": "200",
            "TaxType": "OUTPUT",
        }
    ]
    two = _put(xero, xero.invoice("R2", LineItems=four)).json()["Invoices"][0]
    assert two["LineItems"][0]["UnitAmount"] == 10.33 and two["LineItems"][0]["LineAmount"] == 30.99
    exact = _put(xero, xero.invoice("R3", LineItems=four), unitdp=4).json()["Invoices"][0]
    assert exact["LineItems"][0]["UnitAmount"] == 10.3333 and exact["LineItems"][0]["LineAmount"] == 31.0
    shown = xero.api("GET", "Invoices/" + exact["InvoiceID"]).json()["Invoices"][0]
    assert shown["LineItems"][0]["UnitAmount"] == 10.33
    shown4 = xero.api("GET", "Invoices/" + exact["InvoiceID"], params={"unitdp": 4}).json()["Invoices"][0]
    assert shown4["LineItems"][0]["UnitAmount"] == 10.3333


def test_line_amount_types_and_discounts(xero):
    line = {
        "Description": "x",
        "Quantity": 2,
        "UnitAmount": "55.00",
        "AccountCode": "200",
        "TaxType": "OUTPUT",
    }
    inclusive = _put(xero, xero.invoice("L1", LineAmountTypes="Inclusive", LineItems=[line])).json()["Invoices"][0]
    assert (inclusive["SubTotal"], inclusive["TotalTax"], inclusive["Total"]) == (100, 10, 110)
    notax = _put(xero, xero.invoice("L2", LineAmountTypes="NoTax", LineItems=[line])).json()["Invoices"][0]
    assert (notax["TotalTax"], notax["Total"]) == (0, 110)
    rate = _put(xero, xero.invoice("L3", LineItems=[{**line, "DiscountRate": 10}])).json()["Invoices"][0]
    assert rate["LineItems"][0]["LineAmount"] == 99 and rate["Total"] == 108.9 and rate["IsDiscounted"]
    amount = _put(xero, xero.invoice("L4", LineItems=[{**line, "DiscountAmount": "10.00"}])).json()["Invoices"][0]
    assert amount["LineItems"][0]["LineAmount"] == 100 and amount["Total"] == 110


def test_invoice_number_unique_across_requests_and_within_batch(xero):
    xero.create_invoice(number="DUP-1")
    assert _single_error(xero, xero.invoice("dup-1")) == ["Invoice # must be unique."]
    response = _put(xero, xero.invoice("DUP-2"), xero.invoice("DUP-2"), summarize=False).json()["Invoices"]
    assert [r["StatusAttributeString"] for r in response] == ["OK", "ERROR"]
    assert response[1]["InvoiceID"] == "00000000-0000-0000-0000-000000000000"


def test_mixed_batch_summarized_400_still_creates_the_good_ones(xero):
    bad = xero.invoice("MIX-BAD", LineItems=[{"Description": "x", "UnitAmount": 1, "AccountCode": "999"}])
    response = _put(xero, xero.invoice("MIX-1"), bad, xero.invoice("MIX-2"))
    assert response.status_code == 400
    body = response.json()
    assert (body["ErrorNumber"], body["Type"], body["Message"]) == (
        10,
        "ValidationException",
        "A validation exception occurred",
    )
    assert len(body["Elements"]) == 1
    assert _messages(body["Elements"][0]) == ["Account code 999 is not a valid code for this document."]
    numbers = {i["InvoiceNumber"] for i in xero.state()["organisations"][0]["invoices"]}
    assert numbers == {"MIX-1", "MIX-2"}


def test_mixed_batch_with_summarize_errors_false(xero):
    bad = xero.invoice("MIX-BAD", Contact={})
    response = _put(xero, xero.invoice("MIX-3"), bad, summarize=False)
    assert response.status_code == 200
    first, second = response.json()["Invoices"]
    assert first["StatusAttributeString"] == "OK" and first["InvoiceID"] != "00000000-0000-0000-0000-000000000000"
    assert second["StatusAttributeString"] == "ERROR" and second["HasErrors"] is True
    assert _messages(second) == [
        "The Contact must contain at least 1 of the following elements to identify the "
        "contact: Name, ContactID, ContactNumber"
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ({"AccountCode": "250"}, "Account code has been archived or deleted"),
        ({"AccountCode": "090"}, "Account code 090 is not a valid code for this document."),
        (
            {"TaxType": "TAX001"},
            "The TaxType code TAX001 does not exist or cannot be used for this type of transaction.",
        ),
        (
            {"TaxType": "NOPE"},
            "The TaxType code NOPE does not exist or cannot be used for this type of transaction.",
        ),
        ({"TaxType": "INPUT"}, "The TaxType code 'INPUT' cannot be used with account code '200'."),
        ({"ItemCode": "X1"}, "Item code 'X1' is not valid"),
    ],
)
def test_account_and_tax_rules(xero, line, message):
    base = {"Description": "x", "Quantity": 1, "UnitAmount": 10, "AccountCode": "200", "TaxType": "OUTPUT"}
    assert message in _single_error(xero, xero.invoice("T-1", LineItems=[{**base, **line}]))


def test_tracking_rules(xero):
    base = {"Description": "x", "Quantity": 1, "UnitAmount": 10, "AccountCode": "200", "TaxType": "OUTPUT"}
    good = [{"Name": "Location", "Option": "Sydney CBD"}, {"Name": "Practitioner", "Option": "Dr Ben Carter"}]
    created = xero.create_invoice(number="TR-1", LineItems=[{**base, "Tracking": good}])
    assert [t["Option"] for t in created["LineItems"][0]["Tracking"]] == ["Sydney CBD", "Dr Ben Carter"]
    three = good + [{"Name": "Region (old)", "Option": "North"}]
    assert len(_single_error(xero, xero.invoice("TR-2", LineItems=[{**base, "Tracking": three}]))) == 1
    for tracking in (
        [{"Name": "Region (old)", "Option": "North"}],
        [{"Name": "Location", "Option": "Bondi (closed)"}],
        [{"Name": "Location", "Option": "Nowhere"}],
    ):
        assert _single_error(xero, xero.invoice("TR-3", LineItems=[{**base, "Tracking": tracking}]))


def test_lock_dates(xero):
    xero.control("lock-dates", {"period_lock_date": "2025-03-31", "end_of_year_lock_date": "2024-06-30"})
    [message] = _single_error(xero, xero.invoice("LK-1"))
    assert message == "The document date cannot be before the period lock date, currently set at 31-Mar-2025"
    [message] = _single_error(xero, xero.invoice("LK-2", Date="2024-05-01"))
    assert message == "The document date cannot be before the end of year lock date, currently set at 30-Jun-2024"
    assert LOCK_MESSAGE.match(message)
    xero.create_invoice(number="LK-3", status="DRAFT")
    xero.create_invoice(number="LK-4", Date="2025-04-01")
    org = xero.api("GET", "Organisation").json()["Organisations"][0]
    assert org["PeriodLockDate"].startswith("/Date(")


def test_status_machine(xero):
    draft = xero.create_invoice(number="ST-1", status="DRAFT")
    path = "Invoices/" + draft["InvoiceID"]
    voided = xero.api("POST", path, json={"Status": "VOIDED"})
    assert voided.status_code == 400
    assert _messages(voided.json()["Elements"][0]) == ["Invoice not of valid status for modification"]
    approved = xero.api("POST", path, json={"Status": "AUTHORISED"}).json()["Invoices"][0]
    assert approved["Status"] == "AUTHORISED"
    assert xero.api("POST", path, json={"Status": "DELETED"}).status_code == 400
    assert xero.api("POST", path, json={"Status": "VOIDED"}).json()["Invoices"][0]["Status"] == "VOIDED"
    assert xero.api("POST", path, json={"Reference": "again"}).status_code == 400
    other = xero.create_invoice(number="ST-2", status="SUBMITTED")
    deleted = xero.api("POST", "Invoices/" + other["InvoiceID"], json={"Status": "DELETED"}).json()["Invoices"][0]
    assert deleted["Status"] == "DELETED"
    assert "Invoice not of valid status for creation" in _single_error(xero, xero.invoice("ST-3", status="PAID"))


def test_post_updates_by_number_and_put_does_not(xero):
    created = xero.create_invoice(number="UP-1", status="DRAFT")
    response = xero.api(
        "POST",
        "Invoices",
        params={"summarizeErrors": "false"},
        json={"Invoices": [{"InvoiceNumber": "UP-1", "Reference": "changed"}]},
    )
    updated = response.json()["Invoices"][0]
    assert updated["InvoiceID"] == created["InvoiceID"] and updated["Reference"] == "changed"


def test_contact_created_from_name_and_auto_numbering(xero):
    element = xero.invoice("N-1")
    element.pop("InvoiceNumber")
    created = _put(xero, element, summarize=False).json()["Invoices"][0]
    assert re.fullmatch(r"INV-\d{4}", created["InvoiceNumber"])
    contacts = xero.api("GET", "Contacts", params={"where": 'Name=="Jane Citizen"'}).json()["Contacts"]
    assert len(contacts) == 1 and contacts[0]["IsCustomer"] is True


def test_get_filters_paging_and_modified_since(xero):
    batch = [
        xero.invoice(
            f"G-{n:03d}",
            status="DRAFT" if n % 2 else "AUTHORISED",
            Contact={"Name": "Pat", "ContactNumber": "P-1"},
        )
        for n in range(105)
    ]
    assert _put(xero, *batch).status_code == 200
    page1 = xero.api("GET", "Invoices", params={"page": 1}).json()
    page2 = xero.api("GET", "Invoices", params={"page": 2}).json()
    assert len(page1["Invoices"]) == 100 and len(page2["Invoices"]) == 5
    assert "LineItems" in page1["Invoices"][0]
    assert page1["pagination"] == {"page": 1, "pageSize": 100, "pageCount": 2, "itemCount": 105}
    unpaged = xero.api("GET", "Invoices").json()["Invoices"]
    assert len(unpaged) == 105 and "LineItems" not in unpaged[0]
    by_number = xero.api("GET", "Invoices", params={"InvoiceNumbers": "G-001,G-002"}).json()["Invoices"]
    assert sorted(i["InvoiceNumber"] for i in by_number) == ["G-001", "G-002"]
    ids = ",".join(i["InvoiceID"] for i in by_number)
    assert len(xero.api("GET", "Invoices", params={"IDs": ids}).json()["Invoices"]) == 2
    where = 'Type=="ACCREC" AND Status=="AUTHORISED" && Contact.ContactNumber=="P-1"'
    assert len(xero.api("GET", "Invoices", params={"where": where}).json()["Invoices"]) == 53
    one = xero.api("GET", "Invoices", params={"where": 'InvoiceNumber=="G-007"'}).json()["Invoices"]
    assert [i["InvoiceNumber"] for i in one] == ["G-007"]
    assert xero.api("GET", "Invoices", params={"where": "Status=="}).status_code == 400
    xero.control("clock", {"advance_seconds": 5})
    later = xero.sandbox.clock.utcnow()
    xero.control("clock", {"advance_seconds": 5})
    xero.api("POST", "Invoices/G-001", json={"Reference": "touched"})
    since = {"If-Modified-Since": later.strftime("%Y-%m-%dT%H:%M:%S")}
    changed = xero.api("GET", "Invoices", headers=since).json()["Invoices"]
    assert [i["InvoiceNumber"] for i in changed] == ["G-001"]
    assert xero.api("GET", "Invoices/G-002").json()["Invoices"][0]["InvoiceNumber"] == "G-002"
    assert xero.api("GET", "Invoices/00000000-0000-0000-0000-000000000001").status_code == 404


def test_credit_notes(xero):
    note = {
        "Type": "ACCRECCREDIT",
        "Contact": {"Name": "Jane Citizen"},
        "Date": "2025-03-02",
        "Status": "AUTHORISED",
        "LineItems": [
            {
                "Description": "Refund",
                "Quantity": 1,
                "UnitAmount": 20,
                "AccountCode": "200",
                "TaxType": "OUTPUT",
            }
        ],
    }
    created = xero.api("PUT", "CreditNotes", json={"CreditNotes": [note]}).json()["CreditNotes"][0]
    assert created["Total"] == 22 and created["RemainingCredit"] == 22 and created["CreditNoteNumber"]
    listed = xero.api("GET", "CreditNotes", params={"page": 1}).json()["CreditNotes"]
    assert [c["CreditNoteID"] for c in listed] == [created["CreditNoteID"]]
    refund = {
        "CreditNote": {"CreditNoteID": created["CreditNoteID"]},
        "Account": {"Code": "090"},
        "Amount": 22,
        "Date": "2025-03-03",
    }
    paid = xero.api("PUT", "Payments", json={"Payments": [refund]}).json()["Payments"][0]
    assert paid["PaymentType"] == "ARCREDITPAYMENT"
    assert xero.api("GET", "CreditNotes/" + created["CreditNoteID"]).json()["CreditNotes"][0]["Status"] == "PAID"
