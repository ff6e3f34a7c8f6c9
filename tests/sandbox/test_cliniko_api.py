"""Sandbox Cliniko over real HTTP: auth, User-Agent, rate limit, paging, shapes and missing endpoints."""

import base64
import time

import pytest
import requests

from tests.sandbox.cliniko_fixtures import (
    KEY,
    TIMEOUT,
    USER_AGENT,
    control,
    get,
    link_id,
    running,
    session,
    walk,
)

LIST_ENDPOINTS = [
    "businesses",
    "practitioners",
    "patients",
    "invoices",
    "invoice_items",
    "billable_items",
    "products",
    "taxes",
    "individual_appointments",
    "appointment_types",
    "concession_types",
]


@pytest.fixture(scope="module")
def root():
    with running(patients=60, invoices=450) as url:
        yield url


@pytest.fixture()
def api(root):
    return session()


def test_basic_auth_with_and_without_shard_suffix(root):
    for key in (KEY, "sandbox-key"):
        assert get(session(key), f"{root}/v1/settings").status_code == 200
    raw = base64.b64encode(f"{KEY}:".encode()).decode()
    r = requests.get(
        f"{root}/v1/businesses",
        headers={"Authorization": f"Basic {raw}", "User-Agent": USER_AGENT},
        timeout=TIMEOUT,
    )
    assert r.status_code == 200


@pytest.mark.parametrize("key", ["wrong-key-au1", "", None])
def test_wrong_or_missing_key_is_401(root, key):
    r = get(session(key), f"{root}/v1/invoices")
    assert r.status_code == 401
    assert "HTTP Basic: Access denied" in r.text
    assert r.headers["WWW-Authenticate"].startswith("Basic")


@pytest.mark.parametrize("agent", [None, "", "python-requests/2.32", "My app (no email here)"])
def test_user_agent_without_email_is_refused(root, agent):
    s = session(user_agent=agent)
    if agent is None:
        s.headers["User-Agent"] = None  # requests drops headers set to None
    r = get(s, f"{root}/v1/invoices")
    assert r.status_code == 403
    assert r.text == "Requires a user agent"


def test_rate_limit_429_with_reset_then_recovery():
    with running(patients=5, invoices=5, calls_per_minute=3, rate_window_seconds=2) as root:
        s = session()
        time.sleep(2 - (time.time() % 2) + 0.02)  # start just after a window boundary
        assert [get(s, f"{root}/v1/taxes").status_code for _ in range(3)] == [200, 200, 200]
        refused = get(s, f"{root}/v1/taxes")
        assert refused.status_code == 429
        reset = int(refused.headers["X-RateLimit-Reset"])
        assert time.time() < reset <= time.time() + 2.5
        state = control(root, "state", method="get")
        assert state["calls"][KEY] == 4 and state["rate_limited"][KEY] == 1
        time.sleep(max(reset - time.time(), 0) + 0.05)
        assert get(s, f"{root}/v1/taxes").status_code == 200


def test_list_envelope_links_are_absolute_and_keep_the_query(root, api):
    r = get(api, f"{root}/v1/invoices", per_page=5, page=2, sort="number")
    body = r.json()
    assert set(body) == {"invoices", "total_entries", "links"}
    assert len(body["invoices"]) == 5 and body["total_entries"] > 10
    links = body["links"]
    assert links["self"].startswith(f"{root}/v1/invoices?") and "page=2" in links["self"]
    assert "per_page=5" in links["next"] and "page=3" in links["next"] and "sort=number" in links["next"]
    assert "page=1" in links["previous"]
    first = get(api, f"{root}/v1/invoices", per_page=5).json()
    assert "previous" not in first["links"]


def test_default_page_size_is_50_and_per_page_is_capped_at_100(root, api):
    assert len(get(api, f"{root}/v1/invoices").json()["invoices"]) == 50
    assert len(get(api, f"{root}/v1/invoices", per_page=500).json()["invoices"]) == 100


