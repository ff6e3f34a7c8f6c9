"""Fixtures for the HTTP client tests: a real Redis database, a controllable clock."""

import os

import pytest
import redis as redis_lib

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def redis():
    """A real Redis connection on the test database, emptied before and after each test."""
    conn = redis_lib.Redis.from_url(REDIS_URL)
    conn.flushdb()
    yield conn
    conn.flushdb()
    conn.close()


class FakeClock:
    """A clock the test moves by hand (passed to the budgets as `clock=`)."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock():
    """A FakeClock starting at a fixed instant a little after a UTC midnight."""
    return FakeClock(1_700_006_400.0 + 10)
