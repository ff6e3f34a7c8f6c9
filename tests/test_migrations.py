"""Alembic: one head, models match the migrations, and downgrade/upgrade round-trips."""

import subprocess
import sys

import psycopg
import pytest
from alembic.script import ScriptDirectory

from tests.conftest import ROOT, TEST_DATABASE_URL, subprocess_env


def _flask(*args, env):
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )


def test_single_head(app):
    from webapp.extensions import migrate

    config = migrate.get_config()
    assert len(ScriptDirectory.from_config(config).get_heads()) == 1


def test_models_match_migrations(migrated_database):
    result = _flask("db", "check", env=subprocess_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No new upgrade operations detected" in result.stdout + result.stderr


@pytest.fixture
def scratch_database():
    base, _ = TEST_DATABASE_URL.rsplit("/", 1)
    name = "cliniko_xero_migrations_test"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"{base}/{name}"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_upgrade_downgrade_upgrade_on_an_empty_database(scratch_database):
    env = subprocess_env(DATABASE_URL=scratch_database)
    for step in (("db", "upgrade"), ("db", "downgrade", "base"), ("db", "upgrade")):
        result = _flask(*step, env=env)
        assert result.returncode == 0, f"{step}: {result.stderr}"
    with psycopg.connect(scratch_database) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"users", "practices", "xero_connections", "sync_jobs", "sync_attempts", "backfills", "audit_log",
            "mappings", "contacts", "xero_accounts", "xero_tax_rates", "xero_tracking_options"} <= tables
