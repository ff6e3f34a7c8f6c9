"""Sandbox Cliniko control endpoints: activity, state, reset, seed, load, clock, persistence and the CLI."""

import json

import pytest
import requests
from click.testing import CliRunner

from sandbox.cliniko.app import create_app
from sandbox.cliniko.cli import cliniko_command, seed_command
from tests.sandbox.cliniko_fixtures import KEY, TIMEOUT, control, get, running, session, walk
from tests.support.servers import serve


@pytest.fixture()
def root():
    with running(patients=40, invoices=200) as url:
        yield url


def _invoices(root, *filters):
    records, _ = walk(session(), f"{root}/v1/invoices", per_page=100, **{"q[]": list(filters)})
    return {r["id"]: r for r in records}


def test_activity_changes_statuses_and_bumps_updated_at(root):
    control(root, "clock", {"now": "2025-06-02T03:00:00Z", "frozen": True})
    before = _invoices(root, "archived_at:*", "deleted_at:*")
    result = control(
        root,
        "activity",
        {"new_invoices": 3, "payments": 2, "edits": 2, "archives": 1, "deletes": 1, "reopens": 1},
    )
    assert result["now"] == "2025-06-02T03:00:00Z"
    assert {k: len(v) for k, v in result.items() if k != "now"} == {
        "new_invoices": 3,
        "payments": 2,
        "edits": 2,
        "archives": 1,
        "deletes": 1,
        "reopens": 1,
    }
    changed = _invoices(root, "updated_at:>=2025-06-02T03:00:00Z", "archived_at:*", "deleted_at:*")
    touched = {i for ids in result.values() if isinstance(ids, list) for i in ids}
    assert touched <= set(changed)
    for new_id in result["new_invoices"]:
        assert new_id not in before and changed[new_id]["status"] == 10
        assert changed[new_id]["created_at"] == "2025-06-02T03:00:00Z"
    for paid in result["payments"]:
        assert before[paid]["status"] == 10
        assert changed[paid]["status"] == 20 and changed[paid]["closed_at"] == "2025-06-02T03:00:00Z"
    for reopened in result["reopens"]:
        assert before[reopened]["status"] == 20 and changed[reopened]["status"] == 10
        assert changed[reopened]["closed_at"] is None
    assert changed[result["archives"][0]]["archived_at"] == "2025-06-02T03:00:00Z"
    assert changed[result["deletes"][0]]["deleted_at"] == "2025-06-02T03:00:00Z"
    visible = _invoices(root)
    assert result["archives"][0] not in visible and result["deletes"][0] not in visible
    items = get(
        session(),
        f"{root}/v1/invoice_items",
        **{"q[]": ["deleted_at:*", f"invoice_id:={result['deletes'][0]}"]},
    ).json()
    assert all(i["deleted_at"] == "2025-06-02T03:00:00Z" for i in items["invoice_items"])


def test_activity_is_deterministic_and_rejects_unknown_kinds():
    results = []
    for _ in range(2):
        with running(patients=20, invoices=60, frozen=True) as root:
            results.append(control(root, "activity", {"payments": 3, "edits": 2}))
            bad = requests.post(f"{root}/_sandbox/activity", json={"refunds": 1}, timeout=TIMEOUT)
            assert bad.status_code == 400
    assert results[0] == results[1]


def test_state_counts_calls_per_key(root):
    s = session()
    for _ in range(3):
        get(s, f"{root}/v1/taxes")
    get(session("sandbox-key"), f"{root}/v1/taxes")
    state = control(root, "state", method="get")
    assert state["calls"] == {KEY: 4}
    assert state["counts"]["invoices"]["total"] == 200
    assert (
        sum(state["counts"]["invoices"]["by_status"].values()) + state["counts"]["invoices"]["deleted"] == 200
    )
    detail = requests.get(f"{root}/_sandbox/state?invoices=1", timeout=TIMEOUT).json()
    assert len(detail["invoices"]) == 200 and {"id", "number", "status", "total_amount"} <= set(
        detail["invoices"][0]
    )


