"""Connecting a practice to (sandbox) Xero: OAuth state, organisation choice, tokens at rest, disconnect."""

import requests
from sqlalchemy import select

from sandbox.xero.fixtures import SECOND_ORG_NAME as SECOND_ORG
from tests.support.xero import callback_path, consent_at_sandbox, query
from webapp import crypto
from webapp.extensions import db
from webapp.models import AuditEntry, XeroAccount, XeroConnection, XeroTaxRate, XeroTrackingOption

PASSWORD = "correct horse battery"


def signed_in_admin(web, make_user):
    make_user("admin@example.com")
    web.login("admin@example.com", PASSWORD)


def start_connect(web, practice_id):
    response = web.client.get(f"/practices/{practice_id}/xero/connect")
    assert response.status_code == 302
    return response.headers["Location"]


def connect(web, practice_id, org="Demo Clinic Pty Ltd"):
    authorize = start_connect(web, practice_id)
    return web.client.get(callback_path(consent_at_sandbox(authorize, org)))


def test_connect_saves_encrypted_tokens_and_reads_the_organisation(xero_app, web, make_user, make_practice):
    practice = make_practice("north")
    signed_in_admin(web, make_user)
    authorize = start_connect(web, practice.id)
    params = query(authorize)
    assert params["client_id"] == "sandbox-client" and params["response_type"] == "code"
    assert "offline_access" in params["scope"].split() and len(params["state"]) >= 32

    response = web.client.get(callback_path(consent_at_sandbox(authorize, "Demo Clinic Pty Ltd")))
    assert response.status_code == 302
    page = web.client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Connected to Demo Clinic Pty Ltd" in page

    connection = db.session.scalars(select(XeroConnection)).one()
    assert (connection.status, connection.tenant_name) == ("active", "Demo Clinic Pty Ltd")
    access = crypto.decrypt(connection.access_token_encrypted)
    refresh = crypto.decrypt(connection.refresh_token_encrypted)
    assert access and refresh
    assert access not in connection.access_token_encrypted and refresh not in connection.refresh_token_encrypted
    assert access not in page and refresh not in page
    # The token really works against Xero.
    listed = requests.get(xero_app.config["XERO_CONNECTIONS_URL"], headers={"Authorization": f"Bearer {access}"},
                          timeout=10).json()
    assert [c["tenantId"] for c in listed] == [connection.tenant_id]
    # Reference data for the pickers.
    codes = set(db.session.scalars(select(XeroAccount.code).where(XeroAccount.connection_id == connection.id)))
    assert {"200", "090"} <= codes
    assert db.session.scalar(select(XeroTaxRate).where(XeroTaxRate.tax_type == "OUTPUT")) is not None
    assert db.session.query(XeroTrackingOption).count() > 0
    assert db.session.query(AuditEntry).filter_by(action="xero.connect").count() == 1


def test_state_mismatch_is_refused_and_nothing_saved(xero_app, web, make_user, make_practice):
    practice = make_practice("north")
    signed_in_admin(web, make_user)
    callback = consent_at_sandbox(start_connect(web, practice.id), "Demo Clinic Pty Ltd")
    forged = callback.replace("state=", "state=x")
    response = web.client.get(callback_path(forged))
    assert response.status_code == 400
    assert "did not start here" in response.get_data(as_text=True)
    assert db.session.query(XeroConnection).count() == 0


def test_callback_replay_is_refused(xero_app, web, make_user, make_practice):
    practice = make_practice("north")
    signed_in_admin(web, make_user)
    callback = consent_at_sandbox(start_connect(web, practice.id), "Demo Clinic Pty Ltd")
    with web.client.session_transaction() as s:
        saved_session = dict(s)
    assert web.client.get(callback_path(callback)).status_code == 302
    # Replaying the same callback, even with the old session cookie restored, is refused.
    with web.client.session_transaction() as s:
        s.update(saved_session)
    response = web.client.get(callback_path(callback))
    assert response.status_code == 400
    assert db.session.query(XeroConnection).count() == 1


def test_denied_consent_says_so(xero_app, web, make_user, make_practice):
    practice = make_practice("north")
    signed_in_admin(web, make_user)
    callback = consent_at_sandbox(start_connect(web, practice.id), "Demo Clinic Pty Ltd", decision="deny")
    response = web.client.get(callback_path(callback))
    page = web.client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Xero did not connect: access_denied" in page
    assert db.session.query(XeroConnection).count() == 0


