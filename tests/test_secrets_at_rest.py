"""Secrets never appear in plaintext: not in any column of any table, not in anything logged (at DEBUG,
library loggers included), not on any page an admin can open, not in the session cookie or Redis.

The secrets: a practice's Cliniko API key (created with the CLI) and the Xero access and refresh
tokens (from the real OAuth flow against sandbox Xero, and again after a refresh).
"""

from __future__ import annotations

import json
import logging
import re
import secrets as pysecrets
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from tests.support.servers import serve
from tests.xero.test_connect import connect, signed_in_admin
from webapp import crypto
from webapp.models import XeroConnection, utcnow
from webapp.xero.tokens import access_token

# Loggers that stay quiet unless asked (their own level is set, or they are not under root's level).
LOGGERS = ["werkzeug", "requests", "urllib3", "oauthlib", "requests_oauthlib", "flask", "flask_login",
           "flask_wtf", "webapp", "jobs"]
# The emulators log as test doubles, not as the product.
NOT_THE_PRODUCT = ("sandbox.",)


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)

    def lines(self):
        for record in self.records:
            try:
                formatted = self.format(record)
            except Exception as exc:  # a record that cannot be formatted still gets searched
                formatted = f"{record.name} {record.msg!r} {record.args!r} ({exc})"
            yield record.name, formatted


@pytest.fixture
def debug_logs():
    """Everything logged, at DEBUG, from every logger (all threads: the app and the sandboxes)."""
    handler = Collect()
    root = logging.getLogger()
    saved = {name: logging.getLogger(name).level for name in LOGGERS}
    saved_root = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for name in LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(saved_root)
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


@pytest.fixture
def cliniko_sandbox():
    """Sandbox Cliniko that knows only its own key (so our practice's key is refused: 401)."""
    from sandbox.cliniko.app import create_app

    with serve(create_app(api_key="sandbox-other-key-au1", patients=2, invoices=2)) as url:
        yield url


def variants(secret: str) -> list[str]:
    """The secret, and a distinctive tail of it (catches truncated or partly redacted logging)."""
    return [secret, secret[-20:]] if len(secret) >= 32 else [secret]


def search(haystack: str, secrets: dict[str, str]) -> list[str]:
    return sorted({label for label, secret in secrets.items() for v in variants(secret) if v in haystack})


def current_tokens(db, connection_id) -> tuple[str, str]:
    db.session.expire_all()
    row = db.session.get(XeroConnection, connection_id)
    return crypto.decrypt(row.access_token_encrypted), crypto.decrypt(row.refresh_token_encrypted)


