"""Cliniko patient → Xero contact: the key, the name rules, data minimisation and hostile input."""

import pytest

from webapp.sync.mapping_common import MappingError
from webapp.sync.mapping_contacts import contact_number, contact_payload, details_hash, disambiguated_name
from webapp.sync.settings import PracticeSettings

PATIENT = {
    "id": "123", "first_name": "Jane", "last_name": "Smith", "email": "jane@example.com",
    "patient_phone_numbers": [{"number": "0400 000 000", "phone_type": "Mobile"},
                              {"number": "02 9999 0000", "phone_type": "Home"},
                              {"number": "02 8888 0000", "phone_type": "Work"},
                              {"number": "0411 111 111", "phone_type": "Mobile"}],
    "address_1": "1 King St", "address_2": "Unit 4", "city": "Newtown", "state": "NSW", "post_code": "2042",
    "country": "Australia",
}


def s(**kw):
    return PracticeSettings.from_dict(kw)


def test_contact_number_is_prefix_plus_id():
    assert contact_number(s(), "123") == "CLK-123"
    assert contact_number(s(contact_number_prefix="PX"), 9) == "PX9"


def test_contact_number_without_patient_id():
    with pytest.raises(MappingError) as info:
        contact_number(s(), None)
    assert info.value.category == "mapping"


def test_default_sends_name_and_email():
    plan = contact_payload(PATIENT, s())
    assert plan.payload == {"ContactNumber": "CLK-123", "Name": "Jane Smith", "FirstName": "Jane",
                            "LastName": "Smith", "EmailAddress": "jane@example.com"}
    assert plan.name == "Jane Smith" and plan.contact_number == "CLK-123"


def test_name_only_sends_no_details():
    payload = contact_payload(PATIENT, s(contact_details="name")).payload
    assert set(payload) == {"ContactNumber", "Name", "FirstName", "LastName"}


def test_full_details():
    payload = contact_payload(PATIENT, s(contact_details="full")).payload
    assert payload["Phones"] == [{"PhoneType": "MOBILE", "PhoneNumber": "0400 000 000"},
                                 {"PhoneType": "DEFAULT", "PhoneNumber": "02 9999 0000"},
                                 {"PhoneType": "DDI", "PhoneNumber": "02 8888 0000"}]
    address = {"AddressLine1": "1 King St", "AddressLine2": "Unit 4", "City": "Newtown", "Region": "NSW",
               "PostalCode": "2042", "Country": "Australia"}
    assert payload["Addresses"] == [{"AddressType": "POBOX", **address}, {"AddressType": "STREET", **address}]


def test_full_details_with_nothing_to_send():
    payload = contact_payload({"id": "1", "first_name": "A", "patient_phone_numbers": None},
                              s(contact_details="full")).payload
    assert "Phones" not in payload and "Addresses" not in payload


@pytest.mark.parametrize("email", ["not-an-email", "a@b", "two@@example.com", "@example.com", "x@.com"])
def test_invalid_email_is_dropped_with_a_reason(email):
    plan = contact_payload({**PATIENT, "email": email}, s())
    assert "EmailAddress" not in plan.payload
    assert any("not a valid address" in r["rule"] for r in plan.reasons)


def test_name_is_cleaned():
    plan = contact_payload({"id": "1", "first_name": "  Zoë\x00\t ", "last_name": "Nguyễn\u202e\x07  Jr "}, s())
    assert plan.payload["Name"] == "Zoë Nguyễn Jr"
    assert plan.payload["FirstName"] == "Zoë"


@pytest.mark.parametrize(("first", "last"), [("明", "王"), ("Иван", "Петров"), ("Liam", "O'Brien"),
                                             ("José", "García")])
def test_unicode_names(first, last):
    assert contact_payload({"id": "1", "first_name": first, "last_name": last}, s()).payload["Name"] == \
        f"{first} {last}"


def test_ten_kilobyte_names_are_cut_to_xero_limits():
    payload = contact_payload({"id": "1", "first_name": "A" * 10_240, "last_name": "B" * 10_240}, s()).payload
    assert len(payload["Name"]) == 255
    assert len(payload["FirstName"]) == 255 and len(payload["LastName"]) == 255


@pytest.mark.parametrize("patient", [{"id": "77"}, {"id": "77", "first_name": None, "last_name": " \x00 "}])
def test_no_name_falls_back_to_patient_id(patient):
    plan = contact_payload(patient, s())
    assert plan.payload["Name"] == "Patient 77"
    assert "FirstName" not in plan.payload


@pytest.mark.parametrize("field", sorted(PATIENT))
def test_each_patient_field_missing(field):
    patient = {k: v for k, v in PATIENT.items() if k != field}
    if field == "id":
        with pytest.raises(MappingError):
            contact_payload(patient, s(contact_details="full"))
        return
    payload = contact_payload(patient, s(contact_details="full")).payload
    assert payload["ContactNumber"] == "CLK-123"
    assert payload["Name"]


def test_patient_not_a_dict():
    with pytest.raises(MappingError):
        contact_payload(None, s())


def test_bad_phone_entries_are_ignored():
    patient = {"id": "1", "patient_phone_numbers": ["0400", {"number": None}, {"number": "0400 1", "phone_type": None}]}
    assert contact_payload(patient, s(contact_details="full")).payload["Phones"] == \
        [{"PhoneType": "DEFAULT", "PhoneNumber": "0400 1"}]


def test_disambiguated_name():
    assert disambiguated_name("Jane Smith", "CLK-123") == "Jane Smith (CLK-123)"
    long = disambiguated_name("J" * 255, "CLK-123")
    assert len(long) == 255 and long.endswith(" (CLK-123)")


def test_details_hash_changes_with_details_only():
    a = contact_payload(PATIENT, s()).payload
    assert details_hash(a) == details_hash(dict(reversed(list(a.items()))))
    assert details_hash(a) != details_hash(contact_payload({**PATIENT, "email": "new@example.com"}, s()).payload)
    assert len(details_hash(a)) == 64
