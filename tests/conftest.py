"""Shared fixtures: a real Postgres test database and a real Redis database, never the demo's."""

from __future__ import annotations

import contextvars
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
import redis
from cryptography.fernet import Fernet
from flask.testing import FlaskClient
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
TEST_DATABASE_URL = os.environ.get(
    "TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/cliniko_xero_test"
)
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
TEST_KEYS = Fernet.generate_key().decode()


def _ensure_database(url: str) -> None:
    """Create the test database when it does not exist."""
    base, name = url.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def subprocess_env(**extra) -> dict[str, str]:
    """Environment for subprocesses (workers, clocks, servers) pointed at the test services."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=TEST_DATABASE_URL,
        REDIS_URL=TEST_REDIS_URL,
        SECRET_KEY="test-secret",
        TOKEN_ENCRYPTION_KEYS=TEST_KEYS,
        CLINIKO_USER_AGENT="Cliniko Xero Sync tests (tests@example.com)",
        SESSION_COOKIE_SECURE="0",
        PYTHONPATH=str(ROOT),
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


def app_overrides(**extra) -> dict:
    """create_app() overrides for the test services."""
    overrides = {
        "DATABASE_URL": TEST_DATABASE_URL,
        "REDIS_URL": TEST_REDIS_URL,
        "SECRET_KEY": "test-secret",
        "TOKEN_ENCRYPTION_KEYS": TEST_KEYS,
        "CLINIKO_USER_AGENT": "Cliniko Xero Sync tests (tests@example.com)",
        "SESSION_COOKIE_SECURE": False,
        "REMEMBER_COOKIE_SECURE": False,
        "TESTING": True,
    }
    overrides.update(extra)
    return overrides


class IsolatedClient(FlaskClient):
    """A test client whose requests never share the test's app context (so `g`, the current user
    and the DB session are per request, as in production)."""

    def open(self, *args, **kwargs):
        return contextvars.Context().run(super().open, *args, **kwargs)


@pytest.fixture(scope="session")
def migrated_database():
    """The test database, migrated to head once per session with Alembic (as production does)."""
    _ensure_database(TEST_DATABASE_URL)
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
        cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return TEST_DATABASE_URL


@pytest.fixture
def redis_conn():
    """The test Redis database, empty at the start and end of each test."""
    conn = redis.Redis.from_url(TEST_REDIS_URL)
    conn.flushdb()
    yield conn
    conn.flushdb()
    conn.close()


@pytest.fixture
def app(migrated_database, redis_conn):
    """The app on the test database, with every table emptied after the test."""
    from webapp import create_app
    from webapp.extensions import db

    app = create_app(app_overrides())
    app.test_client_class = IsolatedClient
    with app.app_context():
        yield app
        db.session.remove()
        tables = ", ".join(t.name for t in db.metadata.sorted_tables)
        with db.engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        db.engine.dispose()


@pytest.fixture
def db(app):
    """The Flask-SQLAlchemy handle, inside the app context."""
    from webapp.extensions import db

    return db


@pytest.fixture
def client(app):
    """A test client for the app."""
    return app.test_client()


@pytest.fixture
def runner(app):
    """A CLI runner for the app's commands."""
    return app.test_cli_runner()


@pytest.fixture
def make_user(db):
    """Create a user: make_user(email, role='admin', password=..., practice_slug=None)."""
    from webapp.auth.users import create_user

    def _make(email="admin@example.com", role="admin", password="correct horse battery", practice_slug=None):
        user = create_user(email, password, role=role, practice_slug=practice_slug)
        db.session.commit()
        return user

    return _make


@pytest.fixture
def make_practice(db):
    """Create a practice row: make_practice(slug='demo', name=...)."""
    from webapp import crypto
    from webapp.models import Practice

    def _make(slug="demo", name=None, **fields):
        practice = Practice(
            name=name or slug.title(),
            slug=slug,
            cliniko_api_key_encrypted=crypto.encrypt(f"key-{slug}-au1"),
            cliniko_shard="au1",
            settings=fields.pop("settings", {}),
            poll_cursors={},
            **fields,
        )
        db.session.add(practice)
        db.session.commit()
        return practice

    return _make


class CsrfClient:
    """Log in and post forms through the real pages, carrying the CSRF token as a browser would."""

    def __init__(self, client):
        self.client = client

    def csrf_token(self, path: str = "/login") -> str:
        import re

        html = self.client.get(path).get_data(as_text=True)
        match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html) or re.search(
            r'value="([^"]+)"[^>]*name="csrf_token"', html
        )
        assert match, f"no CSRF token on {path}"
        return match.group(1)

    def login(self, email: str, password: str, next_url: str | None = None, environ=None):
        token = self.csrf_token()
        url = "/login" + (f"?next={next_url}" if next_url else "")
        return self.client.post(
            url, data={"email": email, "password": password, "csrf_token": token}, environ_base=environ or {}
        )


@pytest.fixture
def web(client):
    """A CsrfClient around the test client."""
    return CsrfClient(client)


# Sandbox Xero fixtures for any test package.
from tests.support.xero import xero_app, xero_sandbox  # noqa: E402, F401
