"""Appointment-driven invoicing and contacts at first booking, end to end against both sandboxes (issue 8)."""

from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
import requests

from tests.support.engine import money, wire_clinic
from webapp.extensions import db
from webapp.models import Practice
from webapp.sync.discovery import poll
from webapp.sync_cli import drain


@pytest.fixture
def clinic(app, web, make_user, make_practice, xero_app, xero_sandbox):
    from sandbox.cliniko.app import create_app

    with wire_clinic(app, web, make_user, make_practice,
                     create_app(api_key="sandbox-key-au1", seed=23, patients=30, invoices=60),
                     xero_sandbox) as clinic:
        yield clinic


def start_now(clinic, **settings):
    """Switch the practice's settings and start its cursors at the sandbox's now (a practice enabled today)."""
    now = datetime.fromisoformat(clinic.cliniko("GET", "clock")["now"].replace("Z", "+00:00")).isoformat()
    practice = db.session.get(Practice, clinic.practice.id)
    practice.settings = {**(practice.settings or {}), **settings}
    practice.poll_cursors = {"invoices": now, "individual_appointments": now, "appointments_ended": now}
    db.session.commit()


def xero(clinic):
    org = clinic.xero_org()
    return ({i["InvoiceNumber"]: i for i in org["invoices"]},
            {c["ContactNumber"]: c for c in org["contacts"] if c.get("ContactNumber")})


def test_completed_appointments_become_xero_invoices_exactly_once(clinic):
    start_now(clinic, invoice_source="appointments")
    done = clinic.cliniko("POST", "activity", json={"arrivals": 5, "no_shows": 2, "cancellations": 2,
                                                     "bookings": 3})
    poll(clinic.practice.id)
    drain(clinic.practice.id, timeout=120)

    rows = {r.cliniko_id: r for r in clinic.rows("appointment")}
    invoices, contacts = xero(clinic)
    for appt_id in done["arrivals"]:
        row = rows[appt_id]
        assert row.status == "synced", (row.status, row.failure_reason)
        assert row.invoice_number == f"A{appt_id}"
        sent = invoices[row.invoice_number]
        assert money(sent["Total"]) == money(row.amount) > 0
        assert sent["Contact"] in {c["Name"] for c in contacts.values()}  # the patient's contact
    for appt_id in done["no_shows"]:
        assert rows[appt_id].status == "skipped"
        assert rows[appt_id].status_reason == "Patient did not arrive (marked in Cliniko)"
    for appt_id in done["cancellations"]:
        assert rows[appt_id].status == "skipped"
        assert rows[appt_id].status_reason.startswith("Appointment cancelled in Cliniko")
    for appt_id in done["bookings"]:
        assert appt_id not in rows  # not happened yet: nothing to invoice
    assert len(invoices) == len(done["arrivals"])
    assert not clinic.rows("invoice")  # Cliniko invoices are not read in appointment mode

    # Polling again, and a second arrival batch, never sends a visit twice.
    more = clinic.cliniko("POST", "activity", json={"arrivals": 2})
    poll(clinic.practice.id)
    drain(clinic.practice.id, timeout=120)
    invoices, _ = xero(clinic)
    assert len(invoices) == len(done["arrivals"]) + len(more["arrivals"])
    assert all(len([n for n in invoices if n == f"A{a}"]) == 1 for a in done["arrivals"] + more["arrivals"])


def api(clinic, path: str, **params):
    """A record or list read from sandbox Cliniko's public API, as any Cliniko client would."""
    response = requests.get(f"{clinic.cliniko_url}/v1/{path}", params=params, auth=("sandbox-key-au1", ""),
                            headers={"User-Agent": "Tests (tests@example.com)", "Accept": "application/json"},
                            timeout=30)
    response.raise_for_status()
    return response.json()


def link_id(record: dict, name: str) -> str | None:
    link = (record.get(name) or {}).get("links", {}).get("self")
    return link.rsplit("/", 1)[-1] if link else None


def test_price_follows_the_appointment_type_and_the_patients_concession(clinic):
    start_now(clinic, invoice_source="appointments")
    done = clinic.cliniko("POST", "activity", json={"arrivals": 6})
    poll(clinic.practice.id)
    concession = {(link_id(c, "billable_item"), link_id(c, "concession_type")): c["price"]
                  for c in api(clinic, "concession_prices", per_page=100)["concession_prices"]}
    assert concession
    rows = {r.cliniko_id: r for r in clinic.rows("appointment")}
    for appt_id in done["arrivals"]:
        appt = api(clinic, f"individual_appointments/{appt_id}")
        atype = api(clinic, f"appointment_types/{link_id(appt, 'appointment_type')}")
        item = api(clinic, f"billable_items/{link_id(atype, 'billable_item')}")
        patient = api(clinic, f"patients/{link_id(appt, 'patient')}")
        line = rows[appt_id].source["items"][0]
        price = concession.get((str(item["id"]), link_id(patient, "concession_type")), item["price"])
        assert Decimal(line["unit_price"]) == Decimal(str(price))
        assert line["name"] == item["name"]


