"""Sandbox Cliniko for appointment-driven invoicing, over real HTTP: concession prices, appointment types'
billable items, individual appointments (fields, filters, cancelled exclusion), appointment activity
(bookings, new patients' first bookings, arrivals, no-shows, cancellations, per business) and the
appointment write routes (create, update, cancel, 422 errors)."""

from datetime import datetime

import pytest
import requests

from sandbox.cliniko.generator import generate
from tests.sandbox.cliniko_fixtures import NOW, TIMEOUT, control, get, link_id, running, session, walk

T = "2025-06-02T03:00:00Z"
LATER = "2025-06-20T03:00:00Z"
SIZE = {"patients": 30, "invoices": 80}
APPOINTMENT_KINDS = ("bookings", "new_patient_bookings", "arrivals", "no_shows", "cancellations")


@pytest.fixture()
def root():
    with running(**SIZE) as url:
        control(url, "clock", {"now": T, "frozen": True})
        yield url


def _appointments(root, *filters) -> dict[str, dict]:
    records, _ = walk(session(), f"{root}/v1/individual_appointments", per_page=100, **{"q[]": list(filters)})
    return {r["id"]: r for r in records}


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# -- concession prices ------------------------------------------------------------------------------------
def test_concession_prices_are_the_generators_prices(root):
    s = session()
    prices, _ = walk(s, f"{root}/v1/concession_prices")
    expected = generate(seed=0, now=_ts(NOW), **SIZE)
    wanted = {
        (item["id"], type_id): price
        for item in expected.tables["billable_items"].values()
        for type_id, price in item["_concession_prices"].items()
    }
    got = {(link_id(p["billable_item"]), link_id(p["concession_type"])): p["price"] for p in prices}
    assert got == wanted and len(prices) == len(wanted) >= 5
    for p in prices:
        assert set(p) == {"id", "created_at", "updated_at", "price", "billable_item", "concession_type", "links"}
        assert isinstance(p["price"], str) and "." in p["price"] and p["id"].isdigit()
        assert get(s, p["billable_item"]["links"]["self"]).status_code == 200
        assert get(s, p["concession_type"]["links"]["self"]).status_code == 200
        single = get(s, p["links"]["self"])
        assert single.status_code == 200 and single.json() == p


def test_concession_prices_filter_and_sort(root):
    s = session()
    prices, _ = walk(s, f"{root}/v1/concession_prices")
    item_id = link_id(prices[0]["billable_item"])
    body = get(s, f"{root}/v1/concession_prices", **{"q[]": f"billable_item_id:={item_id}"}).json()
    assert body["total_entries"] == sum(1 for p in prices if link_id(p["billable_item"]) == item_id)
    type_id = link_id(prices[0]["concession_type"])
    body = get(s, f"{root}/v1/concession_prices", **{"q[]": f"concession_type_id:={type_id}"}).json()
    assert {link_id(p["concession_type"]) for p in body["concession_prices"]} == {type_id}
    body = get(s, f"{root}/v1/concession_prices", **{"q[]": "price:>=75", "sort": "price:desc"}).json()
    values = [float(p["price"]) for p in body["concession_prices"]]
    assert values == sorted(values, reverse=True) and min(values) >= 75
    assert body["total_entries"] == sum(1 for p in prices if float(p["price"]) >= 75)
    body = get(s, f"{root}/v1/concession_prices", **{"q[]": "price:=70,95"}).json()
    assert sorted(p["price"] for p in body["concession_prices"]) == ["70.0", "95.0"]
    assert (
        get(s, f"{root}/v1/concession_prices", **{"q[]": "updated_at:>2030-01-01T00:00:00Z"}).json()["total_entries"]
        == 0
    )
    assert get(s, f"{root}/v1/concession_prices", **{"q[]": "name:=x"}).status_code == 400
    assert get(s, f"{root}/v1/concession_prices", **{"q[]": "price:>abc"}).status_code == 400
    assert get(s, f"{root}/v1/concession_prices/999").status_code == 404


def test_concession_invoice_lines_use_the_served_concession_price(root):
    s = session()
    prices, _ = walk(s, f"{root}/v1/concession_prices")
    types = {t["name"]: t["id"] for t in walk(s, f"{root}/v1/concession_types")[0]}
    by_pair = {(link_id(p["billable_item"]), link_id(p["concession_type"])): p["price"] for p in prices}
    items, _ = walk(s, f"{root}/v1/invoice_items", per_page=100)
    concession_lines = [i for i in items if i.get("concession_type_name")]
    assert concession_lines
    for line in concession_lines:
        pair = (link_id(line["billable_item"]), types[line["concession_type_name"]])
        assert float(line["unit_price"]) == float(by_pair[pair])