def test_no_secret_in_database_logs_pages_cookie_or_redis(
    xero_app, cliniko_sandbox, debug_logs, db, runner, web, make_user, redis_conn
):
    xero_app.config["CLINIKO_API_URL"] = cliniko_sandbox
    cliniko_key = f"{pysecrets.token_hex(20)}-au1"

    # The practice, created with the CLI.
    result = runner.invoke(args=["practices", "create", "--name", "Secret Clinic", "--slug", "secret-clinic",
                                 "--cliniko-api-key", cliniko_key])
    assert result.exit_code == 0, result.output
    practice_id = int(result.output.strip().splitlines()[-1])
    outputs = {"CLI output": result.output}

    # Connected to Xero through the real flow, then one refresh (a second pair of tokens).
    signed_in_admin(web, make_user)
    callback = connect(web, practice_id)
    assert callback.status_code == 302
    outputs["callback response"] = callback.get_data(as_text=True)
    connection = db.session.scalars(select(XeroConnection)).one()
    access_1, refresh_1 = current_tokens(db, connection.id)
    connection = db.session.get(XeroConnection, connection.id)
    connection.access_expires_at = utcnow() + timedelta(seconds=30)
    db.session.commit()
    access_2 = access_token(connection.id)
    _, refresh_2 = current_tokens(db, connection.id)
    assert access_2 != access_1 and refresh_2 != refresh_1
    secrets = {
        "Cliniko API key": cliniko_key,
        "Cliniko API key (without shard)": cliniko_key.rsplit("-", 1)[0],
        "Xero access token": access_1,
        "Xero refresh token": refresh_1,
        "refreshed Xero access token": access_2,
        "refreshed Xero refresh token": refresh_2,
    }

    # Pages an admin can open.
    pages = {}
    for path in ("/", "/practices/", f"/practices/{practice_id}/", "/users/"):
        response = web.client.get(path)
        assert response.status_code == 200, path
        pages[path] = response.get_data(as_text=True)
    assert "Connected to Secret Clinic" not in pages["/"]  # sanity: real pages
    assert "Demo Clinic Pty Ltd" in pages[f"/practices/{practice_id}/"]
    token = web.csrf_token(f"/practices/{practice_id}/")
    tested = web.client.post(f"/practices/{practice_id}/cliniko/test", data={"csrf_token": token})
    assert tested.status_code == 302
    failed_page = web.client.get(tested.headers["Location"]).get_data(as_text=True)
    assert "Cliniko did not answer as expected" in failed_page
    pages["practice page after a failed Cliniko test"] = failed_page

    # The session cookie is signed, not encrypted: anyone holding it can read it.
    cookie = web.client.get_cookie(xero_app.config.get("SESSION_COOKIE_NAME", "session"))
    if cookie is not None:
        serializer = xero_app.session_interface.get_signing_serializer(xero_app)
        pages["session cookie (decoded)"] = repr(serializer.loads(cookie.value))

    leaks: list[str] = []

    # Every column of every table.
    with db.engine.connect() as conn:
        for table in db.metadata.sorted_tables:
            for (row,) in conn.execute(text(f'SELECT row_to_json(t)::text FROM "{table.name}" t')):  # noqa: S608
                for label in search(row, secrets):
                    column = _column_holding(row, secrets[label])
                    leaks.append(f"database: {label} in table {table.name}, column {column}")

    # Everything logged.
    logged_by: dict[tuple[str, str], int] = {}
    for name, line in debug_logs.lines():
        if name.startswith(NOT_THE_PRODUCT):
            continue
        for label in search(line, secrets):
            logged_by[(name, label)] = logged_by.get((name, label), 0) + 1
    for (name, label), count in sorted(logged_by.items()):
        example = next(line for n, line in debug_logs.lines() if n == name and search(line, {label: secrets[label]}))
        leaks.append(f"log: {label} logged by {name!r} ({count} records), e.g. {_snippet(example, secrets[label])}")

    # Pages, cookie, CLI output.
    for where, html in {**pages, **outputs}.items():
        for label in search(html, secrets):
            leaks.append(f"page: {label} on {where}")

    # Redis (pending organisation choices, throttles, queues).
    for key in redis_conn.scan_iter(count=500):
        kind = redis_conn.type(key).decode()
        if kind == "string":
            value = redis_conn.get(key) or b""
        elif kind == "hash":
            value = b" ".join(k + b"=" + v for k, v in redis_conn.hgetall(key).items())
        elif kind in ("list",):
            value = b" ".join(redis_conn.lrange(key, 0, -1))
        elif kind in ("set",):
            value = b" ".join(redis_conn.smembers(key))
        elif kind == "zset":
            value = b" ".join(redis_conn.zrange(key, 0, -1))
        else:
            continue
        for label in search(key.decode(errors="replace") + " " + value.decode(errors="replace"), secrets):
            leaks.append(f"redis: {label} in key {key.decode(errors='replace')}")

    assert not leaks, "secrets found in plaintext:\n" + "\n".join(leaks)


def _column_holding(row_json: str, secret: str) -> str:
    for column, value in json.loads(row_json).items():
        if any(v in json.dumps(value) for v in variants(secret)):
            return column
    return "?"


def _snippet(line: str, secret: str, width: int = 80) -> str:
    match = next((m for v in variants(secret) for m in [re.search(re.escape(v), line)] if m), None)
    if not match:
        return line[:200]
    start = max(0, match.start() - width)
    return repr(line[start:match.start()] + "<SECRET>" + line[match.end():match.end() + 40])
