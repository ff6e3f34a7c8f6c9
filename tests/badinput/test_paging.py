"""Duplicated ids across pages: Cliniko pages by offset, so an invoice edited while a poll walks the pages
moves to the end and is read twice. It must give one row and one Xero invoice, and (the other side of
offset paging) the invoice that shifts back onto an already-read page must not be lost."""

from __future__ import annotations

from tests.badinput.support import IDS, small_pages, stage_five
from tests.support.engine import audit_xero_against_cliniko


def edit_first_invoice_mid_poll(stage, monkeypatch):
    """After the first page (IDS[0], IDS[1]) is read, IDS[0] is edited: it moves to the end of the list."""
    moved = {}

    def on_call(call, calls):
        if calls[-1] == "/v1/invoices" and calls.count("/v1/invoices") == 1:
            record = stage.invoice(IDS[0], 2000, 10, total_amount="99.0", notes="edited mid-poll",
                                   updated_at=stage.at(40))
            stage.load(invoices=[record])
            moved["at"] = stage.at(40)

    calls, factory = small_pages(monkeypatch, stage, on_call)
    return calls, factory, moved


def test_an_invoice_read_twice_gives_one_row_and_one_xero_invoice(stage, monkeypatch):
    stage_five(stage)
    seen: list[str] = []
    from webapp.sync import changes

    original = changes.upsert_invoices

    def spy(ctx, invoices, *args, **kwargs):
        seen.extend(str(i["id"]) for i in invoices)
        return original(ctx, invoices, *args, **kwargs)

    monkeypatch.setattr("webapp.sync.discovery.upsert_invoices", spy)
    _calls, factory, moved = edit_first_invoice_mid_poll(stage, monkeypatch)
    assert stage.poll(factory) is None and moved
    assert seen.count(IDS[0]) == 2, seen  # the duplicate really happened
    stage.drain()
    rows = [r for r in stage.rows("invoice") if r.cliniko_id == IDS[0]]
    assert len(rows) == 1 and rows[0].status == "synced"
    assert stage.practice().last_poll_error is None
    audit_xero_against_cliniko(stage.clinic)  # every invoice number once in Xero
    assert sum(1 for n in stage.xero_invoices() if n == rows[0].invoice_number) == 1


def test_no_invoice_is_lost_when_one_is_edited_mid_poll(stage, monkeypatch):
    stage_five(stage)
    _calls, factory, moved = edit_first_invoice_mid_poll(stage, monkeypatch)
    assert stage.poll(factory) is None and moved
    assert stage.poll(factory) is None  # even a second pass
    stage.drain()
    assert {r.cliniko_id for r in stage.rows("invoice")} == set(IDS)
    assert len(stage.xero_invoices()) == 5
