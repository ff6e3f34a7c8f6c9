"""The job list with several Xero organisations: an Organisation filter (the practice's organisations and
"not routed yet") and column, shown only when a practice in view has more than one; the CSV names each row's
organisation; keyset pages under the filter; another practice's organisation is a 404; appointment rows are
labelled and linked as appointments."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from tests.admin.test_jobs_support import PASSWORD, link, row_ids
from tests.conftest import CsrfClient
from webapp.extensions import db
from webapp.models import SyncJob, XeroConnection

BASE = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def connect(practice, tenant, name, status="active"):
    connection = XeroConnection(practice_id=practice.id, tenant_id=tenant, tenant_name=name, status=status)
    db.session.add(connection)
    db.session.commit()
    return connection


def rows(practice, connection, count, *, start=0, kind="invoice", status="failed"):
    made = []
    for i in range(start, start + count):
        row = SyncJob(practice_id=practice.id, connection_id=connection.id if connection else None, kind=kind,
                      cliniko_id=str(1000 + i), invoice_number=f"INV-{i}", patient_name=f"Patient {i}",
                      status=status, updated_at=BASE - timedelta(minutes=i))
        db.session.add(row)
        made.append(row)
    db.session.commit()
    return [r.id for r in made]


@pytest.fixture
def world(make_practice, make_user, web):
    north = make_practice("north", name="North Clinic")
    south = make_practice("south", name="South Clinic")
    demo = connect(north, "t-1", "Demo Clinic Pty Ltd")
    harbour = connect(north, "t-2", "Harbourside Physio Pty Ltd")
    southern = connect(south, "t-3", "Southern Org")
    ids = {
        "demo": rows(north, demo, 30),
        "harbour": rows(north, harbour, 7, start=100),
        "unrouted": rows(north, None, 2, start=200, status="pending"),
        "south": rows(south, southern, 3, start=300),
    }
    make_user("admin@example.com")
    web.login("admin@example.com", PASSWORD)
    return north, south, {"demo": demo, "harbour": harbour, "southern": southern}, ids


def filter_options(html):
    body = re.search(r'<select[^>]*name="connection"[^>]*>(.*?)</select>', html, re.S)
    return dict(re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', body.group(1))) if body else None


def test_filter_and_column_show_the_practices_organisations(world, web):
    north, south, conns, ids = world
    html = web.client.get(f"/jobs/?practice={north.id}").get_data(as_text=True)
    options = filter_options(html)
    assert options == {"": "All organisations", str(conns["demo"].id): "Demo Clinic Pty Ltd",
                       str(conns["harbour"].id): "Harbourside Physio Pty Ltd", "unrouted": "Not routed yet"}
    assert 'data-testid="column-organisation"' in html
    cells = dict(re.findall(r'data-job-id="(\d+)".*?data-testid="organisation">([^<]*)<', html, re.S))
    assert cells[str(ids["demo"][0])] == "Demo Clinic Pty Ltd"
    assert cells[str(ids["unrouted"][0])] == "not routed yet"

    # Filtering by one organisation shows exactly its rows (tabs count them too).
    html = web.client.get(f"/jobs/?practice={north.id}&connection={conns['harbour'].id}").get_data(as_text=True)
    assert sorted(row_ids(html)) == sorted(ids["harbour"])
    assert re.search(r'data-testid="count-failed">7<', html)
    assert f'<option value="{conns["harbour"].id}" selected' in html
    html = web.client.get(f"/jobs/?practice={north.id}&connection=unrouted").get_data(as_text=True)
    assert sorted(row_ids(html)) == sorted(ids["unrouted"])

    # Without a practice chosen (an admin of every practice), the options name the practice too.
    html = web.client.get("/jobs/").get_data(as_text=True)
    options = filter_options(html)
    assert options[str(conns["harbour"].id)] == "North Clinic · Harbourside Physio Pty Ltd"
    assert str(conns["southern"].id) not in options  # South has one organisation: nothing to choose there


def test_one_organisation_shows_no_filter_or_column(world, web):
    _, south, _, ids = world
    html = web.client.get(f"/jobs/?practice={south.id}").get_data(as_text=True)
    assert filter_options(html) is None
    assert 'data-testid="column-organisation"' not in html
    assert sorted(row_ids(html)) == sorted(ids["south"])


def test_keyset_pages_under_the_organisation_filter(world, web):
    north, _, conns, ids = world
    url = f"/jobs/?practice={north.id}&connection={conns['demo'].id}&per_page=25"
    seen = []
    while url:
        html = web.client.get(url).get_data(as_text=True)
        seen += row_ids(html)
        url = link(html, "next")
        assert url is None or f"connection={conns['demo'].id}" in url  # the filter travels with the pages
    want = list(db.session.scalars(select(SyncJob.id).where(SyncJob.connection_id == conns["demo"].id)
                                   .order_by(SyncJob.updated_at.desc(), SyncJob.id.desc())))
    assert seen == want and len(want) == 30


def test_csv_names_each_rows_organisation_and_follows_the_filter(world, web):
    north, _, conns, ids = world
    response = web.client.get(f"/jobs/export.csv?practice={north.id}", buffered=True)
    assert response.status_code == 200
    exported = {int(r["id"]): r["organisation"] for r in csv.DictReader(io.StringIO(response.get_data(as_text=True)))}
    assert exported[ids["demo"][0]] == "Demo Clinic Pty Ltd"
    assert exported[ids["harbour"][0]] == "Harbourside Physio Pty Ltd"
    assert exported[ids["unrouted"][0]] == ""
    response = web.client.get(f"/jobs/export.csv?practice={north.id}&connection={conns['harbour'].id}", buffered=True)
    exported = [int(r["id"]) for r in csv.DictReader(io.StringIO(response.get_data(as_text=True)))]
    assert sorted(exported) == sorted(ids["harbour"])


def test_a_disconnected_organisation_is_named_as_such(world, web):
    north, _, conns, ids = world
    conns["harbour"].status = "revoked"
    db.session.commit()
    html = web.client.get(f"/jobs/?practice={north.id}").get_data(as_text=True)
    assert filter_options(html)[str(conns["harbour"].id)] == "Harbourside Physio Pty Ltd (disconnected)"
    detail = web.client.get(f"/jobs/{ids['harbour'][0]}/").get_data(as_text=True)
    assert re.search(r'data-testid="organisation">Harbourside Physio Pty Ltd \(disconnected\)<', detail)


def test_another_practices_organisation_is_not_found(world, app, make_user):
    north, south, conns, ids = world
    make_user("north@example.com", role="support", practice_slug="north")
    support = CsrfClient(app.test_client())
    support.login("north@example.com", PASSWORD)
    assert support.client.get(f"/jobs/?connection={conns['southern'].id}").status_code == 404
    assert support.client.get(f"/jobs/export.csv?connection={conns['southern'].id}").status_code == 404
    assert support.client.get("/jobs/?connection=999999").status_code == 404
    # An organisation of one practice with another practice chosen: 404 as well (for an admin of all).
    admin = CsrfClient(app.test_client())
    admin.login("admin@example.com", PASSWORD)
    assert admin.client.get(f"/jobs/?practice={south.id}&connection={conns['demo'].id}").status_code == 404
    # Their own organisation works; malformed values are ignored like every other filter.
    html = support.client.get(f"/jobs/?connection={conns['harbour'].id}").get_data(as_text=True)
    assert sorted(row_ids(html)) == sorted(ids["harbour"])
    html = support.client.get("/jobs/?connection=abc").get_data(as_text=True)
    assert len(row_ids(html)) == 39
    assert not set(row_ids(html)) & set(ids["south"])


def test_requeue_all_matching_keeps_the_organisation_filter(world, web, redis_conn):
    from tests.security.test_audit import run_queued_jobs

    north, _, conns, ids = world
    page = web.client.get(f"/jobs/requeue-all?practice={north.id}&connection={conns['harbour'].id}&state=failed")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and re.search(r"\b7\b", text)
    assert "Xero organisation: Harbourside Physio Pty Ltd" in text
    token = re.search(r'name="csrf_token" value="([^"]+)"', text).group(1)
    response = web.client.post("/jobs/requeue-all", data={"csrf_token": token, "practice": str(north.id),
                                                          "connection": str(conns["harbour"].id), "state": "failed"})
    assert response.status_code == 302
    assert run_queued_jobs(redis_conn) == 1
    db.session.expire_all()
    states = {r.id: r.status for r in db.session.scalars(select(SyncJob).where(SyncJob.practice_id == north.id))}
    assert all(states[i] == "pending" for i in ids["harbour"])
    assert all(states[i] == "failed" for i in ids["demo"])


def test_appointment_rows_are_labelled_and_link_to_the_appointment(world, web):
    north, _, conns, _ = world
    row = SyncJob(practice_id=north.id, connection_id=conns["demo"].id, kind="appointment", cliniko_id="777",
                  invoice_number="CLK-A777", patient_name="Appointment Patient", status="synced", xero_id="X-777",
                  source={"appointment": {"id": "777"}, "invoice": {"id": "777", "business_id": "1"}})
    db.session.add(row)
    db.session.commit()
    html = web.client.get(f"/jobs/?practice={north.id}&kind=appointment").get_data(as_text=True)
    assert row_ids(html) == [row.id]
    assert ">appointment invoice<" in html
    detail = web.client.get(f"/jobs/{row.id}/").get_data(as_text=True)
    assert "Appointment invoice CLK-A777" in detail
    cliniko = re.search(r'href="([^"]+)"[^>]*data-testid="cliniko-link"', detail).group(1)
    assert cliniko.endswith("/appointments/777") and "/invoices/" not in cliniko
    assert "InvoiceID=X-777" in re.search(r'href="([^"]+)"[^>]*data-testid="xero-link"', detail).group(1)
