"""Sandbox Xero Idempotency-Key: replay of the first response (errors too), conflicts, length, ~6 minute life."""


def _put(xero, key, element, **params):
    return xero.api(
        "PUT",
        "Invoices",
        params=params or None,
        headers={"Idempotency-Key": key},
        json={"Invoices": [element]},
    )


def test_replay_returns_identical_body_and_creates_once(xero):
    first = _put(xero, "key-1", xero.invoice("ID-1"))
    again = _put(xero, "key-1", xero.invoice("ID-1"))
    assert first.status_code == again.status_code == 200
    assert first.content == again.content
    assert xero.state()["counts"]["invoices"] == 1


def test_same_key_different_request_is_400(xero):
    _put(xero, "key-2", xero.invoice("ID-2"))
    other = _put(xero, "key-2", xero.invoice("ID-3"))
    assert other.status_code == 400 and "used with a different request" in other.json()["Message"]
    other_url = _put(xero, "key-2", xero.invoice("ID-2"), summarizeErrors="false")
    assert other_url.status_code == 400


def test_errors_are_replayed_even_after_the_cause_is_fixed(xero):
    xero.control("lock-dates", {"period_lock_date": "2025-12-31"})
    first = _put(xero, "key-3", xero.invoice("ID-4"))
    assert first.status_code == 400
    xero.control("lock-dates", {"period_lock_date": None})
    again = _put(xero, "key-3", xero.invoice("ID-4"))
    assert again.status_code == 400 and again.content == first.content
    assert _put(xero, "key-3b", xero.invoice("ID-4")).status_code == 200


def test_key_expires_after_about_six_minutes(xero):
    _put(xero, "key-4", xero.invoice("ID-5"))
    xero.control("clock", {"advance_seconds": 361})
    xero.refresh()
    expired = _put(xero, "key-4", xero.invoice("ID-5"))
    assert expired.status_code == 400
    assert expired.json()["Elements"][0]["ValidationErrors"] == [{"Message": "Invoice # must be unique."}]


def test_key_length_limits_and_get_ignores_key(xero):
    assert _put(xero, "k" * 129, xero.invoice("ID-6")).status_code == 400
    assert _put(xero, "k" * 128, xero.invoice("ID-6")).status_code == 200
    first = xero.api("GET", "Invoices", headers={"Idempotency-Key": "get-key"})
    xero.create_invoice(number="ID-7")
    second = xero.api("GET", "Invoices", headers={"Idempotency-Key": "get-key"})
    assert len(second.json()["Invoices"]) == len(first.json()["Invoices"]) + 1
