"""The dashboard (SPEC §8 screen 1): per practice in scope, connection state, sync on/off, last poll,
counts by state (each linking to the job list), backlog with an ETA from the rate budget, today's Xero
calls against the daily budget, and synced/failed charts per hour (48 h) and per day (30 days).

Queries are a fixed number whatever the number of practices or rows (no N+1): one for the practices,
one bounded count per practice and state in a single UNION (index `ix_sync_jobs_due`), one for the Xero
connections, ONE for both charts of every practice (the roll-up `sync_activity`), and one Redis pipeline
per Xero tenant for the budget.

The charts read the activity roll-up (`webapp.models.activity`: synced rows and failed attempts per
practice per 15-minute UTC slot, kept by triggers of migration 0005_activity_rollup in the same
transaction as every change) instead of grouping `sync_jobs` and `sync_attempts` (~130,000 rows for
30 days at a million rows). Each bar is the range [bucket start, next bucket start) of slots, the bounds
computed here with zoneinfo, summed in SQL by one primary-key range scan per bar (78 per practice).

Meaning, unchanged: "synced" = rows now in state `synced` whose `synced_at` falls in the bar (a re-synced
row counts once, at its latest sync; a synced row that is re-queued leaves the chart), "failed" = attempts
with outcome `error` or `ambiguous` started in the bar (attempts without a practice are not counted).
Differences: (1) at daylight-saving changes within the 48 hours, the repeated local hour's bar now shows
both occurrences (the old fold dropped the second) and the skipped hour's bar is empty instead of
repeating the next hour's counts; (2) rows written with triggers disabled (`session_replication_role =
replica`, a data-only restore with `--disable-triggers`) are not counted until the roll-up is rebuilt
(the migration's BACKFILL statement, after emptying `sync_activity`).
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
from webapp.models import JOB_STATUSES, Practice, SyncJob, XeroConnection, utcnow

BACKLOG_STATES = ("pending", "retrying", "waiting")
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


def _ranges(buckets: list[datetime], end: datetime) -> list[tuple[datetime, datetime]]:
    """[(start, end)] of consecutive buckets, the last one ending at `end`."""
    return list(zip(buckets, [*buckets[1:], end], strict=True))


# Each chart bar is a range of 15-minute UTC slots of the roll-up: every time zone's offset is a multiple of
# 15 minutes, so a local hour or day is exactly a whole number of slots. The bucket bounds are computed
# here (zoneinfo); SQL only sums the slots inside each range, one primary-key range scan per bucket (LATERAL:
# a join would hash on practice_id and compare every slot with every bucket).
BUCKET_SUMS = text("""
    SELECT b.practice_id, b.chart, b.i, s.synced, s.failed
    FROM unnest(CAST(:practice_ids AS integer[]), CAST(:charts AS text[]), CAST(:indexes AS integer[]),
                CAST(:starts AS timestamptz[]), CAST(:ends AS timestamptz[])) AS b(practice_id, chart, i, lo, hi)
    CROSS JOIN LATERAL (
        SELECT coalesce(sum(a.synced), 0)::int AS synced, coalesce(sum(a.failed), 0)::int AS failed
        FROM sync_activity a WHERE a.practice_id = b.practice_id AND a.slot >= b.lo AND a.slot < b.hi
    ) s
""")


def _grouped(ranges: dict[tuple[int, str], list[tuple[datetime, datetime]]]) -> dict[tuple[int, str, int], tuple]:
    """{(practice_id, chart, bucket index): (synced, failed)} for every bucket range, in one query on the
    roll-up `sync_activity` (primary key (practice_id, slot))."""
    flat = [(pid, chart, i, lo, hi) for (pid, chart), spans in ranges.items() for i, (lo, hi) in enumerate(spans)]
    if not flat:
        return {}
    practice_ids, charts, indexes, starts, ends = (list(column) for column in zip(*flat, strict=True))
    rows = db.session.execute(BUCKET_SUMS, {"practice_ids": practice_ids, "charts": charts, "indexes": indexes,
                                            "starts": starts, "ends": ends})
    return {(pid, chart, i): (synced, failed) for pid, chart, i, synced, failed in rows}


def chart_series(practices: list[Practice], now: datetime | None = None) -> dict[int, dict[str, list[Point]]]:
    """{practice_id: {"hours": [Point×48], "days": [Point×30]}} from one query on the roll-up."""
    now = now or utcnow()
    out: dict[int, dict[str, list[Point]]] = {}
    if not practices:
        return out
    buckets: dict[tuple[int, str], list[datetime]] = {}
    ranges: dict[tuple[int, str], list[tuple[datetime, datetime]]] = {}
    for p in practices:
        tz = _zone(p)
        hours, days = hour_buckets(tz, now), day_buckets(tz, now)
        tomorrow = datetime.combine(now.astimezone(tz).date() + timedelta(days=1), time(), tz).astimezone(UTC)
        buckets[(p.id, "hours")], buckets[(p.id, "days")] = hours, days
        ranges[(p.id, "hours")] = _ranges(hours, hours[-1] + timedelta(hours=1))
        ranges[(p.id, "days")] = _ranges(days, tomorrow)
    counts = _grouped(ranges)
    for p in practices:
        tz = _zone(p)
        hours = [Point(b.astimezone(tz).strftime("%H"), b.astimezone(tz).strftime("%a %d %b %H:00"),
                       *counts.get((p.id, "hours", i), (0, 0)))
                 for i, b in enumerate(buckets[(p.id, "hours")])]
        days = [Point(b.astimezone(tz).strftime("%d"), b.astimezone(tz).strftime("%a %d %b %Y"),
                      *counts.get((p.id, "days", i), (0, 0)))
                for i, b in enumerate(buckets[(p.id, "days")])]
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
