"""Access tokens: refreshed ~60 s before expiry by one process at a time; invalid_grant → reconnect."""

import threading
from datetime import timedelta

import pytest
import requests
from sqlalchemy import select

from tests.xero.test_connect import connect, signed_in_admin
from webapp import crypto
from webapp.extensions import db
from webapp.models import AuditEntry, XeroConnection, utcnow
from webapp.xero.tokens import ConnectionUnavailable, access_token


def sandbox_identity(app):
    url = app.config["XERO_CONNECTIONS_URL"].replace("/connections", "/_sandbox/state")
    return requests.get(url, timeout=10).json()["identity"]


@pytest.fixture
def connection(xero_app, web, make_user, make_practice):
    practice = make_practice("north")
    signed_in_admin(web, make_user)
    connect(web, practice.id)
    return db.session.scalars(select(XeroConnection)).one()


def expire_soon(connection, seconds=30):
    connection.access_expires_at = utcnow() + timedelta(seconds=seconds)
    db.session.commit()


def test_valid_token_is_used_without_calling_xero(xero_app, connection):
    before = sandbox_identity(xero_app)
    assert access_token(connection.id) == crypto.decrypt(connection.access_token_encrypted)
    assert sandbox_identity(xero_app) == before


def test_token_expiring_within_a_minute_is_refreshed_and_rotation_saved(xero_app, connection):
    old_access = crypto.decrypt(connection.access_token_encrypted)
    old_refresh = crypto.decrypt(connection.refresh_token_encrypted)
    expire_soon(connection)
    new_access = access_token(connection.id)
    assert new_access != old_access
    db.session.expire_all()
    row = db.session.get(XeroConnection, connection.id)
    assert crypto.decrypt(row.refresh_token_encrypted) != old_refresh  # rotated and saved
    assert row.access_expires_at - utcnow() > timedelta(minutes=29)
    listed = requests.get(xero_app.config["XERO_CONNECTIONS_URL"],
                          headers={"Authorization": f"Bearer {new_access}"}, timeout=10)
    assert listed.status_code == 200


def test_four_workers_at_once_make_exactly_one_refresh(xero_app, connection):
    expire_soon(connection)
    connection_id = connection.id  # read here: the test's session must not be used from the threads
    before = sandbox_identity(xero_app)
    barrier = threading.Barrier(4)
    results, errors = [], []

    def worker():
        with xero_app.app_context():
            barrier.wait(timeout=10)
            try:
                results.append(access_token(connection_id))
            except Exception as exc:  # collected and asserted below
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert len(results) == 4 and len(set(results)) == 1
    after = sandbox_identity(xero_app)
    # One refresh grant: one new refresh token and one new access token at Xero.
    assert after["refresh_tokens"] == before["refresh_tokens"] + 1
    assert after["access_tokens"] == before["access_tokens"] + 1


def test_invalid_grant_marks_needs_reconnect_and_is_not_retried(xero_app, connection):
    refresh = crypto.decrypt(connection.refresh_token_encrypted)
    revoked = requests.post(xero_app.config["XERO_REVOKE_URL"], auth=("sandbox-client", "sandbox-secret"),
                            data={"token": refresh}, timeout=10)
    assert revoked.status_code == 200
    expire_soon(connection)
    with pytest.raises(ConnectionUnavailable, match="Reconnect Xero"):
        access_token(connection.id)
    db.session.expire_all()
    row = db.session.get(XeroConnection, connection.id)
    assert row.status == "needs_reconnect" and row.access_token_encrypted is None
    assert db.session.query(AuditEntry).filter_by(action="xero.needs_reconnect").count() == 1
    before = sandbox_identity(xero_app)
    with pytest.raises(ConnectionUnavailable, match="needs reconnect"):
        access_token(connection.id)
    assert sandbox_identity(xero_app) == before  # no second call to Xero


def test_needs_reconnect_shows_on_the_practice_page(xero_app, web, connection):
    connection.status = "needs_reconnect"
    connection.last_error = "Xero refused the grant. Reconnect Xero for this practice."
    db.session.commit()
    html = web.client.get(f"/practices/{connection.practice_id}/").get_data(as_text=True)
    assert "needs reconnect" in html and "Connect to Xero" in html