def test_conditions_on_types_and_claims_skip_with_reasons(clinic):
    from webapp.sync import catalogue

    types = catalogue.lookup(clinic.practice.id, "appointment_type")
    names = {cid: t["name"] for cid, t in types.items()}
    massage = next(cid for cid, name in names.items() if name == "Remedial Massage")
    pilates = next(cid for cid, name in names.items() if name == "Clinical Pilates")
    start_now(clinic, invoice_source="appointments", claim_appointment_types=[massage],
              only_appointment_types=[cid for cid in names if cid != pilates])
    clinic.cliniko("POST", "activity", json={"arrivals": 25})
    poll(clinic.practice.id)
    drain(clinic.practice.id, timeout=120)
    invoices, _ = xero(clinic)
    by_type = {}
    for row in clinic.rows("appointment"):
        by_type.setdefault(row.source["appointment_type"]["id"], []).append(row)
    assert by_type.get(massage) or by_type.get(pilates), "the sandbox booked neither excluded type"
    for row in by_type.get(massage, []):
        assert row.status == "skipped" and "billed as a claim" in row.status_reason
        assert row.invoice_number not in invoices
    for row in by_type.get(pilates, []):
        assert row.status == "skipped" and "not one of the types invoiced" in row.status_reason
    others = [r for cid, rows in by_type.items() if cid not in (massage, pilates) for r in rows]
    assert others and all(r.status == "synced" and r.invoice_number in invoices for r in others)


def test_switching_mode_never_invoices_a_visit_twice(clinic, runner):
    # Invoice mode first: Cliniko's own invoices (most with an appointment) reach Xero.
    since = (date.today() - timedelta(days=400)).isoformat()
    result = runner.invoke(args=["sync", "backfill", clinic.practice.slug, "--since", since, "--wait"])
    assert result.exit_code == 0, result.output
    synced = [r for r in clinic.rows("invoice") if r.status == "synced" and r.source["invoice"].get("appointment_id")]
    assert synced
    invoiced_appointments = {r.source["invoice"]["appointment_id"]: r for r in synced}

    # Appointment mode, reading appointments from the start: those visits are already in Xero.
    practice = db.session.get(Practice, clinic.practice.id)
    practice.settings = {**practice.settings, "invoice_source": "appointments"}
    practice.poll_cursors = {**practice.poll_cursors, "individual_appointments": "2000-01-01T00:00:00+00:00"}
    db.session.commit()
    before, _ = xero(clinic)
    poll(clinic.practice.id)
    drain(clinic.practice.id, timeout=120)
    rows = {r.cliniko_id: r for r in clinic.rows("appointment")}
    for appt_id, invoice_row in invoiced_appointments.items():
        row = rows[appt_id]
        assert row.status == "skipped"
        if row.status_reason != "Patient did not arrive (marked in Cliniko)":  # e.g. a no-show fee invoice
            assert f"already has a Cliniko invoice in Xero ({invoice_row.invoice_number})" in row.status_reason
    after, _ = xero(clinic)
    new = set(after) - set(before)
    assert all(n.startswith("A") for n in new)
    assert not {n[1:] for n in new} & set(invoiced_appointments)

    # Back to invoice mode: a Cliniko invoice made later for a visit invoiced from its appointment is skipped.
    arrived = clinic.cliniko("POST", "activity", json={"arrivals": 1})["arrivals"][0]
    poll(clinic.practice.id)
    drain(clinic.practice.id, timeout=120)
    visit = next(r for r in clinic.rows("appointment") if r.cliniko_id == arrived)
    assert visit.status == "synced"
    start_now(clinic, invoice_source="invoices")
    clinic.cliniko("POST", "load", json={"invoices": [{
        "id": "990000001", "number": 99001, "appointment_id": visit.cliniko_id,
        "patient_id": visit.parent_cliniko_id, "business_id": visit.source["invoice"]["business_id"],
        "practitioner_id": visit.source["invoice"]["practitioner_id"],
        "issue_date": visit.source["invoice"]["issue_date"], "status": 10, "total_amount": "90.0"}]})
    poll(clinic.practice.id)
    drain(clinic.practice.id, timeout=120)
    row = next(r for r in clinic.rows("invoice") if r.cliniko_id == "990000001")
    assert row.status == "skipped"
    assert f"already in Xero as {visit.invoice_number}" in row.status_reason
    assert "99001" not in xero(clinic)[0]


def test_first_booking_makes_the_contact_before_any_invoice(clinic):
    start_now(clinic, contact_timing="first_booking")
    done = clinic.cliniko("POST", "activity", json={"new_patient_bookings": 3})
    poll(clinic.practice.id)
    drain(clinic.practice.id, timeout=120)
    invoices, contacts = xero(clinic)
    rows = {r.cliniko_id: r for r in clinic.rows("contact")}
    for patient_id in done["new_patients"]:
        assert rows[patient_id].status == "synced"
        assert any(c["ContactID"] == rows[patient_id].xero_id for c in contacts.values())
    assert not invoices  # nobody has been invoiced yet
    assert not clinic.rows("invoice") and not clinic.rows("appointment")


