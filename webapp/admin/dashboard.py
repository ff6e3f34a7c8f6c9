"""The dashboard (SPEC §8 screen 1): per practice in scope, connection state, sync on/off, last poll,
counts by state (each linking to the job list), backlog with an ETA from the rate budget, today's Xero
calls against the daily budget, and synced/failed charts per hour (48 h) and per day (30 days).

Queries are a fixed number whatever the number of practices or rows (no N+1): one for the practices,
one bounded count per practice and state in a single UNION (index `ix_sync_jobs_due`), one for the Xero
connections, two for "synced" buckets (rows now `synced`, filtered on `updated_at` so that
`ix_sync_jobs_practice_list` bounds the scan: `synced_at <= updated_at` always holds), two for "failed"
buckets (`sync_attempts` by `started_at`, index `ix_sync_attempts_started_at`, joined to the job by
its primary key), and one Redis pipeline per Xero tenant for the budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from flask_admin import AdminIndexView, expose
from flask_login import current_user
from sqlalchemy import func, literal, select, text, union_all

from webapp.admin.access import SecuredView
from webapp.admin.charts import Point, bar_chart
from webapp.extensions import db
from webapp.models import JOB_STATUSES, Practice, SyncAttempt, SyncJob, XeroConnection, utcnow

BACKLOG_STATES = ("pending", "retrying", "waiting")
FAILED_OUTCOMES = ("error", "ambiguous")
HOURS, DAYS = 48, 30


def practices_in_scope():
    """The practices the current user may see."""
    query = select(Practice).order_by(Practice.name)
    if current_user.practice_id is not None:
        query = query.where(Practice.id == current_user.practice_id)
    return db.session.scalars(query).all()


COUNT_CAP = 10_000


def counts_by_state(practice_ids: list[int]) -> dict[int, dict[str, int]]:
    """{practice_id: {status: count}}, each count capped at COUNT_CAP + 1 (shown as "10,000+"), in one
    query: every (practice, state) is a bounded index-only count on `ix_sync_jobs_due`."""
    counts: dict[int, dict[str, int]] = {pid: dict.fromkeys(JOB_STATUSES, 0) for pid in practice_ids}
    if not practice_ids:
        return counts
    parts = []
    for pid in practice_ids:
        for status in JOB_STATUSES:
            bounded = (select(SyncJob.id).where(SyncJob.practice_id == pid, SyncJob.status == status)
                       .limit(COUNT_CAP + 1).subquery())
            parts.append(select(literal(pid), literal(status), select(func.count()).select_from(bounded)
                                .scalar_subquery()))
    for practice_id, status, count in db.session.execute(union_all(*parts)):
        counts[practice_id][status] = count
    return counts


def connections_by_practice(practice_ids: list[int]) -> dict[int, list[XeroConnection]]:
    """Each practice's Xero connections that are not disconnected, in one query."""
    out: dict[int, list[XeroConnection]] = {pid: [] for pid in practice_ids}
    if practice_ids:
        for c in db.session.scalars(select(XeroConnection).where(
                XeroConnection.practice_id.in_(practice_ids), XeroConnection.status != "revoked")
                .order_by(XeroConnection.id)):
            out[c.practice_id].append(c)
    return out


# -- buckets ----------------------------------------------------------------------------------------
def _zone(practice: Practice) -> ZoneInfo:
    try:
        return ZoneInfo(practice.time_zone or "UTC")
    except (ValueError, KeyError):
        return ZoneInfo("UTC")


def hour_buckets(tz: ZoneInfo, now: datetime, hours: int = HOURS) -> list[datetime]:
    """Starts of the last `hours` hours in the practice's zone (oldest first), as aware datetimes."""
    current = now.astimezone(tz).replace(minute=0, second=0, microsecond=0)
    return [(current - timedelta(hours=i)).astimezone(UTC) for i in range(hours - 1, -1, -1)]


def day_buckets(tz: ZoneInfo, now: datetime, days: int = DAYS) -> list[datetime]:
    """Local midnights of the last `days` days in the practice's zone (oldest first)."""
    today: date = now.astimezone(tz).date()
    return [datetime.combine(today - timedelta(days=i), time(), tz).astimezone(UTC)
            for i in range(days - 1, -1, -1)]