def test_several_organisations_ask_which_one(xero_app, web, make_user, make_practice):
    north, south = make_practice("north"), make_practice("south")
    signed_in_admin(web, make_user)
    connect(web, north.id, "Demo Clinic Pty Ltd")
    # The same Xero user now also grants the second organisation: /connections lists both.
    response = connect(web, south.id, SECOND_ORG)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Choose the Xero organisation" in html and SECOND_ORG in html
    second = next(t for t in _tenant_options(html) if t[1] == SECOND_ORG)
    token = web.csrf_token(f"/practices/{south.id}/")
    response = web.client.post("/xero/choose", data={"tenant_id": second[0], "csrf_token": token})
    assert response.status_code == 302
    rows = {c.practice_id: c.tenant_name for c in db.session.scalars(select(XeroConnection))}
    assert rows == {north.id: "Demo Clinic Pty Ltd", south.id: SECOND_ORG}
    # North's connection was left alone at Xero.
    north_conn = db.session.scalars(select(XeroConnection).where(XeroConnection.practice_id == north.id)).one()
    access = crypto.decrypt(north_conn.access_token_encrypted)
    listed = requests.get(xero_app.config["XERO_CONNECTIONS_URL"], headers={"Authorization": f"Bearer {access}"},
                          timeout=10).json()
    assert north_conn.tenant_id in {c["tenantId"] for c in listed}


def _tenant_options(html):
    import re

    return re.findall(r'value="([0-9a-f-]{36})"[^>]*>\s*<label[^>]*>([^<]+)</label>', html)


def test_disconnect_deletes_at_xero_revokes_and_wipes(xero_app, web, make_user, make_practice):
    practice = make_practice("north")
    signed_in_admin(web, make_user)
    connect(web, practice.id)
    connection = db.session.scalars(select(XeroConnection)).one()
    access = crypto.decrypt(connection.access_token_encrypted)
    refresh = crypto.decrypt(connection.refresh_token_encrypted)
    token = web.csrf_token(f"/practices/{practice.id}/")
    response = web.client.post(f"/practices/{practice.id}/xero/{connection.id}/disconnect", data={"csrf_token": token})
    assert response.status_code == 302
    db.session.expire_all()
    connection = db.session.get(XeroConnection, connection.id)
    assert connection.status == "revoked"
    assert connection.access_token_encrypted is None and connection.refresh_token_encrypted is None
    # At Xero: the refresh token no longer works and the connection is gone.
    refused = requests.post(xero_app.config["XERO_TOKEN_URL"], auth=("sandbox-client", "sandbox-secret"),
                            data={"grant_type": "refresh_token", "refresh_token": refresh}, timeout=10)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    state = requests.get(xero_app.config["XERO_CONNECTIONS_URL"].replace("/connections", "/_sandbox/state"),
                         timeout=10).json()
    assert access  # was a real token
    assert not [c for c in state["identity"]["connections"] if c["id"] == connection.connection_id]
    assert db.session.query(AuditEntry).filter_by(action="xero.disconnect").count() == 1


def test_support_user_cannot_connect_and_other_practice_is_404(xero_app, web, make_user, make_practice):
    north, south = make_practice("north"), make_practice("south")
    make_user("support@example.com", role="support")
    make_user("scoped@example.com", role="admin", practice_slug="north")
    web.login("support@example.com", PASSWORD)
    assert web.client.get(f"/practices/{north.id}/xero/connect").status_code == 403
    web.client.post("/logout", data={"csrf_token": web.csrf_token("/")})
    web.login("scoped@example.com", PASSWORD)
    assert web.client.get(f"/practices/{south.id}/xero/connect").status_code == 404
    assert web.client.get(f"/practices/{south.id}/").status_code == 404
    assert web.client.get(f"/practices/{north.id}/xero/connect").status_code == 302


def test_disconnect_without_csrf_is_refused(xero_app, web, make_user, make_practice):
    practice = make_practice("north")
    signed_in_admin(web, make_user)
    connect(web, practice.id)
    connection = db.session.scalars(select(XeroConnection)).one()
    response = web.client.post(f"/practices/{practice.id}/xero/{connection.id}/disconnect")
    assert response.status_code == 400
    db.session.expire_all()
    assert db.session.get(XeroConnection, connection.id).status == "active"
