"""SPEC §12, bad responses: malformed JSON or an HTML 500 page instead of JSON mid-poll is a logged,
bounded poll error recorded on the practice; the cursor stays behind every uncommitted row; the next poll
after the fault clears completes and Xero ends with every invoice exactly once."""

from __future__ import annotations

import logging
import time
from datetime import datetime

import pytest

from tests.badinput.support import IDS, small_pages, stage_five
from tests.support.engine import audit_xero_against_cliniko
from webapp.clients.errors import ClientError


@pytest.mark.parametrize("fault", ["malformed_json_rate", "html_500_rate"])
def test_bad_response_mid_poll_is_recorded_bounded_and_recovers(stage, monkeypatch, caplog, fault):
    stamps = stage_five(stage)
    start = stage.cursor()

    def break_after_first_page(call, calls):
        if calls[-1] == "/v1/invoices" and calls.count("/v1/invoices") == 1:
            stage.faults(**{fault: 1.0, "path_prefix": "/v1/invoices", "count": 50})

    calls, factory = small_pages(monkeypatch, stage, break_after_first_page)
    caplog.set_level(logging.WARNING, logger="webapp.sync.discovery")
    began = time.monotonic()
    error = stage.poll(factory)
    assert time.monotonic() - began < 10

    # A client error, bounded (a handful of retries, not a loop), logged and recorded in plain words.
    assert isinstance(error, ClientError), repr(error)
    assert calls.count("/v1/invoices") <= 1 + 4, calls
    injected = stage.clinic.cliniko("GET", "faults")["injected"]
    assert 1 <= injected <= 4
    practice = stage.practice()
    words = "malformed JSON" if fault == "malformed_json_rate" else "an error page, not JSON"
    assert words in (practice.last_poll_error or ""), practice.last_poll_error
    assert any("poll of practice" in r.getMessage() for r in caplog.records)

    # The first page (2 invoices) was committed with its cursor; nothing after it was, and the cursor did
    # not pass it.
    committed = {r.cliniko_id for r in stage.rows("invoice")}
    assert committed == set(IDS[:2]), committed
    assert stage.cursor() == datetime.fromisoformat(stamps[1].replace("Z", "+00:00"))
    assert stage.cursor() > start

    # The fault clears: the next poll completes, the error is cleared, every invoice reaches Xero once.
    stage.faults()
    assert stage.poll(factory) is None
    assert stage.practice().last_poll_error is None
    assert stage.cursor() == datetime.fromisoformat(stamps[-1].replace("Z", "+00:00"))
    stage.drain()
    assert {r.cliniko_id: r.status for r in stage.rows("invoice")} == dict.fromkeys(IDS, "synced")
    assert audit_xero_against_cliniko(stage.clinic)["invoices"] == 5


def test_a_fault_on_the_first_page_commits_nothing_and_moves_nothing(stage):
    """Production settings (no test hooks): an HTML 500 on every items call fails the poll cleanly."""
    stage_five(stage)
    start = stage.cursor()
    stage.faults(html_500_rate=1.0, path_prefix="/v1/invoice_items")
    from webapp.practices import cliniko_client

    error = stage.poll(lambda p: cliniko_client(p, id_chunk=200, sleep=lambda s: None))
    assert isinstance(error, ClientError)
    assert stage.rows() == [] and stage.cursor() == start
    assert "error page" in stage.practice().last_poll_error
    stage.faults()
    assert stage.cycle() is None
    assert len(stage.xero_invoices()) == 5 and stage.practice().last_poll_error is None
