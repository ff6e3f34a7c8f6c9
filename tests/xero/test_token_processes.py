"""Four worker processes needing a token refresh at the same moment make exactly one refresh call at
Xero, and all get the same working token (SPEC §6: one process at a time refreshes)."""

import json
import subprocess
import sys
import time
from datetime import timedelta

import pytest
import requests
from sqlalchemy import select

from tests.conftest import ROOT, subprocess_env
from tests.xero.test_connect import connect, signed_in_admin
from webapp import crypto
from webapp.extensions import db
from webapp.models import XeroConnection, utcnow

WORKERS = 4
START_TIMEOUT = 60  # seconds for the processes to build the app
RUN_TIMEOUT = 60


def sandbox_identity(app):
    url = app.config["XERO_CONNECTIONS_URL"].replace("/connections", "/_sandbox/state")
    return requests.get(url, timeout=10).json()["identity"]


def worker_env(app):
    c = app.config
    return subprocess_env(**{key: c[key] for key in (
        "XERO_CLIENT_ID", "XERO_CLIENT_SECRET", "XERO_AUTHORIZE_URL", "XERO_TOKEN_URL", "XERO_REVOKE_URL",
        "XERO_CONNECTIONS_URL", "XERO_API_URL", "XERO_REDIRECT_URI")}, LOG_LEVEL="WARNING")


@pytest.fixture
def connection(xero_app, web, make_user, make_practice):
    """A connection made through the real OAuth flow (sign-in and consent pages at the sandbox)."""
    practice = make_practice("north")
    signed_in_admin(web, make_user)
    connect(web, practice.id)
    return db.session.scalars(select(XeroConnection)).one()


def test_four_processes_at_once_make_exactly_one_refresh(xero_app, connection, tmp_path):
    connection_id, tenant_id = connection.id, connection.tenant_id
    old_access = crypto.decrypt(connection.access_token_encrypted)
    old_refresh = crypto.decrypt(connection.refresh_token_encrypted)
    connection.access_expires_at = utcnow() + timedelta(seconds=30)  # inside the 60 s refresh margin
    db.session.commit()
    db.session.close()  # this process holds no transaction (and no lock) while the workers run

    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{n}" for n in range(WORKERS)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.support.token_worker", str(connection_id), str(ready[n]), str(go)],
            cwd=ROOT, env=worker_env(xero_app), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for n in range(WORKERS)
    ]
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not all(r.exists() for r in ready):
            failed = [p for p in procs if p.poll() is not None]
            assert not failed, failed[0].stderr.read()[-2000:]
            assert time.monotonic() < deadline, "workers did not start in time"
            time.sleep(0.05)
        before = sandbox_identity(xero_app)
        go.write_text(str(time.time() + 0.5))  # everyone calls access_token at this instant
        try:
            outputs = [p.communicate(timeout=RUN_TIMEOUT) for p in procs]
        except subprocess.TimeoutExpired:
            pytest.fail(f"the workers did not finish within {RUN_TIMEOUT} s (each waits on the connection's row "
                        "lock; is another session holding it?)")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)

    results = []
    for p, (out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, f"worker failed: {out}\n{err[-2000:]}"
        results.append(json.loads(out.strip().splitlines()[-1]))
    starts = [r["started"] for r in results]
    assert max(starts) - min(starts) < 0.25, f"workers did not start together: {starts}"

    tokens = {r["token"] for r in results}
    assert len(tokens) == 1, "the four workers got different tokens"
    token = tokens.pop()
    assert token != old_access

    # Exactly one refresh grant at Xero: one new refresh token, one new access token.
    after = sandbox_identity(xero_app)
    assert after["refresh_tokens"] == before["refresh_tokens"] + 1
    assert after["access_tokens"] == before["access_tokens"] + 1

    # The token works, and the rotated refresh token and new expiry were saved.
    listed = requests.get(xero_app.config["XERO_CONNECTIONS_URL"],
                          headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert listed.status_code == 200
    assert [c["tenantId"] for c in listed.json()] == [tenant_id]
    db.session.expire_all()
    row = db.session.get(XeroConnection, connection_id)
    assert row.status == "active"
    assert crypto.decrypt(row.access_token_encrypted) == token
    assert crypto.decrypt(row.refresh_token_encrypted) != old_refresh
    assert row.access_expires_at - utcnow() > timedelta(minutes=29)