SLOT = timedelta(minutes=15)  # every time zone's offset is a multiple of 15 minutes


def _grouped(unit: str, since: datetime, practice_ids: list[int], zones: dict[int, ZoneInfo]) -> tuple[dict, dict]:
    """({(practice_id, bucket): synced}, {(practice_id, bucket): failed attempts}).

    Synced rows are counted in 15-minute UTC slots (index `ix_sync_jobs_synced`, no time-zone work in
    SQL) and the slots folded into each practice's local hours or days here, which is exact."""
    slot = func.date_bin(text("interval '15 minutes'"), SyncJob.synced_at, text("timestamptz '2000-01-01 00:00+00'"))
    synced_slots = db.session.execute(
        select(SyncJob.practice_id, slot, func.count())
        .where(SyncJob.practice_id.in_(practice_ids), SyncJob.status == "synced", SyncJob.synced_at >= since)
        .group_by(SyncJob.practice_id, slot)
    )
    synced: dict = {}
    for pid, start, n in synced_slots:
        bucket = _local_bucket(start, zones[pid], unit)
        synced[(pid, bucket)] = synced.get((pid, bucket), 0) + n
    failed_slot = func.date_bin(text("interval '15 minutes'"), SyncAttempt.started_at,
                                text("timestamptz '2000-01-01 00:00+00'"))
    failed_slots = db.session.execute(
        select(SyncAttempt.practice_id, failed_slot, func.count())
        .where(SyncAttempt.practice_id.in_(practice_ids), SyncAttempt.started_at >= since,
               SyncAttempt.outcome.in_(FAILED_OUTCOMES))
        .group_by(SyncAttempt.practice_id, failed_slot)
    )
    failed: dict = {}
    for pid, start, n in failed_slots:
        bucket = _local_bucket(start, zones[pid], unit)
        failed[(pid, bucket)] = failed.get((pid, bucket), 0) + n
    return synced, failed


def _local_bucket(moment: datetime, zone: ZoneInfo, unit: str) -> datetime:
    """The start (as UTC) of the local hour or day that contains `moment`."""
    local = moment.astimezone(zone)
    start = local.replace(minute=0, second=0, microsecond=0)
    if unit == "day":
        start = datetime.combine(local.date(), time(), zone)
    return start.astimezone(UTC)


def chart_series(practices: list[Practice], now: datetime | None = None) -> dict[int, dict[str, list[Point]]]:
    """{practice_id: {"hours": [Point×48], "days": [Point×30]}} in four grouped queries."""
    now = now or utcnow()
    out: dict[int, dict[str, list[Point]]] = {}
    if not practices:
        return out
    ids = [p.id for p in practices]
    # A day and a half of slack covers any zone's "start of the oldest bucket".
    zones = {p.id: _zone(p) for p in practices}
    hourly = _grouped("hour", now - timedelta(hours=HOURS + 1), ids, zones)
    daily = _grouped("day", now - timedelta(days=DAYS, hours=14), ids, zones)
    for p in practices:
        tz = _zone(p)
        hours = [Point(label=b.astimezone(tz).strftime("%H"), title=b.astimezone(tz).strftime("%a %d %b %H:00"),
                       synced=hourly[0].get((p.id, b), 0), failed=hourly[1].get((p.id, b), 0))
                 for b in hour_buckets(tz, now)]
        days = [Point(label=b.astimezone(tz).strftime("%d"), title=b.astimezone(tz).strftime("%a %d %b %Y"),
                      synced=daily[0].get((p.id, b), 0), failed=daily[1].get((p.id, b), 0))
                for b in day_buckets(tz, now)]
        out[p.id] = {"hours": hours, "days": days}
    return out


# -- budget and ETA ---------------------------------------------------------------------------------
@dataclass
class Budget:
    """Today's Xero calls for one tenant and how long the backlog should take."""

    day_used: int = 0
    daily_limit: int = 0
    window_used: int = 0
    window_limit: int = 0
    parked_until: datetime | None = None
    parked_problem: str | None = None
    available: bool = True
    notes: list[str] = field(default_factory=list)

    @property
    def day_percent(self) -> int:
        return min(100, round(100 * self.day_used / self.daily_limit)) if self.daily_limit else 0


