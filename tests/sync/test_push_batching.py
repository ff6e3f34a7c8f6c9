"""How a push fills its batches: a claim asks for a few rows more than the batch lacks, and what is prepared
beyond a full batch is kept, still claimed, for the next batch. Those rows go back to the queue, not counted
as an attempt, when the push's time is up before they are sent; nothing is lost or sent twice."""

from contextlib import contextmanager
from datetime import date, timedelta

import pytest
from flask import current_app
from sqlalchemy import event

from tests.support.engine import audit_xero_against_cliniko, invoice_calls, wire_clinic
from webapp.extensions import db
from webapp.sync import push as push_module
from webapp.sync.backfill import run as discover
from webapp.sync.backfill import start as start_backfill

BATCH = 20


@pytest.fixture
def clinic(app, web, make_user, make_practice, xero_app, xero_sandbox):
    from sandbox.cliniko.app import create_app

    app.config["XERO_BATCH_SIZE"] = BATCH
    with wire_clinic(app, web, make_user, make_practice,
                     create_app(api_key="sandbox-key-au1", seed=7, patients=15, invoices=90),
                     xero_sandbox) as clinic:
        backfill = start_backfill(clinic.practice, date.today() - timedelta(days=400), None)
        discover(backfill.id)
        yield clinic


@contextmanager
def invoice_claims(log: list):
    """Append ("claimed", rows) to `log` for each claim of invoice rows, while in the block."""
    def listen(conn, cursor, statement, parameters, *args):
        if statement.startswith("UPDATE sync_jobs") and "SKIP LOCKED" in statement and "invoice" in str(parameters):
            log.append(("claimed", cursor.rowcount))

    event.listen(db.engine, "after_cursor_execute", listen)
    try:
        yield log
    finally:
        event.remove(db.engine, "after_cursor_execute", listen)


def push_all(clinic) -> None:
    while push_module.push(clinic.practice.id, "worker-a", time_budget=60).synced:
        pass


def test_rows_prepared_for_a_next_batch_go_back_to_the_queue_when_time_is_up(clinic, monkeypatch):
    sent = []
    real_send = push_module.Pusher.send_invoices

    def send_then_time_is_up(self, items):
        real_send(self, items)
        sent.append(len(items))

    monkeypatch.setattr(push_module.Pusher, "send_invoices", send_then_time_is_up)
    clock = push_module.time.monotonic
    monkeypatch.setattr(push_module.time, "monotonic", lambda: clock() + (3600 if sent else 0))

    push_module.push(clinic.practice.id, "worker-a", time_budget=60)

    assert sent == [BATCH]  # one full batch, then the time was up
    invoices = clinic.rows("invoice")
    assert sum(r.status == "synced" for r in invoices) == BATCH
    back = [r for r in invoices if r.status_reason == "not sent before the push's time was up; back in the queue"]
    assert back, "the claim's spare rows, prepared for a next batch, were given back"
    assert all(r.status == "pending" and r.claimed_by is None and r.attempts == 0 for r in back), \
        "a row given back unsent is due again and has not used an attempt"
    assert not [r for r in clinic.rows() if r.status == "running"]

    monkeypatch.setattr(push_module.time, "monotonic", clock)
    push_all(clinic)
    audit_xero_against_cliniko(clinic)  # each invoice, contact and payment exactly once
    assert not [r for r in clinic.rows() if r.status in ("pending", "running", "retrying")]
    assert {r.status for r in back} == {"synced"}


def test_one_claim_fills_a_batch_even_when_some_rows_cannot_be_sent(clinic):
    with invoice_claims([]) as claims:
        push_all(clinic)
    audit_xero_against_cliniko(clinic)
    unsendable = [r for r in clinic.rows("invoice") if r.status in ("failed", "skipped")]
    assert unsendable, "the clinic should have invoices that fail mapping or are skipped"
    calls = invoice_calls(clinic)
    assert calls and all(n == BATCH for n in calls[:-1]), calls  # every call full but the last
    # About one claim a batch (here 4 for 4 calls; 7 when each batch was topped up by claims for the few missing).
    assert len([n for _, n in claims if n]) <= len(calls) + 1, (claims, calls, len(unsendable))


@pytest.mark.parametrize("overlap", [True, False])
def test_the_next_batch_is_prepared_while_xero_answers(clinic, monkeypatch, overlap):
    """With XERO_OVERLAP_CALLS (the default) the next invoice batch is claimed while Xero works on the last
    call, whose answer is recorded after; with it off, each call is recorded before the next claim. Either
    way every invoice is in Xero exactly once."""
    monkeypatch.setitem(current_app.config, "XERO_OVERLAP_CALLS", 1 if overlap else 0)
    events: list[tuple[str, int]] = []
    real_record = push_module.Pusher._sent_invoices

    def record(self, items, *args):
        events.append(("recorded", len(items)))
        return real_record(self, items, *args)

    monkeypatch.setattr(push_module.Pusher, "_sent_invoices", record)
    with invoice_claims(events):
        push_all(clinic)
    audit_xero_against_cliniko(clinic)
    order = [what for what, rows in events if rows]  # a claim that found nothing left is not part of the order
    assert order.count("recorded") == len(invoice_calls(clinic)) >= 3
    if overlap:
        # claim 1, claim 2 (while call 1 is out), record 1, claim 3 (while call 2 is out), record 2, …
        assert order[:3] == ["claimed", "claimed", "recorded"], order
    else:
        assert order[:4] == ["claimed", "recorded", "claimed", "recorded"], order