def test_loaded_concession_price_replaces_the_pair_and_prices_new_lines(root):
    s = session()
    price = walk(s, f"{root}/v1/concession_prices")[0][0]
    item_id, type_id = link_id(price["billable_item"]), link_id(price["concession_type"])
    loaded = control(
        root,
        "load",
        {"concession_prices": [{"billable_item_id": item_id, "concession_type_id": type_id, "price": "12.5"}]},
    )
    new_id = loaded["ids"]["concession_prices"][0]
    body = get(s, f"{root}/v1/concession_prices", **{"q[]": f"billable_item_id:={item_id}"}).json()
    pair = [p for p in body["concession_prices"] if link_id(p["concession_type"]) == type_id]
    assert [(p["id"], p["price"]) for p in pair] == [(new_id, "12.5")]
    assert get(s, price["links"]["self"]).status_code == 404


# -- appointment types and appointments -------------------------------------------------------------------
def test_appointment_types_link_billable_item_and_product(root):
    s = session()
    types, _ = walk(s, f"{root}/v1/appointment_types")
    assert types
    for t in types:
        item = get(s, t["billable_item"]["links"]["self"])
        assert item.status_code == 200 and item.json()["price"]
        if "product" in t:
            assert get(s, t["product"]["links"]["self"]).status_code == 200
    assert any("product" in t for t in types) and any("product" not in t for t in types)


def test_individual_appointments_have_every_schema_field(root):
    control(root, "activity", {"bookings": 1, "cancellations": 1, "arrivals": 1})
    rows = _appointments(root, "archived_at:*")
    schema_fields = {
        "appointment_type", "archived_at", "attendees", "booking_ip_address", "business", "cancellation_note",
        "cancellation_reason", "cancellation_reason_description", "cancelled_at", "conflicts", "created_at",
        "deleted_at", "did_not_arrive", "email_reminder_sent", "ends_at", "has_patient_appointment_notes", "id",
        "invoice_status", "links", "notes", "online_booking_policy_accepted", "patient", "patient_arrived",
        "patient_case", "patient_name", "practitioner", "repeat_rule", "repeated_from", "repeats",
        "sms_reminder_sent", "starts_at", "telehealth_url", "treatment_note_status", "updated_at",
    }  # fmt: skip
    link_only_when_set = {"patient_case", "repeated_from"}
    for appt in rows.values():
        assert schema_fields - link_only_when_set <= set(appt) <= schema_fields, set(appt) ^ schema_fields
        for relation in ("appointment_type", "business", "patient", "practitioner"):
            assert appt[relation]["links"]["self"].startswith(f"{root}/v1/")
        assert appt["repeats"] is None


def test_cancelled_appointments_are_left_out_unless_asked_for(root):
    s = session()
    done = control(root, "activity", {"cancellations": 2})
    cancelled = set(done["cancellations"])
    assert len(cancelled) == 2
    assert not cancelled & set(_appointments(root))
    assert cancelled <= set(_appointments(root, "cancelled_at:?"))
    assert cancelled <= set(_appointments(root, "archived_at:*"))
    assert not cancelled & set(_appointments(root, "cancelled_at:!?"))
    recent = _appointments(root, f"updated_at:>={T}", "archived_at:*")
    assert cancelled <= set(recent)
    one = next(iter(cancelled))
    url = f"{root}/v1/individual_appointments/{one}"
    assert get(s, url).status_code == 404
    assert get(s, url, **{"q[]": "cancelled_at:*"}).status_code == 200
    assert get(s, url, **{"q[]": "archived_at:*"}).status_code == 200


# -- activity --------------------------------------------------------------------------------------------
def test_bookings_are_future_appointments_for_existing_patients(root):
    before = _appointments(root, "archived_at:*", "deleted_at:*")
    patients_before = {p["id"] for p in walk(session(), f"{root}/v1/patients", per_page=100)[0]}
    done = control(root, "activity", {"bookings": 4})
    assert done["now"] == T and len(done["bookings"]) == 4
    assert set(done) == {"now", "new_invoices", "payments", "edits", "archives", "deletes", "reopens", "bookings"}
    recent = _appointments(root, f"updated_at:>={T}")
    for appt_id in done["bookings"]:
        appt = recent[appt_id]
        assert appt_id not in before
        assert appt["created_at"] == appt["updated_at"] == T and _ts(appt["starts_at"]) > _ts(T)
        assert appt["patient_arrived"] is False and appt["did_not_arrive"] is False and appt["cancelled_at"] is None
        assert link_id(appt["patient"]) in patients_before
    assert set(recent) == set(done["bookings"])


