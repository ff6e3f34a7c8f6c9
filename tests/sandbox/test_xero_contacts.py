"""Sandbox Xero contacts: uniqueness of Name (active) and ContactNumber (all), archiving, GET filters."""

from sandbox.xero.accounting.contacts import ARCHIVED


def _put(xero, *contacts, summarize=False):
    return xero.api(
        "PUT",
        "Contacts",
        params={"summarizeErrors": str(summarize).lower()},
        json={"Contacts": list(contacts)},
    )


def test_create_and_name_unique_among_active(xero):
    first = _put(xero, {"Name": "Buzz Lightyear", "ContactNumber": "C-1", "EmailAddress": "b@example.com"})
    created = first.json()["Contacts"][0]
    assert created["StatusAttributeString"] == "OK" and created["ContactStatus"] == "ACTIVE"
    again = _put(xero, {"Name": "Buzz Lightyear"}).json()["Contacts"][0]
    assert again["ValidationErrors"] == [
        {
            "Message": "The contact name Buzz Lightyear is already assigned to another "
            "contact. The contact name must be unique across all active "
            "contacts."
        }
    ]
    archive = xero.api("POST", "Contacts/" + created["ContactID"], json={"ContactStatus": "ARCHIVED"})
    assert archive.json()["Contacts"][0]["ContactStatus"] == "ARCHIVED"
    assert _put(xero, {"Name": "Buzz Lightyear"}).json()["Contacts"][0]["StatusAttributeString"] == "OK"


def test_contact_number_unique_among_all_including_archived(xero):
    created = _put(xero, {"Name": "Woody", "ContactNumber": "C-2"}).json()["Contacts"][0]
    xero.api("POST", "Contacts/" + created["ContactID"], json={"ContactStatus": "ARCHIVED"})
    clash = _put(xero, {"Name": "Woody Two", "ContactNumber": "C-2"}).json()["Contacts"][0]
    assert clash["ValidationErrors"][0]["Message"] == (
        "The contact number C-2 is already assigned to another "
        "contact. The contact number must be unique across all "
        "contacts."
    )
    summarized = _put(xero, {"Name": "Woody Three", "ContactNumber": "C-2"}, summarize=True)
    assert summarized.status_code == 400 and summarized.json()["Type"] == "ValidationException"


def test_archived_contact_refused_on_invoice(xero):
    created = _put(xero, {"Name": "Old Patient", "ContactNumber": "C-3"}).json()["Contacts"][0]
    xero.api(
        "POST",
        "Contacts",
        json={"Contacts": [{"ContactID": created["ContactID"], "ContactStatus": "ARCHIVED"}]},
    )
    for reference in ({"ContactID": created["ContactID"]}, {"ContactNumber": "C-3"}, {"Name": "Old Patient"}):
        response = xero.api(
            "PUT",
            "Invoices",
            params={"summarizeErrors": "false"},
            json={"Invoices": [xero.invoice("A-1", Contact=reference)]},
        )
        assert response.json()["Invoices"][0]["ValidationErrors"] == [{"Message": ARCHIVED}]


def test_get_where_ids_paging_and_archived_hidden(xero):
    contacts = [{"Name": f"Patient {n:03d}", "ContactNumber": f"N-{n:03d}"} for n in range(120)]
    assert _put(xero, *contacts).status_code == 200
    page1 = xero.api("GET", "Contacts", params={"page": 1}).json()["Contacts"]
    page2 = xero.api("GET", "Contacts", params={"page": 2}).json()["Contacts"]
    assert len(page1) == 100 and len(page2) == 20
    found = xero.api("GET", "Contacts", params={"where": 'ContactNumber=="N-007"'}).json()["Contacts"]
    assert [c["Name"] for c in found] == ["Patient 007"]
    by_name = xero.api("GET", "Contacts", params={"where": 'Name=="Patient 008"'}).json()["Contacts"]
    ids = ",".join([found[0]["ContactID"], by_name[0]["ContactID"]])
    assert len(xero.api("GET", "Contacts", params={"IDs": ids}).json()["Contacts"]) == 2
    xero.api("POST", "Contacts/" + found[0]["ContactID"], json={"ContactStatus": "ARCHIVED"})
    assert len(xero.api("GET", "Contacts").json()["Contacts"]) == 119
    assert len(xero.api("GET", "Contacts", params={"includeArchived": "true"}).json()["Contacts"]) == 120


def test_post_upserts_by_contact_number(xero):
    created = _put(xero, {"Name": "Rex", "ContactNumber": "C-9"}).json()["Contacts"][0]
    updated = xero.api(
        "POST",
        "Contacts",
        json={"Contacts": [{"ContactNumber": "C-9", "Name": "Rex Dino", "EmailAddress": "rex@example.com"}]},
    )
    element = updated.json()["Contacts"][0]
    assert element["ContactID"] == created["ContactID"] and element["Name"] == "Rex Dino"
