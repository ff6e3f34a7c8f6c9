"""Sandbox Xero control endpoints, persistence to a data file, and the CLI entry point."""

import subprocess
import sys
import time

import requests
from click.testing import CliRunner

from sandbox.xero.cli import xero_command
from tests.sandbox.conftest import TIMEOUT


def test_state_shape_and_reset(xero):
    invoice = xero.create_invoice(number="S-1")
    xero.api(
        "PUT",
        "Payments",
        json={
            "Payments": [
                {
                    "Invoice": {"InvoiceID": invoice["InvoiceID"]},
                    "Account": {"Code": "090"},
                    "Amount": 10,
                    "Date": "2025-03-02",
                }
            ]
        },
    )
    state = xero.state()
    assert state["counts"] == {"contacts": 1, "invoices": 1, "credit_notes": 0, "payments": 1}
    org = state["organisations"][0]
    assert org["name"] == "Demo Clinic Pty Ltd"
    [row] = org["invoices"]
    assert (row["InvoiceNumber"], row["Total"], row["Status"], row["AmountDue"]) == (
        "S-1",
        "110.00",
        "AUTHORISED",
        "100.00",
    )
    assert row["payments"][0]["Amount"] == "10.00"
    assert org["contacts"][0]["Name"] == "Jane Citizen"
    assert org["calls"]["admitted"] >= 2 and org["calls"]["by_status"]["200"] >= 2
    summary = requests.get(xero.base + "/_sandbox/state?summary=1", timeout=TIMEOUT).json()
    assert "invoices" not in summary["organisations"][0]
    xero.control("reset")
    assert xero.state()["counts"]["invoices"] == 0


def test_load_through_the_rules(xero):
    result = xero.control(
        "load",
        {
            "contacts": [{"Name": "Loaded Person", "ContactNumber": "L-1"}],
            "invoices": [xero.invoice("LD-1", Contact={"ContactNumber": "L-1"}), xero.invoice("LD-1")],
        },
    )
    assert result["created"]["contacts"] == 1 and result["created"]["invoices"] == 1
    assert result["errors"][0]["errors"] == ["Invoice # must be unique."]


def test_clock_control(xero):
    frozen = xero.control("clock", {"freeze": True})
    assert frozen["frozen"] is True
    moved = xero.control("clock", {"advance_seconds": 3600})
    assert abs(moved["epoch"] - frozen["epoch"] - 3600) < 0.01
    assert xero.control("clock", {"set": "2030-01-01T00:00:00Z"})["now"].startswith("2030-01-01")


def test_persistence_to_data_file(xero_make, tmp_path):
    data = tmp_path / "xero.json"
    first = xero_make(data_file=str(data))
    first.create_invoice(number="PER-1")
    assert requests.post(first.base + "/_sandbox/save", timeout=TIMEOUT).status_code == 200
    second = xero_make(connect=False, data_file=str(data))
    second.tokens = first.tokens
    assert second.api("GET", "Invoices/PER-1").json()["Invoices"][0]["Total"] == 110
    assert len(second.state()["identity"]["connections"]) == 1


def test_cli_help_and_module_entry_point(tmp_path):
    result = CliRunner().invoke(xero_command, ["--help"])
    assert result.exit_code == 0 and "--window-seconds" in result.output and "--redirect-uri" in result.output
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox.xero", "--port", "0", "--window-seconds", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("Sandbox Xero running at http://127.0.0.1:")
        base = line.split(" at ")[1].strip()
        deadline = time.monotonic() + 5
        while True:
            try:
                state = requests.get(base + "/_sandbox/state", timeout=2).json()
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert state["limits"]["window_seconds"] == 2
    finally:
        process.terminate()
        process.wait(5)