def test_new_patient_bookings_create_a_patient_and_their_first_appointment(root):
    s = session()
    done = control(root, "activity", {"new_patient_bookings": 3})
    assert len(done["new_patient_bookings"]) == len(done["new_patients"]) == 3
    patients = {p["id"]: p for p in walk(s, f"{root}/v1/patients", **{"q[]": f"created_at:>={T}"})[0]}
    assert set(patients) == set(done["new_patients"])
    for appt_id, patient_id in zip(done["new_patient_bookings"], done["new_patients"], strict=True):
        patient = patients[patient_id]
        assert patient["created_at"] == patient["updated_at"] == T and patient["first_name"]
        theirs = _appointments(root, f"patient_id:={patient_id}", "archived_at:*", "deleted_at:*")
        assert list(theirs) == [appt_id]
        appt = theirs[appt_id]
        assert appt["created_at"] == T and _ts(appt["starts_at"]) > _ts(T)
        assert appt["patient_name"] == f"{patient['first_name']} {patient['last_name']}"


def test_arrivals_mark_ended_appointments_arrived_without_a_cliniko_invoice(root):
    s = session()
    invoices_before = get(s, f"{root}/v1/invoices", **{"q[]": ["archived_at:*", "deleted_at:*"]}).json()
    done = control(root, "activity", {"arrivals": 2})
    assert len(done["arrivals"]) == 2 and done["new_invoices"] == []
    recent = _appointments(root, f"updated_at:>={T}")
    assert set(recent) == set(done["arrivals"])
    for appt_id in done["arrivals"]:
        appt = recent[appt_id]
        assert appt["patient_arrived"] is True and appt["did_not_arrive"] is False and appt["cancelled_at"] is None
        assert _ts(appt["ends_at"]) <= _ts(T) and appt["updated_at"] == T and appt["invoice_status"] is None
        assert get(s, f"{root}/v1/appointments/{appt_id}/invoices").json()["total_entries"] == 0
    invoices_after = get(s, f"{root}/v1/invoices", **{"q[]": ["archived_at:*", "deleted_at:*"]}).json()
    assert invoices_after["total_entries"] == invoices_before["total_entries"]


def test_arrivals_and_no_shows_use_existing_bookings_once_they_have_ended(root):
    booked = control(root, "activity", {"bookings": 6})["bookings"]
    control(root, "clock", {"now": LATER, "frozen": True})
    open_before = {
        i
        for i, a in _appointments(root).items()
        if _ts(a["ends_at"]) <= _ts(LATER) and not a["patient_arrived"] and not a["did_not_arrive"]
    }
    assert set(booked) <= open_before
    done = control(root, "activity", {"arrivals": 2, "no_shows": 2})
    assert set(done["arrivals"]) | set(done["no_shows"]) <= open_before
    assert not set(done["arrivals"]) & set(done["no_shows"])
    recent = _appointments(root, f"updated_at:>{T}")
    assert set(recent) == set(done["arrivals"]) | set(done["no_shows"])
    for appt_id in done["no_shows"]:
        assert recent[appt_id]["did_not_arrive"] is True and recent[appt_id]["patient_arrived"] is False
        assert recent[appt_id]["updated_at"] == LATER
    for appt_id in done["arrivals"]:
        assert recent[appt_id]["patient_arrived"] is True


def test_cancellations_carry_a_documented_reason(root):
    done = control(root, "activity", {"cancellations": 3})
    cancelled = _appointments(root, f"cancelled_at:>={T}")
    assert set(cancelled) == set(done["cancellations"]) and len(cancelled) == 3
    reasons = {10: "Feeling Better", 20: "Condition Worse", 30: "Sick", 31: "COVID-19 related", 40: "Away",
               50: "Other", 60: "Work"}  # fmt: skip
    for appt in cancelled.values():
        assert appt["cancelled_at"] == appt["updated_at"] == T
        assert reasons[appt["cancellation_reason"]] == appt["cancellation_reason_description"]
        assert _ts(appt["starts_at"]) > _ts(T) and appt["patient_arrived"] is False


