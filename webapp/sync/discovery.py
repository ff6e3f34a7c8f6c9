"""Discovery: read invoices changed in Cliniko since the cursor, in pages, and record them (SPEC §7).

Each page of up to 100 invoices costs about three Cliniko calls (the page, its items, its patients).
The cursor moves only after a page's rows are committed; the query is `updated_at >= cursor`, so
invoices sharing the cursor's timestamp are read again (harmless: unchanged rows are not resent).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from itertools import islice

from webapp.clients.cliniko import ClinikoClient
from webapp.extensions import db
from webapp.models import Practice, utcnow
from webapp.sync import appointments, catalogue
from webapp.sync.changes import Counts, upsert_invoices
from webapp.sync.context import PracticeContext, load

logger = logging.getLogger(__name__)

# Invoices handled together: their items and patients are read in one bulk query each (ids chunked
# by the client's id_chunk), so partly-filled pages of items are rarer.
PAGE = 200
ID_CHUNK = 200
CURSOR = "invoices"


def _pages(records: Iterable[dict], size: int = PAGE) -> Iterator[list[dict]]:
    page: list[dict] = []
    for record in records:
        page.append(record)
        if len(page) == size:
            yield page
            page = []
    if page:
        yield page


def _ids(records: Iterable[dict], key: str) -> list[str]:
    return sorted({str(r[key]) for r in records if r.get(key)})


def record_page(ctx: PracticeContext, client: ClinikoClient, invoices: list[dict], *, priority: int = 0,
                backfill_id: int | None = None, patient_cache: dict | None = None) -> Counts:
    """Read the page's items and patients in bulk and upsert its rows (caller commits).

    `patient_cache` keeps the patients already read in this pass, so a patient with many invoices
    is read once."""
    ids = [str(i["id"]) for i in invoices]
    items: dict[str, list[dict]] = defaultdict(list)
    for item in client.invoice_items(ids):
        items[str(item.get("invoice_id"))].append(item)
    cache = patient_cache if patient_cache is not None else {}
    wanted = [pid for pid in _ids(invoices, "patient_id") if pid not in cache]
    for patient in client.patients(wanted):
        cache[str(patient["id"])] = patient
    patients = {pid: cache[pid] for pid in _ids(invoices, "patient_id") if pid in cache}
    missing = {i for i in _ids(invoices, "business_id") if i not in ctx.businesses} | {
        i for i in _ids(invoices, "practitioner_id") if i not in ctx.practitioners}
    if missing:
        # A business or practitioner we have not cached yet: refresh the catalogue once.
        catalogue.refresh(ctx.practice, client)
        fresh = load(ctx.practice)
        ctx.businesses, ctx.practitioners = fresh.businesses, fresh.practitioners
    return upsert_invoices(ctx, invoices, items, patients, priority=priority, backfill_id=backfill_id)


def default_cursor(practice: Practice) -> datetime:
    """Where a practice's first poll starts: its sync-from date, else now (history is a backfill)."""
    sync_from = (practice.settings or {}).get("sync_from")
    if sync_from:
        return datetime.combine(date.fromisoformat(str(sync_from)), time(), UTC)
    return utcnow()


def changed_invoices(client: ClinikoClient, since: datetime, limit: int = 10_000_000) -> Iterator[dict]:
    """Invoices with updated_at >= since, oldest change first (see changed_records)."""
    return changed_records(client.invoices_updated_since, since, client.per_page, limit)


