"""Reconciliation of a practice with two Xero organisations (sandboxes): each Cliniko invoice is compared with
the organisation its row went to, so a clean two-organisation sync reconciles clean, with one part per
organisation; a difference in one organisation is reported there (and named) and not in the other."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest

from sandbox.xero.fixtures import DEMO_ORG_NAME, SECOND_ORG_NAME
from tests.sync.test_organisations import connections, two_orgs  # noqa: F401  (fixture)
from webapp.extensions import db
from webapp.sync import states
from webapp.sync.reconciliation import reconcile

FROM, TO = date.today() - timedelta(days=400), date.today()


@pytest.fixture
def synced(two_orgs):  # noqa: F811
    from webapp.sync import routing
    from webapp.sync.backfill import run, start
    from webapp.sync.catalogue import lookup
    from webapp.sync_cli import drain

    clinic = two_orgs
    conns = connections(clinic.practice.id)
    businesses = sorted(lookup(clinic.practice.id, "business"), key=int)
    routing.set_route(clinic.practice, businesses[1], conns[SECOND_ORG_NAME].id, None)
    backfill = start(clinic.practice, FROM, None)
    db.session.commit()
    run(backfill.id)
    drain(clinic.practice.id, timeout=180)
    for row in clinic.rows():
        if row.status == "failed":
            states.ignore(row, "known problem (test)")
    db.session.commit()
    return clinic, conns[DEMO_ORG_NAME], conns[SECOND_ORG_NAME]


def test_two_organisations_reconcile_each_against_its_own_invoices(synced, web):
    from webapp.xero.connections import client_for

    clinic, first, second = synced
    invoices = clinic.rows("invoice")
    in_second = [r for r in invoices if r.status == "synced" and r.connection_id == second.id]
    in_first = [r for r in invoices if r.status == "synced" and r.connection_id == first.id]
    assert in_first and in_second

    report = reconcile(clinic.practice, FROM, TO)
    assert report.clean, [(d.kind, d.organisation, d.message) for d in report.differences][:5]
    parts = {p.name: p for p in report.parts}
    assert set(parts) == {DEMO_ORG_NAME, SECOND_ORG_NAME}
    assert parts[SECOND_ORG_NAME].xero.count == len([r for r in in_second if r.status == "synced"]) > 0
    assert parts[DEMO_ORG_NAME].xero.count > 0
    assert report.xero.count == sum(p.xero.count for p in report.parts)
    assert report.cliniko.count == report.xero.count + report.excluded

    # Void one of the second organisation's invoices there: one difference, in that organisation only.
    victim = next(r for r in in_second if not any(p.cliniko_id == r.cliniko_id and p.status == "synced"
                                                  for p in clinic.rows("payment")))
    client_for(second).void_invoice(victim.xero_id, str(uuid.uuid4()))
    report = reconcile(clinic.practice, FROM, TO)
    assert [(d.kind, d.cliniko_id, d.organisation) for d in report.differences] == [
        ("voided_in_xero", victim.cliniko_id, SECOND_ORG_NAME)]
    parts = {p.name: p for p in report.parts}
    assert parts[SECOND_ORG_NAME].differences == 1 and parts[DEMO_ORG_NAME].differences == 0

    page = web.client.get(f"/reconcile/?practice={clinic.practice.id}&date_from={FROM}&date_to={TO}&run=1")
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert 'data-testid="reconcile-organisations"' in text
    assert f'data-testid="difference-organisation">{SECOND_ORG_NAME}<' in text
    assert f'href="/jobs/{victim.id}/"' in text


def test_an_organisation_needing_a_reconnect_is_said_not_compared(synced):
    clinic, _, second = synced
    second.status = "needs_reconnect"
    db.session.commit()
    report = reconcile(clinic.practice, FROM, TO)
    parts = {p.name: p for p in report.parts}
    assert parts[SECOND_ORG_NAME].error and "not compared" in parts[SECOND_ORG_NAME].error
    assert parts[DEMO_ORG_NAME].error is None and parts[DEMO_ORG_NAME].xero.count > 0
    assert not report.clean  # part of the practice was not checked