def test_business_id_keeps_appointment_activity_to_one_business(root):
    s = session()
    businesses = walk(s, f"{root}/v1/businesses")[0]
    for business in businesses:
        done = control(
            root,
            "activity",
            {"bookings": 2, "new_patient_bookings": 1, "arrivals": 2, "no_shows": 1, "cancellations": 1,
             "business_id": business["id"]},
        )  # fmt: skip
        touched = [i for kind in APPOINTMENT_KINDS for i in done[kind]]
        assert len(touched) == 7
        rows = _appointments(root, f"id:={','.join(touched)}", "archived_at:*")
        assert {link_id(a["business"]) for a in rows.values()} == {business["id"]}
        practitioners = {p["id"] for p in walk(s, f"{root}/v1/businesses/{business['id']}/practitioners")[0]}
        assert {link_id(a["practitioner"]) for a in rows.values()} <= practitioners
    archived = get(s, f"{root}/v1/businesses", **{"q[]": "archived_at:?"}).json()["businesses"][0]
    for bad in ("12345", archived["id"]):
        r = requests.post(f"{root}/_sandbox/activity", json={"bookings": 1, "business_id": bad}, timeout=TIMEOUT)
        assert r.status_code == 400 and "business_id" in r.json()["error"]


def test_appointment_activity_is_reproducible_and_leaves_invoice_kinds_alone():
    body = {"bookings": 2, "new_patient_bookings": 2, "arrivals": 2, "no_shows": 1, "cancellations": 1}
    runs = []
    for _ in range(2):
        with running(**SIZE) as url:
            control(url, "clock", {"now": T, "frozen": True})
            runs.append((control(url, "activity", body), control(url, "activity", {"payments": 2})))
            r = requests.post(f"{url}/_sandbox/activity", json={"arivals": 1}, timeout=TIMEOUT)
            assert r.status_code == 400
    assert runs[0] == runs[1]
    first, second = runs[0]
    assert all(first[k] == [] for k in ("new_invoices", "payments", "edits", "archives", "deletes", "reopens"))
    assert set(second) == {"now", "new_invoices", "payments", "edits", "archives", "deletes", "reopens"}
    assert len(second["payments"]) == 2


# -- writes ----------------------------------------------------------------------------------------------
def _booking_refs(root) -> dict:
    s = session()
    business = walk(s, f"{root}/v1/businesses")[0][0]
    practitioner = walk(s, f"{root}/v1/businesses/{business['id']}/practitioners")[0][0]
    patient = walk(s, f"{root}/v1/patients")[0][0]
    atype = walk(s, f"{root}/v1/appointment_types")[0][0]
    return {
        "patient_id": patient["id"],
        "practitioner_id": practitioner["id"],
        "appointment_type_id": atype["id"],
        "business_id": business["id"],
        "_minutes": atype["duration_in_minutes"],
        "_patient": patient,
    }