def test_seed_reset_and_load(root):
    seeded = control(root, "seed", {"seed": 9, "patients": 12, "invoices": 30})
    assert seeded["counts"]["invoices"]["total"] == 30 and seeded["params"]["seed"] == 9
    assert control(root, "state", method="get")["counts"]["patients"]["total"] == 12
    other = control(root, "seed", {"api_key": "second-clinic-au2", "seed": 1, "patients": 5, "invoices": 7})
    assert other["api_key"] == "second-clinic-au2"
    assert get(session("second-clinic-au2"), f"{root}/v1/invoices").json()["total_entries"] <= 7
    empty = control(root, "reset", {"empty": True})
    assert empty["counts"]["invoices"]["total"] == 0
    assert get(session("second-clinic-au2"), f"{root}/v1/invoices").status_code == 401
    loaded = control(
        root,
        "load",
        {
            "invoices": [
                {
                    "id": "77",
                    "number": 5001,
                    "patient": {"links": {"self": "https://api.au1.cliniko.com/v1/patients/9"}},
                }
            ],
            "invoice_items": [
                {
                    "invoice_id": "77",
                    "name": "Consult",
                    "unit_price": "100.0",
                    "quantity": 1,
                    "tax_rate": 10,
                    "discounted_amount": "20.0",
                    "is_monetary_discount": True,
                    "billable_item_id": "3",
                }
            ],
        },
    )
    assert loaded["loaded"] == {"invoices": 1, "invoice_items": 1}
    invoice = get(session(), f"{root}/v1/invoices/77").json()
    assert (
        invoice["total_amount"] == "90.0"
        and invoice["status"] == 10
        and invoice["status_description"] == "Open"
    )
    assert invoice["patient"]["links"]["self"].endswith("/v1/patients/9") and "appointment" not in invoice
    item = get(session(), f"{root}/v1/invoice_items", **{"q[]": "invoice_id:=77"}).json()["invoice_items"][0]
    assert item["net_price"] == "81.818" and item["discount_percentage"] == 18.1818
    restored = control(root, "reset")
    assert restored["counts"]["invoices"]["total"] == 200
    bad = requests.post(f"{root}/_sandbox/load", json={"payments": []}, timeout=TIMEOUT)
    assert bad.status_code == 400


def test_clock_set_advance_freeze(root):
    assert control(root, "clock", {"now": "2025-07-01T00:00:00Z", "frozen": True}) == {
        "now": "2025-07-01T00:00:00Z",
        "frozen": True,
    }
    assert control(root, "clock", {"advance_seconds": 90})["now"] == "2025-07-01T00:01:30Z"
    assert control(root, "clock", method="get")["now"] == "2025-07-01T00:01:30Z"


def test_rate_limit_can_be_changed_at_run_time(root):
    assert control(root, "rate_limit", {"calls_per_minute": 1, "window_seconds": 60}) == {
        "calls_per_minute": 1,
        "window_seconds": 60.0,
    }
    s = session()
    assert get(s, f"{root}/v1/taxes").status_code == 200
    assert get(s, f"{root}/v1/taxes").status_code == 429


def test_data_file_persists_across_restarts(tmp_path):
    data = tmp_path / "cliniko.json"
    with serve(create_app(patients=10, invoices=30, data_file=str(data), now="2025-06-01T00:00:00Z")) as root:
        control(root, "activity", {"new_invoices": 2})
        first = control(root, "state", method="get")["counts"]
    assert json.loads(data.read_text())["version"] == 1
    with serve(create_app(patients=10, invoices=30, data_file=str(data))) as root:
        assert control(root, "state", method="get")["counts"] == first
        assert first["invoices"]["total"] == 32


def test_seed_command_reloads_a_running_sandbox(root):
    result = CliRunner().invoke(
        seed_command, ["--url", f"{root}/v1", "--seed", "4", "--patients", "8", "--invoices", "16"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["counts"]["invoices"]["total"] == 16
    unreachable = CliRunner().invoke(seed_command, ["--url", "http://127.0.0.1:9/v1"])
    assert unreachable.exit_code != 0 and "cannot reach" in unreachable.output


def test_cliniko_command_options():
    result = CliRunner().invoke(cliniko_command, ["--help"])
    assert result.exit_code == 0
    for option in ("--port", "--host", "--api-key", "--seed", "--patients", "--invoices", "--data"):
        assert option in result.output
