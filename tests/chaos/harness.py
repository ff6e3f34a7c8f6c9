"""Shared machinery of the chaos suite (SPEC §12): sizes, real worker/clock processes, and the audit.

Sizes: `CHAOS_SCALE=reduced` (the default, what `make test` runs; the whole suite fits ~90 s) or
`CHAOS_SCALE=full` (SPEC §12 as written: a 2,000-invoice backfill, several kills, several faults;
`make chaos`). `CHAOS_SEED` makes the random moments reproducible (default 12).

Three things the tests do in-process to fit the time budget (none changes what a worker does):

* `reap(stale)`: the clock's reaper runs with `STALE_AFTER` = 5 minutes and there is no knob for it;
  the harness calls `webapp.sync.reaper.reap_stale` with a short threshold (longer than any single
  call can take here) so that rows held by a SIGKILLed worker come back within the test.
* `revive_backfills()`: likewise for a backfill whose discovery job was lost (the clock waits 10
  minutes of no progress); the harness uses the product's `stalled_backfills` with a short quiet time.
* `hurry_retries()`: the retry backoff is `attempt^4 + 15 s + jitter`, again without a knob; the
  harness pulls `next_attempt_at` of retrying rows forward to "in one second" (the clock advancing),
  so retries happen within the test. Nothing else about a retry changes.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, select, text, update
from sqlalchemy.exc import OperationalError

from tests.conftest import ROOT, subprocess_env
from tests.support.engine import audit_xero_against_cliniko, money
from webapp.extensions import db
from webapp.models import Backfill, SyncJob, utcnow

SCALE = os.environ.get("CHAOS_SCALE", "reduced")
SEED = int(os.environ.get("CHAOS_SEED", "12"))
# "waiting" is final only for a follow-up of an invoice that is not in Xero (audit() checks that).
UNFINISHED = ("pending", "retrying", "running")
FINAL = ("synced", "failed", "skipped", "ignored", "waiting")
# Longer than any one batch can take here: with faults (2 s hangs, GET look-ups retried with backoff)
# and without (PUSH_TIME_BUDGET_SECONDS=3, 2 s windows, a batch is one call plus look-ups).
STALE = timedelta(seconds=20)
QUICK_STALE = timedelta(seconds=8)


@dataclass(frozen=True)
class Size:
    invoices: int
    patients: int
    kills: int  # SIGKILLs in the kill scenario
    workers: int
    calls_per_window: int  # the service's budget per 2 s window (sandbox allows 60)
    batch: int
    flushes: int
    restarts: int
    chaos_seconds: float  # the longest the disruptive phase may last
    finish_seconds: float  # then, everything must be final within this


SIZES = {
    "reduced": Size(invoices=150, patients=50, kills=3, workers=2, calls_per_window=20, batch=5, flushes=1,
                    restarts=1, chaos_seconds=25, finish_seconds=40),
    "full": Size(invoices=2000, patients=600, kills=8, workers=3, calls_per_window=60, batch=10, flushes=3,
                 restarts=3, chaos_seconds=240, finish_seconds=300),
}
SIZE = SIZES[SCALE]
SINCE = date.today() - timedelta(days=400)  # before every sandbox invoice (they span ~182 days)

ENV_KEYS = ("XERO_CLIENT_ID", "XERO_CLIENT_SECRET", "XERO_AUTHORIZE_URL", "XERO_TOKEN_URL", "XERO_REVOKE_URL",
            "XERO_CONNECTIONS_URL", "XERO_API_URL", "XERO_REDIRECT_URI", "CLINIKO_API_URL", "TOKEN_ENCRYPTION_KEYS")


def process_env(app, **extra) -> dict[str, str]:
    """Environment for workers and the clock: the test services plus the app's sandbox config."""
    return subprocess_env(PUSH_TIME_BUDGET_SECONDS="3", XERO_BATCH_SIZE=str(SIZE.batch),
                          XERO_RATE_WINDOW_SECONDS="2", XERO_CALLS_PER_WINDOW=str(SIZE.calls_per_window),
                          REAPER_SECONDS="1", POLL_INTERVAL_SECONDS="3600", LOG_LEVEL="WARNING",
                          **{k: app.config[k] for k in ENV_KEYS}, **extra)