def test_create_update_and_cancel_an_appointment(root):
    s = session()
    refs = _booking_refs(root)
    body = {k: v for k, v in refs.items() if not k.startswith("_")}
    r = s.post(
        f"{root}/v1/individual_appointments", json={**body, "starts_at": "2025-06-03T00:00:00Z"}, timeout=TIMEOUT
    )
    assert r.status_code == 201, r.text
    appt = r.json()
    assert r.headers["Location"] == appt["links"]["self"]
    assert appt["created_at"] == appt["updated_at"] == T
    minutes = (_ts(appt["ends_at"]) - _ts(appt["starts_at"])).total_seconds() / 60
    assert appt["starts_at"] == "2025-06-03T00:00:00Z" and minutes == refs["_minutes"]
    assert {k: link_id(appt[k[:-3]]) for k in body} == body
    assert appt["patient_name"] == f"{refs['_patient']['first_name']} {refs['_patient']['last_name']}"
    assert get(s, appt["links"]["self"]).json() == appt

    control(root, "clock", {"now": LATER, "frozen": True})
    r = s.patch(appt["links"]["self"], json={"patient_arrived": True, "notes": "Seen"}, timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    assert r.json()["patient_arrived"] is True and r.json()["notes"] == "Seen" and r.json()["updated_at"] == LATER
    assert appt["id"] in _appointments(root, f"updated_at:>={LATER}")
    r = s.patch(appt["links"]["self"], json={"starts_at": "2025-06-04T01:00:00Z"}, timeout=TIMEOUT)
    moved = r.json()
    assert moved["starts_at"] == "2025-06-04T01:00:00Z"
    assert (_ts(moved["ends_at"]) - _ts(moved["starts_at"])).total_seconds() / 60 == refs["_minutes"]

    r = s.patch(
        f"{appt['links']['self']}/cancel",
        json={"cancellation_reason": 40, "cancellation_note": "Away"},
        timeout=TIMEOUT,
    )
    assert r.status_code == 204 and r.content == b""
    assert get(s, appt["links"]["self"]).status_code == 404
    cancelled = get(s, appt["links"]["self"], **{"q[]": "cancelled_at:*"}).json()
    assert cancelled["cancelled_at"] == LATER and cancelled["cancellation_reason"] == 40
    assert cancelled["cancellation_reason_description"] == "Away" and cancelled["cancellation_note"] == "Away"


def test_write_validation_errors_are_422_with_errors(root):
    s = session()
    refs = _booking_refs(root)
    body = {k: v for k, v in refs.items() if not k.startswith("_")}
    url = f"{root}/v1/individual_appointments"
    r = s.post(url, json={}, timeout=TIMEOUT)
    assert r.status_code == 422
    assert r.json()["message"] == "Validation Failed"
    assert set(r.json()["errors"]) == {
        "starts_at",
        "patient_id",
        "practitioner_id",
        "appointment_type_id",
        "business_id",
    }
    r = s.post(url, json={**body, "patient_id": "1", "starts_at": "not a time"}, timeout=TIMEOUT)
    assert r.status_code == 422 and set(r.json()["errors"]) == {"patient_id", "starts_at"}
    r = s.post(
        url, json={**body, "starts_at": "2025-06-03T01:00:00Z", "ends_at": "2025-06-03T00:00:00Z"}, timeout=TIMEOUT
    )
    assert r.status_code == 422 and set(r.json()["errors"]) == {"ends_at"}
    appt = s.post(url, json={**body, "starts_at": "2025-06-03T01:00:00Z"}, timeout=TIMEOUT).json()
    r = s.patch(appt["links"]["self"], json={"did_not_arrive": "yes"}, timeout=TIMEOUT)
    assert r.status_code == 422 and set(r.json()["errors"]) == {"did_not_arrive"}
    for bad in ({}, {"cancellation_reason": 11}, {"cancellation_reason": "x"}):
        r = s.patch(f"{appt['links']['self']}/cancel", json=bad, timeout=TIMEOUT)
        assert r.status_code == 422 and set(r.json()["errors"]) == {"cancellation_reason"}
    assert s.patch(f"{url}/123", json={"notes": "x"}, timeout=TIMEOUT).status_code == 404
    assert s.patch(f"{url}/123/cancel", json={"cancellation_reason": 50}, timeout=TIMEOUT).status_code == 404
    assert s.delete(appt["links"]["self"], timeout=TIMEOUT).status_code == 405
    assert requests.post(url, json=body, timeout=TIMEOUT).status_code in (401, 403)  # the API guard applies


# -- contract ------------------------------------------------------------------------------------------------
def test_appointment_activity_and_writes_validate_against_the_spec(root):
    contract = pytest.importorskip("tests.sandbox.test_cliniko_contract")
    spec = contract.patch_quirks(contract._spec())
    s = session()
    done = control(
        root,
        "activity",
        {"bookings": 2, "new_patient_bookings": 2, "arrivals": 2, "no_shows": 1, "cancellations": 2},
    )
    failures = []

    def check(template, body, pointer=None):
        if pointer is None:
            errors = contract.strict_errors(spec, template, body)
        else:
            validator = contract.OAS30ReadValidator(
                {**spec, "$ref": pointer}, format_checker=contract.oas30_format_checker
            )
            errors = list(validator.iter_errors(body))
        failures.extend(f"{template} {list(e.absolute_path)}: {e.message[:200]}" for e in errors[:3])

    appts = get(
        s, f"{root}/v1/individual_appointments", per_page=100, **{"q[]": [f"updated_at:>={T}", "archived_at:*"]}
    )
    assert appts.json()["total_entries"] == sum(len(done[k]) for k in APPOINTMENT_KINDS)
    check("/individual_appointments", appts.json())
    patients = get(s, f"{root}/v1/patients", **{"q[]": f"created_at:>={T}"}).json()
    assert patients["total_entries"] == 2
    check("/patients", patients)
    check("/concession_prices", get(s, f"{root}/v1/concession_prices").json())
    refs = {k: v for k, v in _booking_refs(root).items() if not k.startswith("_")}
    created = s.post(
        f"{root}/v1/individual_appointments", json={**refs, "starts_at": "2025-06-05T00:00:00Z"}, timeout=TIMEOUT
    )
    base = "#/paths/~1individual_appointments"
    check("POST", created.json(), f"{base}/post/responses/201/content/application~1json/schema")
    patched = s.patch(created.json()["links"]["self"], json={"did_not_arrive": True}, timeout=TIMEOUT)
    check("PATCH", patched.json(), f"{base}~1{{id}}/patch/responses/200/content/application~1json/schema")
    invalid = s.post(f"{root}/v1/individual_appointments", json={}, timeout=TIMEOUT)
    check("422", invalid.json(), "#/components/responses/ValidationError/content/application~1json/schema")
    assert not failures, "\n".join(failures)