def budget_for(tenant_id: str | None) -> tuple[Budget, object | None]:
    """The tenant's budget snapshot (Redis); an unavailable one when Redis does not answer."""
    from webapp.practices import xero_budget

    if not tenant_id:
        return Budget(available=False), None
    try:
        snap = xero_budget().snapshot(tenant_id)
    except Exception:  # the dashboard must render without Redis
        current_app.logger.warning("rate budget snapshot failed for the dashboard", exc_info=True)
        return Budget(available=False), None
    parked = datetime.fromtimestamp(snap.parked_until, UTC) if snap.parked_until else None
    return Budget(day_used=snap.day_used, daily_limit=snap.daily_limit, window_used=snap.window_used,
                  window_limit=snap.window_limit, parked_until=parked, parked_problem=snap.parked_problem), snap


def backlog_eta(backlog: int, snap=None, now: float | None = None) -> float:
    """Seconds to send `backlog` rows: full batches, the window budget, the day's remaining calls, a park."""
    if backlog <= 0:
        return 0.0
    config = current_app.config
    batch = max(int(config["XERO_BATCH_SIZE"]), 1)
    per_window = max(int(config["XERO_CALLS_PER_WINDOW"]), 1)
    window = float(config["XERO_RATE_WINDOW_SECONDS"])
    calls = math.ceil(backlog / batch)
    eta = calls / per_window * window
    if snap is not None:
        now = now if now is not None else snap.at
        if snap.parked_until:
            eta += max(snap.parked_until - now, 0.0)
        if snap.daily_limit:
            left_today = max(snap.daily_limit - snap.day_used, 0)
            if calls > left_today:
                eta = max(eta, snap.day_resets_at - now) + (calls - left_today) / per_window * window
    return eta


def human_duration(seconds: float | None) -> str:
    """'45 s', '12 min', '3 h 20 min', '2 d 4 h'."""
    if seconds is None:
        return "unknown"
    seconds = max(int(round(seconds)), 0)
    if seconds < 60:
        return f"{seconds} s"
    minutes = math.ceil(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def job_list_url(practice_id: int, state: str | None = None) -> str:
    """The job list filtered to one practice (and state); built by the job-list screen at /jobs/."""
    return f"/jobs/?practice={practice_id}" + (f"&state={state}" if state else "")


@dataclass
class PracticeCard:
    """Everything one practice's card shows."""

    practice: Practice
    counts: dict[str, int]
    connections: list[XeroConnection]
    budget: Budget
    backlog: int
    eta_seconds: float
    hours_chart: object
    days_chart: object

    @property
    def eta(self) -> str:
        return human_duration(self.eta_seconds)


def cards(practices: list[Practice]) -> list[PracticeCard]:
    ids = [p.id for p in practices]
    counts = counts_by_state(ids)
    connections = connections_by_practice(ids)
    series = chart_series(practices)
    out = []
    for p in practices:
        active = next((c for c in connections[p.id] if c.status == "active"), None)
        budget, snap = budget_for(active.tenant_id if active else None)
        backlog = sum(counts[p.id][s] for s in BACKLOG_STATES)
        out.append(PracticeCard(
            practice=p, counts=counts[p.id], connections=connections[p.id], budget=budget, backlog=backlog,
            eta_seconds=backlog_eta(backlog, snap),
            hours_chart=bar_chart(series[p.id]["hours"], title=f"Last {HOURS} hours ({p.time_zone})",
                                  label_every=6, test_id=f"chart-hours-{p.id}"),
            days_chart=bar_chart(series[p.id]["days"], title=f"Last {DAYS} days", label_every=3,
                                 test_id=f"chart-days-{p.id}"),
        ))
    return out


class DashboardView(SecuredView, AdminIndexView):
    """Home page after login."""

    @expose("/")
    def index(self):
        practices = practices_in_scope()
        return self.render("admin/dashboard.html", practices=practices, cards=cards(practices),
                           statuses=JOB_STATUSES, backlog_states=BACKLOG_STATES, job_list_url=job_list_url)