def test_first_booking_respects_data_minimisation(clinic):
    start_now(clinic, contact_timing="first_booking", contact_details="name")
    done = clinic.cliniko("POST", "activity", json={"new_patient_bookings": 2})
    poll(clinic.practice.id)
    drain(clinic.practice.id, timeout=120)
    _, contacts = xero(clinic)
    rows = {r.cliniko_id: r for r in clinic.rows("contact")}
    for patient_id in done["new_patients"]:
        assert set(rows[patient_id].source["patient"]) <= {"id", "title", "first_name", "last_name",
                                                             "preferred_first_name", "updated_at"}
        sent = next(c for c in contacts.values() if c["ContactID"] == rows[patient_id].xero_id)
        assert not sent.get("EmailAddress")


def test_ended_mode_invoices_a_visit_nobody_marked_arrived(clinic):
    """In "ended" mode an appointment that simply ended (no change in Cliniko since it was booked) is found by
    its end time and invoiced; a cancelled one that ended is not."""
    start_now(clinic, invoice_source="appointments", appointment_completion="ended")
    first = api(clinic, "individual_appointments", per_page=1)["individual_appointments"][0]
    refs = {name: link_id(first, name) for name in ("practitioner", "appointment_type", "business")}
    body = {f"{k}_id": v for k, v in refs.items()}
    body["patient_id"] = str(api(clinic, "patients", per_page=1)["patients"][0]["id"])
    session = requests.Session()
    session.auth = ("sandbox-key-au1", "")
    session.headers["User-Agent"] = "Tests (tests@example.com)"
    now = datetime.fromisoformat(clinic.cliniko("GET", "clock")["now"].replace("Z", "+00:00"))
    made = []
    for minutes in (90, 60):
        response = session.post(f"{clinic.cliniko_url}/v1/individual_appointments", timeout=30, json={
            **body, "starts_at": (now - timedelta(minutes=minutes)).isoformat(),
            "ends_at": (now - timedelta(minutes=minutes - 30)).isoformat()})
        assert response.status_code == 201, response.text
        made.append(response.json())
    cancelled = session.patch(f"{made[1]['links']['self']}/cancel", json={"cancellation_reason": 50}, timeout=30)
    assert cancelled.status_code == 204
    # Both were booked before the practice's updated_at cursor: only their end time can bring them in.
    practice = db.session.get(Practice, clinic.practice.id)
    later = (now + timedelta(seconds=5)).isoformat()
    practice.poll_cursors = {**practice.poll_cursors, "individual_appointments": later,
                             "appointments_ended": (now - timedelta(hours=3)).isoformat()}
    db.session.commit()
    poll(clinic.practice.id)
    drain(clinic.practice.id, timeout=120)
    rows = {r.cliniko_id: r for r in clinic.rows("appointment")}
    ended = rows[str(made[0]["id"])]
    assert ended.status == "synced", (ended.status, ended.failure_reason)
    assert ended.invoice_number in xero(clinic)[0]
    assert str(made[1]["id"]) not in rows  # cancelled: the ended walk leaves cancelled appointments out
    assert datetime.fromisoformat(db.session.get(Practice, clinic.practice.id).poll_cursors["appointments_ended"]) \
        > now - timedelta(minutes=5)


def test_dry_run_sends_nothing_and_shows_the_payloads(clinic, web):
    from webapp.sync.push import push

    start_now(clinic, invoice_source="appointments", dry_run=True)
    done = clinic.cliniko("POST", "activity", json={"arrivals": 2, "new_patient_bookings": 1})
    calls_before = clinic.xero("GET", "state").get("calls")
    poll(clinic.practice.id)
    result = push(clinic.practice.id, "test-worker", time_budget=10)
    assert result.stopped == "dry run" and result.synced == 0
    invoices, contacts = xero(clinic)
    assert not invoices and not contacts
    assert clinic.xero("GET", "state").get("calls") == calls_before  # not one call to Xero
    rows = {r.cliniko_id: r for r in clinic.rows("appointment")}
    for appt_id in done["arrivals"]:
        row = rows[appt_id]
        assert row.status == "pending" and row.xero_id is None
        response = web.client.get(f"/jobs/{row.id}/")
        assert response.status_code == 200
        page = response.get_data(as_text=True)
        assert f"A{appt_id}" in page and 'data-testid="preview-payload"' in page
        assert f"{money(row.amount)}" in page

    # Turned off: the work discovered meanwhile is sent, once.
    start_now(clinic, invoice_source="appointments", dry_run=False)
    drain(clinic.practice.id, timeout=120)
    invoices, _ = xero(clinic)
    assert sorted(invoices) == sorted(f"A{a}" for a in done["arrivals"])