class Fleet:
    """Real `python -m jobs.worker` processes and one `python -m jobs.clock`, each in its own process
    group (killpg reaches the work horse too). `stop()` ends every one of them."""

    def __init__(self, env: dict[str, str], log_dir: Path, rng: random.Random):
        self.env, self.log_dir, self.rng = env, log_dir, rng
        self.workers: list[subprocess.Popen] = []
        self.clock: subprocess.Popen | None = None
        self.started = 0
        self.killed = 0

    def _spawn(self, module: str, name: str) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen([sys.executable, "-m", module], cwd=ROOT, env=self.env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        proc.log = log  # type: ignore[attr-defined]
        return proc

    def start(self, workers: int) -> Fleet:
        self.clock = self._spawn("jobs.clock", "clock")
        for _ in range(workers):
            self.start_worker()
        return self

    def start_worker(self) -> None:
        self.started += 1
        self.workers.append(self._spawn("jobs.worker", f"worker-{self.started}"))

    def kill_one(self) -> None:
        """SIGKILL a random worker and its work horse, mid-whatever, and start a replacement."""
        victim = self.workers.pop(self.rng.randrange(len(self.workers)))
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait(timeout=10)
        victim.log.close()  # type: ignore[attr-defined]
        self.killed += 1
        self.start_worker()

    def stop(self) -> None:
        procs = [p for p in [self.clock, *self.workers] if p is not None]
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # a work horse left behind in the group
            proc.log.close()  # type: ignore[attr-defined]
        self.workers, self.clock = [], None

    def logs(self, limit: int = 4000) -> str:
        out = []
        for path in sorted(self.log_dir.glob("*.log")):
            body = path.read_text(errors="replace")
            if body.strip():
                out.append(f"--- {path.name}\n{body[-limit:]}")
        return "\n".join(out)


def retrying_db(fn, attempts: int = 40):
    """Run fn() in the test's session, riding out a Postgres restart."""
    for n in range(attempts):
        try:
            return fn()
        except OperationalError:
            db.session.rollback()
            if n == attempts - 1:
                raise
            time.sleep(0.5)
    raise AssertionError("unreachable")


def status_counts(practice_id: int) -> Counter:
    def read():
        db.session.expire_all()
        rows = db.session.execute(select(SyncJob.status, func.count()).where(SyncJob.practice_id == practice_id)
                                  .group_by(SyncJob.status)).all()
        db.session.commit()
        return Counter(dict(rows))
    return retrying_db(read)


def backfill_state(backfill_id: int) -> str:
    def read():
        db.session.expire_all()
        state = db.session.get(Backfill, backfill_id).state
        db.session.commit()
        return state
    return retrying_db(read)


def finished(practice_id: int, backfill_id: int) -> bool:
    counts = status_counts(practice_id)
    return backfill_state(backfill_id) == "done" and sum(counts[s] for s in UNFINISHED) == 0


def reap(stale: timedelta = STALE) -> int:
    """The clock's reaper with a short stale threshold (production: 5 minutes, no knob)."""
    from webapp.sync.reaper import reap_stale

    return retrying_db(lambda: reap_stale(stale))


def revive_backfills(quiet: timedelta = STALE) -> None:
    """The clock's "stalled backfill" step with a short quiet period (production: 10 minutes)."""
    from jobs.queues import enqueue
    from webapp.sync.reaper import stalled_backfills

    for backfill_id in retrying_db(lambda: stalled_backfills(quiet)):
        enqueue("jobs.sync.run_backfill", backfill_id, queue_name="discovery", job_id=f"backfill-{backfill_id}")


def hurry_retries() -> None:
    """Advance time for retrying rows: due in a second instead of after `attempt^4 + 15 s`."""
    soon = utcnow() + timedelta(seconds=1)

    def run():
        db.session.execute(update(SyncJob).where(SyncJob.status == "retrying", SyncJob.next_attempt_at > soon)
                           .values(next_attempt_at=soon))
        db.session.commit()
    retrying_db(run)


def run_until_finished(clinic, backfill_id: int, fleet: Fleet, seconds: float, on_tick=None,
                       stale: timedelta = STALE) -> float:
    """Keep the reaper and the retry clock going until every row is final (bounded); returns seconds."""
    started = time.monotonic()
    deadline = started + seconds
    while time.monotonic() < deadline:
        if on_tick is not None:
            on_tick()
        reap(stale)
        revive_backfills(stale)
        hurry_retries()
        if finished(clinic.practice.id, backfill_id):
            return time.monotonic() - started
        time.sleep(0.3)
    raise AssertionError(
        f"not finished within {seconds:.0f} s: rows {dict(status_counts(clinic.practice.id))}, backfill "
        f"{backfill_state(backfill_id)}\n{describe(clinic)}\n{fleet.logs()}")


def describe(clinic, limit: int = 15) -> str:
    """The rows that are not synced: kind, number, status, attempts, reason."""
    rows = [r for r in clinic.rows() if r.status != "synced"]
    return "\n".join(f"  #{r.id} {r.kind} {r.invoice_number} {r.status} attempts={r.attempts} "
                     f"{(r.failure_reason or r.status_reason or '')[:160]}" for r in rows[:limit])


def start_backfill(clinic) -> int:
    """Start a backfill the way the UI does: the discovery job goes to RQ, the workers run it."""
    from webapp.sync import backfill as backfills

    return backfills.start(clinic.practice, SINCE, None).id


def audit(clinic) -> dict:
    """Sandbox Xero against sandbox Cliniko, after the run.

    * every row is final (synced, failed, skipped or ignored; or waiting, for the follow-up of an
      invoice, or the invoice of a contact, that is not in Xero) and each non-synced row says why;
    * every live Cliniko invoice issued since the backfill date has its invoice row;
    * Xero holds each synced invoice, contact and payment exactly once, with totals to the cent
      (tests.support.engine.audit_xero_against_cliniko), and the invoice totals equal Cliniko's;
    * Xero holds nothing that the database does not know it sent (no orphan invoice or contact),
      and no invoice carries two live payments.
    """
    counts = audit_xero_against_cliniko(clinic)
    rows = clinic.rows()
    open_rows = [(r.id, r.kind, r.status) for r in rows if r.status not in FINAL]
    assert not open_rows, f"rows not final: {open_rows[:20]}"
    # What a row waits for: its patient's contact (an invoice) or its invoice (a payment or void).
    parent_status = {("invoice", r.cliniko_id): r.status for r in rows if r.kind == "contact"}
    parent_status.update({("follow-up", r.cliniko_id): r.status for r in rows if r.kind == "invoice"})
    stuck = [(r.id, r.kind, r.invoice_number, r.status_reason) for r in rows if r.status == "waiting"
             and parent_status.get(("invoice" if r.kind == "invoice" else "follow-up", r.parent_cliniko_id))
             in ("synced", None)]
    assert not stuck, f"rows still waiting although what they wait for is in Xero: {stuck[:20]}"
    silent = [(r.id, r.kind, r.status) for r in rows if r.status != "synced"
              and not (r.failure_reason or r.status_reason)]
    assert not silent, f"non-synced rows without a reason: {silent[:20]}"

    cliniko = {str(i["id"]): i for i in clinic.cliniko_invoices()
               if not i.get("archived_at") and not i.get("deleted_at") and i["issue_date"] >= SINCE.isoformat()}
    invoice_rows = {r.cliniko_id: r for r in rows if r.kind == "invoice"}
    missing = sorted(set(cliniko) - set(invoice_rows))
    assert not missing, f"{len(missing)} Cliniko invoices have no row (never discovered): {missing[:10]}"

    org = clinic.xero_org()
    xero_invoices = {i["InvoiceNumber"]: i for i in org["invoices"] if i["Type"] == "ACCREC"}
    synced_invoices = {r.invoice_number: r for r in invoice_rows.values() if r.status == "synced"}
    orphans = sorted(set(xero_invoices) - set(synced_invoices))
    assert not orphans, f"invoices in Xero whose rows are not synced: {orphans[:10]}"
    for number, row in synced_invoices.items():
        source = cliniko.get(row.cliniko_id)
        if source is not None:
            assert money(xero_invoices[number]["Total"]) == money(Decimal(source["total_amount"])), (
                f"{number}: Xero {xero_invoices[number]['Total']} vs Cliniko {source['total_amount']}")
        live = [p for p in xero_invoices[number]["payments"] if p.get("Status") != "DELETED"]
        assert len(live) <= 1, f"{number}: {len(live)} live payments"

    xero_contacts = Counter(c["ContactID"] for c in org["contacts"] if c.get("ContactNumber"))
    synced_contacts = {r.xero_id for r in rows if r.kind == "contact" and r.status == "synced"}
    extra = set(xero_contacts) - synced_contacts
    assert not extra, f"contacts in Xero whose rows are not synced: {sorted(extra)[:10]}"
    counts["rows"] = dict(Counter(r.status for r in rows))
    counts["cliniko_invoices"] = len(cliniko)
    return counts


def truncate_all() -> None:
    """Empty every table (the conftest `app` fixture does this too; used by the throwaway-Postgres app)."""
    db.session.remove()
    tables = ", ".join(t.name for t in db.metadata.sorted_tables)
    with db.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
