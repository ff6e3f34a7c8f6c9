"""Configuration: required variables, defaults, URL normalisation, and the start-up error line."""

import subprocess
import sys

import pytest

from tests.conftest import ROOT, subprocess_env
from webapp.config import ConfigError, load, normalise_database_url

BASE = {
    "DATABASE_URL": "postgres://u@h:5432/d",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "SECRET_KEY": "s",
    "TOKEN_ENCRYPTION_KEYS": "k",
    "CLINIKO_USER_AGENT": "Sync (ops@example.com)",
}


def test_defaults_follow_the_spec():
    config = load(BASE)
    assert config["XERO_CALLS_PER_WINDOW"] == 60
    assert config["XERO_MAX_CONCURRENT"] == 5
    assert config["XERO_DAILY_CALLS"] == 5000
    assert config["XERO_APP_CALLS_PER_WINDOW"] == 10000
    assert config["XERO_BATCH_SIZE"] == 50
    assert config["XERO_RATE_WINDOW_SECONDS"] == 60.0
    assert config["POLL_INTERVAL_SECONDS"] == 60
    assert config["CLINIKO_CALLS_PER_MINUTE"] == 200
    assert config["XERO_API_URL"] == "https://api.xero.com/api.xro/2.0"
    assert "offline_access" in config["XERO_SCOPES"].split()
    assert config["SMTP_URL"] is None


def test_postgres_scheme_is_accepted():
    config = load(BASE)
    assert config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@h:5432/d"
    assert normalise_database_url("postgresql://a/b") == "postgresql+psycopg://a/b"


@pytest.mark.parametrize(
    "name", ["DATABASE_URL", "REDIS_URL", "SECRET_KEY", "TOKEN_ENCRYPTION_KEYS", "CLINIKO_USER_AGENT"]
)
def test_missing_required_variable_names_it(name):
    env = {k: v for k, v in BASE.items() if k != name}
    with pytest.raises(ConfigError, match=name):
        load(env)


def test_numbers_are_checked():
    with pytest.raises(ConfigError, match="XERO_BATCH_SIZE must be a int"):
        load({**BASE, "XERO_BATCH_SIZE": "fifty"})


def test_user_agent_needs_an_email():
    with pytest.raises(ConfigError, match="contact email"):
        load({**BASE, "CLINIKO_USER_AGENT": "Sync"})


def test_overrides_win_and_can_fill_required_values():
    config = load({}, overrides={**BASE, "XERO_BATCH_SIZE": 10})
    assert config["XERO_BATCH_SIZE"] == 10
    assert config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql+psycopg://")


def test_start_up_without_a_variable_prints_one_line_not_a_traceback(tmp_path):
    env = subprocess_env()
    del env["SECRET_KEY"]
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "routes"],
        cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert "Missing required environment variable SECRET_KEY" in result.stderr
    assert "Traceback" not in result.stderr