def changed_records(read: Callable[[datetime], Iterator[dict]], since: datetime, per_page: int,
                    limit: int = 10_000_000) -> Iterator[dict]:
    """Records with updated_at >= since, oldest change first, read by KEYSET, never by offset pages.

    Offset pages (`links.next`) over a list sorted by updated_at lose records: an invoice edited during
    the walk moves to the end and shifts an unread one onto a page already read. So each call asks for
    the first page from the newest timestamp seen so far, skipping ids already returned at that
    timestamp; only a full page of one same timestamp falls back to offset pages for that timestamp.
    """
    seen_at: set[str] = set()
    returned = 0
    while returned < limit:
        first = read(since)
        try:
            chunk = list(islice(first, per_page))
        finally:
            first.close()
        fresh = [i for i in chunk if not (i.get("updated_at") == since and str(i["id"]) in seen_at)]
        if not fresh and len(chunk) == per_page:
            # A full page sharing one timestamp: read on past what we have seen, once.
            rest = read(since)
            try:
                fresh = [i for i in islice(rest, len(seen_at), None)
                         if not (i.get("updated_at") == since and str(i["id"]) in seen_at)]
            finally:
                rest.close()
            yield from fresh
            return
        yield from fresh
        returned += len(fresh)
        newest = max((i["updated_at"] for i in chunk if i.get("updated_at")), default=since)
        if newest > since:
            since, seen_at = newest, set()
        seen_at |= {str(i["id"]) for i in chunk if i.get("updated_at") == since}
        if len(chunk) < per_page:
            return


# How far before a first poll's start its saved cursor goes: Cliniko stamps changes with its own clock.
CLOCK_MARGIN = timedelta(minutes=1)


def settle_cursor(practice: Practice, cursors: dict, name: str, started: datetime) -> None:
    """After a complete walk, a cursor that was never stored is stored as the walk's start (less a margin).

    Without this, a practice with no sync-from date and no change since it was switched on would start
    every poll at that poll's own "now", and a change made between two polls would never be read."""
    if cursors.get(name):
        return
    cursors[name] = (started - CLOCK_MARGIN).replace(microsecond=0).isoformat()
    practice.poll_cursors = dict(cursors)
    db.session.commit()


def _plain(exc: BaseException) -> str:
    """A sentence for the dashboard (the class name only when there is no message)."""
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return message[:2000]


def poll(practice_id: int, client_factory: Callable[[Practice], ClinikoClient] | None = None) -> Counts:
    """One discovery pass for a practice; records the outcome on the practice row.

    Any failure is recorded (`last_poll_error`) and re-raised; the cursor only ever moves with
    committed rows, so the next poll starts where this one got to."""
    from webapp.practices import cliniko_client

    practice = db.session.get(Practice, practice_id)
    total = Counts()
    if practice is None:
        return total
    started = practice.last_poll_at = utcnow()
    db.session.commit()
    try:
        client = (client_factory or (lambda p: cliniko_client(p, id_chunk=ID_CHUNK)))(practice)
        ctx = load(practice)
        if catalogue.is_stale(practice.id):
            catalogue.refresh(practice, client)
            db.session.commit()
            ctx = load(practice)
        cursors = dict(practice.poll_cursors or {})
        since = datetime.fromisoformat(cursors[CURSOR]) if cursors.get(CURSOR) else default_cursor(practice)
        patient_cache: dict = {}
        if ctx.settings.reads_appointments:
            total.add(appointments.poll(ctx, client, practice, cursors, default_cursor(practice), patient_cache,
                                        _pages))
        pages = _pages(changed_invoices(client, since)) if not ctx.settings.appointment_mode else ()
        for page in pages:
            counts = record_page(ctx, client, page, patient_cache=patient_cache)
            newest = max((i["updated_at"] for i in page if i.get("updated_at")), default=None)
            if newest is not None and newest > since:
                since = newest
                cursors[CURSOR] = since.isoformat()
                practice.poll_cursors = dict(cursors)
            db.session.commit()  # rows and cursor together: the cursor never passes uncommitted rows
            total.add(counts)
        if not ctx.settings.appointment_mode:
            settle_cursor(practice, cursors, CURSOR, started)
    except Exception as exc:
        db.session.rollback()
        practice = db.session.get(Practice, practice_id)
        practice.last_poll_error = _plain(exc)
        db.session.commit()
        logger.warning("poll of practice %s failed: %s: %s", practice_id, type(exc).__name__, exc)
        raise
    practice.last_successful_poll_at = utcnow()
    practice.last_poll_error = None
    db.session.commit()
    logger.info("polled practice %s: %s", practice_id, total)
    return total
