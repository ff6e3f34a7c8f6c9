"""Sandbox Xero faults: error rate, latency, hangs, 429 storms, commit-then-drop, determinism by seed."""

import time

import pytest
import requests


def test_error_rate_with_status(xero):
    xero.control("faults", {"error_rate": 1.0, "error_status": 500})
    response = xero.api("GET", "Organisation")
    assert response.status_code == 500 and response.json()["Title"] == "Internal Server Error"
    xero.control("faults", {"error_rate": 1.0, "error_status": 503, "methods": ["PUT"]})
    assert xero.api("GET", "Organisation").status_code == 200
    assert xero.api("PUT", "Invoices", json={"Invoices": [xero.invoice("F-1")]}).status_code == 503
    assert xero.state()["counts"]["invoices"] == 0


def test_latency(xero):
    xero.control("faults", {"latency_ms": 300})
    started = time.monotonic()
    assert xero.api("GET", "Organisation").status_code == 200
    assert time.monotonic() - started >= 0.3


def test_timeout_hangs_past_the_client_timeout(xero):
    xero.control("faults", {"timeout_rate": 1.0, "hang_seconds": 5})
    with pytest.raises(requests.exceptions.ReadTimeout):
        xero.api("PUT", "Invoices", json={"Invoices": [xero.invoice("F-2")]}, timeout=0.5)
    xero.control("faults", {})
    assert xero.state()["counts"]["invoices"] == 0


def test_429_storm(xero):
    xero.control("faults", {"storm_calls": 3, "retry_after": 2})
    responses = [xero.api("GET", "Organisation") for _ in range(4)]
    assert [r.status_code for r in responses] == [429, 429, 429, 200]
    assert responses[0].headers["X-Rate-Limit-Problem"] == "minute" and responses[0].headers["Retry-After"] == "2"


def test_commit_then_drop_the_connection(xero):
    xero.control("faults", {"script": ["drop"]})
    with pytest.raises((requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        xero.api("PUT", "Invoices", json={"Invoices": [xero.invoice("F-3")]}, timeout=5)
    invoices = xero.state()["organisations"][0]["invoices"]
    assert [i["InvoiceNumber"] for i in invoices] == ["F-3"]
    assert xero.api("GET", "Invoices", params={"InvoiceNumbers": "F-3"}).json()["Invoices"][0]["Total"] == 110


def test_drop_with_idempotency_key_replays_the_committed_response(xero):
    xero.control("faults", {"script": ["drop"]})
    headers = {"Idempotency-Key": "drop-1"}
    body = {"Invoices": [xero.invoice("F-4")]}
    with pytest.raises((requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        xero.api("PUT", "Invoices", json=body, headers=headers, timeout=5)
    retry = xero.api("PUT", "Invoices", json=body, headers=headers)
    assert retry.status_code == 200 and retry.json()["Invoices"][0]["InvoiceNumber"] == "F-4"
    assert xero.state()["counts"]["invoices"] == 1


def test_faults_are_deterministic_given_a_seed(xero):
    def run():
        xero.control("faults", {"seed": 42, "error_rate": 0.3, "rate_limit_rate": 0.2})
        return [xero.api("GET", "Organisation").status_code for _ in range(15)]

    first = run()
    xero.control("limits", {"reset_counts": True})
    assert run() == first
    assert set(first) == {200, 429, 503}
    assert xero.state()["faults"]["injected"]
