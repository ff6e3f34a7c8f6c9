"""Sandbox Xero limits: minute window, concurrency, daily and app-wide caps, headers, body size."""

import threading
import time

import requests

from tests.sandbox.conftest import TIMEOUT

LIMIT_HEADERS = ("X-DayLimit-Remaining", "X-MinLimit-Remaining", "X-AppMinLimit-Remaining")


def test_61st_call_in_window_is_429_and_retry_after_is_honoured(xero):
    xero.control("clock", {"freeze": True})
    for expected_remaining in range(59, -1, -1):
        response = xero.api("GET", "Organisation")
        assert response.status_code == 200
        assert response.headers["X-MinLimit-Remaining"] == str(expected_remaining)
    refused = xero.api("GET", "Organisation")
    assert refused.status_code == 429
    assert refused.headers["X-Rate-Limit-Problem"] == "minute"
    retry_after = int(refused.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    assert all(name in refused.headers for name in LIMIT_HEADERS)
    xero.control("clock", {"advance_seconds": retry_after})
    again = xero.api("GET", "Organisation")
    assert again.status_code == 200 and again.headers["X-MinLimit-Remaining"] == "59"
    calls = xero.state()["organisations"][0]["calls"]
    assert calls["rate_limited_by_problem"] == {"minute": 1} and calls["by_status"]["429"] == 1


def test_real_time_window_resets(xero_make):
    xero = xero_make(window_seconds=1, minute_limit=5)
    statuses = []
    for _ in range(40):
        response = xero.api("GET", "Organisation")
        statuses.append(response.status_code)
        if response.status_code == 429:
            break
    assert statuses[-1] == 429
    time.sleep(int(response.headers["Retry-After"]))
    assert xero.api("GET", "Organisation").status_code == 200


def test_window_phase_differs_per_tenant(xero):
    limiter = xero.sandbox.limiter
    now = xero.sandbox.clock.now()
    ends = {limiter._window("minute:" + t, 60, now)[1] for t in (xero.tenant_id, xero.second_tenant_id)}
    assert len(ends) == 2


def test_sixth_concurrent_call_is_refused(xero):
    xero.control("faults", {"latency_ms": 800})
    barrier = threading.Barrier(6)
    results = []

    def call():
        barrier.wait()
        response = xero.api("GET", "Organisation")
        results.append(
            (
                response.status_code,
                response.headers.get("X-Rate-Limit-Problem"),
                response.headers.get("Retry-After"),
            )
        )

    threads = [threading.Thread(target=call) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(r[0] for r in results) == [200] * 5 + [429]
    assert [r for r in results if r[0] == 429] == [(429, "concurrent", None)]


def test_daily_limit_and_starter_tier(xero):
    xero.control("limits", {"tenants": {xero.tenant_id: {"tier": "starter"}}})
    assert xero.api("GET", "Organisation").headers["X-DayLimit-Remaining"] == "999"
    xero.control("limits", {"tenants": {xero.tenant_id: {"day_limit": 3}}, "reset_counts": True})
    for _ in range(3):
        assert xero.api("GET", "Organisation").status_code == 200
    refused = xero.api("GET", "Organisation")
    assert refused.status_code == 429 and refused.headers["X-Rate-Limit-Problem"] == "day"
    retry_after = int(refused.headers["Retry-After"])
    assert 1 <= retry_after <= 86400
    xero.control("clock", {"advance_seconds": retry_after})
    xero.refresh()
    assert xero.api("GET", "Organisation").status_code == 200


def test_app_wide_limit(xero_make):
    xero = xero_make(app_minute_limit=4)
    xero.control("clock", {"freeze": True})
    statuses = [xero.api("GET", "Organisation").status_code for _ in range(5)]
    assert statuses == [200] * 4 + [429]
    response = xero.api("GET", "Organisation")
    assert response.headers["X-Rate-Limit-Problem"] == "appminute" and "Retry-After" not in response.headers


def test_limit_headers_on_every_accounting_response(xero):
    for method, path, body in (
        ("GET", "Invoices", None),
        ("GET", "Invoices/nope", None),
        ("PUT", "Invoices", {"Invoices": [{"Type": "ACCREC"}]}),
    ):
        response = xero.api(method, path, json=body)
        assert all(name in response.headers for name in LIMIT_HEADERS), (path, response.status_code)


def test_body_over_3_5_mb_is_refused(xero):
    big = b'{"Invoices":[' + b" " * 3_700_000 + b"]}"
    response = xero.api("PUT", "Invoices", data=big, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert requests.get(xero.base + "/_sandbox/state", timeout=TIMEOUT).json()["counts"]["invoices"] == 0