def test_paging_walks_every_record_exactly_once(root, api):
    total = get(api, f"{root}/v1/invoices").json()["total_entries"]
    records, calls = walk(api, f"{root}/v1/invoices", per_page=100, sort="updated_at")
    ids = [r["id"] for r in records]
    assert len(ids) == total == len(set(ids))
    assert calls == -(-total // 100)
    last = get(api, f"{root}/v1/invoices", per_page=100, page=calls).json()
    assert "next" not in last["links"]
    beyond = get(api, f"{root}/v1/invoices", per_page=100, page=calls + 1).json()
    assert beyond["invoices"] == [] and beyond["total_entries"] == total


@pytest.mark.parametrize("name", LIST_ENDPOINTS)
def test_every_list_and_single_endpoint(root, api, name):
    body = get(api, f"{root}/v1/{name}", per_page=3).json()
    assert body["total_entries"] >= 1
    record = body[name][0]
    assert isinstance(record["id"], str) and record["id"].isdigit() and int(record["id"]) > 2**53
    assert record["links"]["self"] == f"{root}/v1/{name}/{record['id']}"
    assert record["created_at"].endswith("Z") and record["updated_at"].endswith("Z")
    one = get(api, record["links"]["self"])
    assert one.status_code == 200 and one.json() == record


def test_invoice_shape_money_strings_and_link_only_relations(root, api):
    invoice = get(api, f"{root}/v1/invoices", per_page=1).json()["invoices"][0]
    for field in ("total_amount", "net_amount", "tax_amount", "discounted_amount"):
        assert isinstance(invoice[field], str) and "." in invoice[field]
    assert isinstance(invoice["number"], int)
    assert invoice["status"] in (10, 20, 30, 40)
    assert (
        invoice["status_description"]
        == {10: "Open", 20: "Paid", 30: "Closed", 40: "Open credit"}[invoice["status"]]
    )
    for rel in ("patient", "practitioner", "business"):
        assert set(invoice[rel]) == {"links"} and set(invoice[rel]["links"]) == {"self"}
    assert "patient_id" not in invoice
    patient = get(api, invoice["patient"]["links"]["self"])
    assert patient.status_code == 200 and patient.json()["id"] == link_id(invoice["patient"])
    items = get(api, invoice["invoice_items"]["links"]["self"]).json()["invoice_items"]
    assert items and all(link_id(i["invoice"]) == invoice["id"] for i in items)
    same = get(api, f"{root}/v1/invoice_items", **{"q[]": f"invoice_id:={invoice['id']}"}).json()[
        "invoice_items"
    ]
    assert [i["id"] for i in same] == [i["id"] for i in items]
    assert all(("billable_item" in i) != ("product" in i) for i in items)


def test_links_follow_the_host_that_was_called(root, api):
    port = root.rsplit(":", 1)[1]
    r = api.get(f"{root}/v1/taxes", headers={"Host": f"api.au2.cliniko.com:{port}"}, timeout=TIMEOUT)
    assert r.json()["taxes"][0]["links"]["self"].startswith(f"http://api.au2.cliniko.com:{port}/v1/taxes/")


def test_settings_is_an_object(root, api):
    settings = get(api, f"{root}/v1/settings").json()
    assert settings["account"]["country_code"] == "AU" and settings["account"]["currency_symbol"] == "$"
    assert settings["integrations"]["xero"] == {"enabled": False}


@pytest.mark.parametrize(
    "path", ["payments", "payments/1", "invoices/1/payments", "payment_methods", "invoices/999"]
)
def test_no_payments_endpoint(root, api, path):
    assert get(api, f"{root}/v1/{path}").status_code == 404


def test_read_only(root, api):
    assert api.post(f"{root}/v1/invoices", json={}, timeout=TIMEOUT).status_code == 405


def test_inactive_practitioners_are_listed_separately(root, api):
    active = get(api, f"{root}/v1/practitioners").json()["practitioners"]
    inactive = get(api, f"{root}/v1/practitioners/inactive").json()["practitioners"]
    assert active and inactive
    assert all(p["active"] for p in active) and not any(p["active"] for p in inactive)


def test_faults_error_html_malformed_and_latency(root, api):
    try:
        control(root, "faults", {"error_rate": 1.0, "error_status": 503, "count": 1})
        assert get(api, f"{root}/v1/taxes").status_code == 503
        assert get(api, f"{root}/v1/taxes").status_code == 200  # count used up
        control(root, "faults", {"html_500_rate": 1.0, "count": 1})
        r = get(api, f"{root}/v1/taxes")
        assert (
            r.status_code == 500 and r.headers["Content-Type"].startswith("text/html") and "<html>" in r.text
        )
        control(root, "faults", {"malformed_json_rate": 1.0, "count": 1})
        r = get(api, f"{root}/v1/taxes")
        assert r.status_code == 200
        with pytest.raises(ValueError):
            r.json()
        control(root, "faults", {"rate_limit_rate": 1.0, "count": 1})
        r = get(api, f"{root}/v1/taxes")
        assert r.status_code == 429 and int(r.headers["X-RateLimit-Reset"]) >= int(time.time())
        control(root, "faults", {"latency_ms": 300, "count": 1})
        started = time.monotonic()
        assert get(api, f"{root}/v1/taxes").status_code == 200
        assert time.monotonic() - started >= 0.3
        bad = requests.post(f"{root}/_sandbox/faults", json={"bogus": 1}, timeout=TIMEOUT)
        assert bad.status_code == 400
    finally:
        control(root, "faults", method="delete")
