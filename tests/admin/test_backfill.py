"""The Backfill screen: start (admin, CSRF), progress JSON reaching 100 %, cancel, history; support users
and other practices refused."""

import re
from datetime import date, timedelta

import pytest

from tests.support.engine import PASSWORD, wire_clinic
from webapp.extensions import db
from webapp.models import Backfill


@pytest.fixture
def clinic(app, web, make_user, make_practice, xero_app, xero_sandbox):
    from sandbox.cliniko.app import create_app

    with wire_clinic(app, web, make_user, make_practice,
                     create_app(api_key="sandbox-key-au1", seed=5, patients=12, invoices=24),
                     xero_sandbox) as clinic:
        yield clinic


def token(web, path):
    html = web.client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)


def since():
    return (date.today() - timedelta(days=400)).isoformat()


def test_start_run_progress_to_complete(clinic, web):
    from webapp.sync.backfill import run
    from webapp.sync_cli import drain

    pid = clinic.practice.id
    page = web.client.get(f"/backfill/{pid}/")
    assert page.status_code == 200 and 'type="date"' in page.get_data(as_text=True)
    response = web.client.post(f"/backfill/{pid}/start",
                               data={"since": since(), "csrf_token": token(web, f"/backfill/{pid}/")})
    assert response.status_code == 302
    backfill = db.session.scalars(db.select(Backfill)).one()
    assert backfill.state == "queued" and backfill.requested_by_id is not None
    html = web.client.get(f"/backfill/{pid}/").get_data(as_text=True)
    assert "Queued" in html and "Cancel backfill" in html and "backfill.js" in html
    assert '<noscript><meta http-equiv="refresh"' in html
    # A second start while one is queued is refused with the reason.
    again = web.client.post(f"/backfill/{pid}/start",
                            data={"since": since(), "csrf_token": token(web, f"/backfill/{pid}/")})
    assert again.status_code == 400 and "already queued" in again.get_data(as_text=True)

    run(backfill.id)
    mid = web.client.get(f"/backfill/{pid}/{backfill.id}/progress.json").get_json()
    assert mid["state"] == "done" and mid["discovered"] >= 20 and mid["remaining"] > 0
    assert mid["percent"] < 100 and mid["active"] is True and mid["eta"] != "—"
    drain(pid, timeout=60)
    data = web.client.get(f"/backfill/{pid}/{backfill.id}/progress.json").get_json()
    assert data["complete"] is True and data["percent"] == 100 and data["remaining"] == 0
    assert data["synced"] > 0 and data["synced"] + data["failed"] + data["other"] >= data["discovered"]
    html = web.client.get(f"/backfill/{pid}/").get_data(as_text=True)
    assert "Complete" in html and "<noscript><meta" not in html
    history = html[html.index('data-testid="backfill-history"'):]
    assert f"<td>{backfill.id}</td>" in history and "admin@example.com" in history


def test_cancel_skips_unsent_rows(clinic, web):
    from webapp.sync.backfill import run

    pid = clinic.practice.id
    web.client.post(f"/backfill/{pid}/start", data={"since": since(), "csrf_token": token(web, f"/backfill/{pid}/")})
    backfill = db.session.scalars(db.select(Backfill)).one()
    # Leave it running (discovery happens, nothing sent), then cancel.
    run(backfill.id)
    backfill.state = "running"
    db.session.commit()
    response = web.client.post(f"/backfill/{pid}/{backfill.id}/cancel",
                               data={"csrf_token": token(web, f"/backfill/{pid}/")})
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Backfill, backfill.id).state == "cancelled"
    html = web.client.get(f"/backfill/{pid}/").get_data(as_text=True)
    assert "Backfill cancelled;" in html and "rows not yet sent were skipped" in html
    data = web.client.get(f"/backfill/{pid}/{backfill.id}/progress.json").get_json()
    assert data["state"] == "cancelled" and data["remaining"] == 0 and data["other"] > 0


def test_without_csrf_refused(clinic, web):
    pid = clinic.practice.id
    response = web.client.post(f"/backfill/{pid}/start", data={"since": since()})
    assert response.status_code == 400
    assert db.session.scalars(db.select(Backfill)).first() is None


def test_support_user_cannot_start_or_cancel(clinic, app, make_user, make_practice):
    from tests.conftest import CsrfClient
    from webapp.sync.backfill import start

    pid = clinic.practice.id
    other = make_practice("other")
    backfill = start(clinic.practice, date.today() - timedelta(days=30), None)
    make_user("support@example.com", role="support", practice_slug=clinic.practice.slug)
    support = CsrfClient(app.test_client())
    support.login("support@example.com", PASSWORD)
    page = support.client.get(f"/backfill/{pid}/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Start backfill" not in html and "Cancel backfill" not in html
    csrf = token(support, f"/backfill/{pid}/")
    assert support.client.post(f"/backfill/{pid}/start", data={"since": since(), "csrf_token": csrf}).status_code == 403
    assert support.client.post(f"/backfill/{pid}/{backfill.id}/cancel",
                               data={"csrf_token": csrf}).status_code == 403
    db.session.expire_all()
    assert db.session.get(Backfill, backfill.id).state == "queued"
    # Another practice is out of scope, by URL guessing too.
    assert support.client.get(f"/backfill/{other.id}/").status_code == 404
    assert support.client.get(f"/backfill/{other.id}/{backfill.id}/progress.json").status_code == 404
    assert support.client.get(f"/backfill/{pid}/{backfill.id}/progress.json").status_code == 200
