"""Alerts (SPEC §9): conditions per practice, one email per episode, and the banner's data.

Conditions (kinds):
- `reconnect`: a Xero connection of the practice has status needs_reconnect;
- `daily_limit`: Xero's daily call limit is reached for an active connection (the budget is
  parked with problem "day", or today's count reached XERO_DAILY_CALLS);
- `failures`: at least `alert_failure_threshold` (practice setting, default 10) rows entered
  `failed` in the last hour: one digest per episode, not one mail per invoice;
- `sync_stopped`: sync is on but there was no successful poll for 3 × POLL_INTERVAL_SECONDS.

Episode state lives in Redis, one hash per practice (`alerts:active:<practice id>`), one field per
kind holding JSON {since, message, mailed}. The field is created with HSETNX, so when two checks
run at once only one of them mails; it is deleted when the condition ends, so the next episode
mails again. Losing Redis forgets open episodes: the next check opens them again (one more mail).
"""

from __future__ import annotations

import json
import logging
import smtplib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

import redis
from flask import current_app
from sqlalchemy import func, or_, select

from webapp.audit import record
from webapp.extensions import db
from webapp.models import AuditEntry, Practice, SyncJob, User, XeroConnection, utcnow
from webapp.redis_conn import redis_client

logger = logging.getLogger(__name__)

KINDS = ("reconnect", "daily_limit", "failures", "sync_stopped")
TITLES = {
    "reconnect": "Xero needs reconnecting",
    "daily_limit": "Xero daily limit reached",
    "failures": "Sync failures",
    "sync_stopped": "Sync stopped",
}
DEFAULT_FAILURE_THRESHOLD = 10
FAILURE_WINDOW = timedelta(hours=1)
STOPPED_INTERVALS = 3
DIGEST_ROWS = 20
KEY_PREFIX = "alerts:active:"


class MailError(Exception):
    """An email could not be sent (bad SMTP_URL, server refused or unreachable)."""


@dataclass(frozen=True)
class Alert:
    """One current condition of one practice."""

    practice_id: int
    kind: str
    message: str
    details: str = ""

    @property
    def title(self) -> str:
        return TITLES[self.kind]


# -- email -------------------------------------------------------------------------------------------
def send_mail(to: list[str], subject: str, body: str) -> None:
    """Send one plain-text message through SMTP_URL (`smtp://[user:pass@]host:port`, `smtps://…`;
    `?starttls=1` upgrades a plain connection). Raises MailError."""
    url = current_app.config.get("SMTP_URL")
    if not url:
        raise MailError("SMTP_URL is not set.")
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise MailError("SMTP_URL must look like smtp://host:port.")
    message = EmailMessage()
    message["From"] = current_app.config.get("ALERT_FROM") or "alerts@localhost"
    message["To"] = ", ".join(to)
    message["Subject"] = subject
    message.set_content(body)
    smtp_class = smtplib.SMTP_SSL if parts.scheme == "smtps" else smtplib.SMTP
    port = parts.port or (465 if parts.scheme == "smtps" else 25)
    try:
        with smtp_class(parts.hostname, port, timeout=10) as smtp:
            if parts.scheme == "smtp" and "starttls=1" in (parts.query or ""):
                smtp.starttls()
            if parts.username:
                smtp.login(unquote(parts.username), unquote(parts.password or ""))
            smtp.send_message(message, to_addrs=to)
    except (OSError, smtplib.SMTPException) as exc:
        raise MailError(f"{type(exc).__name__}: {exc}") from exc


def recipients(practice_id: int) -> list[str]:
    """Active admins of the practice: scoped to it, or to all practices."""
    return list(db.session.scalars(
        select(User.email).where(User.active.is_(True), User.role == "admin",
                                 or_(User.practice_id.is_(None), User.practice_id == practice_id))
        .order_by(User.email)
    ))


# -- conditions --------------------------------------------------------------------------------------
def failure_threshold(practice: Practice) -> int:
    """The practice's `alert_failure_threshold` setting (default 10; at least 1)."""
    try:
        return max(1, int((practice.settings or {}).get("alert_failure_threshold", DEFAULT_FAILURE_THRESHOLD)))
    except (TypeError, ValueError):
        return DEFAULT_FAILURE_THRESHOLD


def _reconnect(practice: Practice) -> Alert | None:
    rows = db.session.scalars(select(XeroConnection).where(
        XeroConnection.practice_id == practice.id, XeroConnection.status == "needs_reconnect")).all()
    if not rows:
        return None
    names = ", ".join(c.tenant_name or c.tenant_id for c in rows)
    return Alert(practice.id, "reconnect",
                 f"The Xero connection to {names} needs reconnecting; nothing is sent to Xero until an "
                 "admin reconnects it on the practice page.",
                 "\n".join(f"{c.tenant_name or c.tenant_id}: {c.last_error or 'refused by Xero'}" for c in rows))


def _daily_limit(practice: Practice) -> Alert | None:
    from webapp.practices import xero_budget

    connections = db.session.scalars(select(XeroConnection).where(
        XeroConnection.practice_id == practice.id, XeroConnection.status == "active")).all()
    if not connections:
        return None
    budget = xero_budget()
    for connection in connections:
        snap = budget.snapshot(connection.tenant_id)
        parked_for_day = bool(snap.parked_until) and snap.parked_problem == "day"
        counted_out = snap.daily_limit > 0 and snap.day_used >= snap.daily_limit
        if parked_for_day or counted_out:
            resumes = snap.parked_until if parked_for_day else snap.day_resets_at
            when = datetime.fromtimestamp(resumes, UTC).strftime("%Y-%m-%d %H:%M UTC")
            return Alert(practice.id, "daily_limit",
                         f"Xero's daily call limit is reached for {connection.tenant_name or connection.tenant_id}; "
                         f"sending resumes around {when}.",
                         f"Calls counted today: {snap.day_used} of {snap.daily_limit}.")
    return None


def _failures(practice: Practice, now: datetime) -> Alert | None:
    threshold = failure_threshold(practice)
    since = now - FAILURE_WINDOW
    where = (SyncJob.practice_id == practice.id, SyncJob.status == "failed", SyncJob.updated_at >= since)
    count = db.session.scalar(select(func.count()).select_from(SyncJob).where(*where)) or 0
    if count < threshold:
        return None
    rows = db.session.execute(
        select(SyncJob.kind, SyncJob.invoice_number, SyncJob.cliniko_id, SyncJob.failure_reason)
        .where(*where).order_by(SyncJob.updated_at.desc()).limit(DIGEST_ROWS)
    ).all()
    lines = [f"- {kind} {number or cliniko_id}: {(reason or 'no reason recorded')[:200]}"
             for kind, number, cliniko_id, reason in rows]
    if count > len(rows):
        lines.append(f"… and {count - len(rows)} more.")
    return Alert(practice.id, "failures",
                 f"{count} items failed in the last hour (alert threshold {threshold}); see the failed rows in "
                 "the job list.", "\n".join(lines))


def _sync_stopped(practice: Practice, now: datetime) -> Alert | None:
    if not practice.sync_enabled:
        return None
    interval = int(current_app.config.get("POLL_INTERVAL_SECONDS") or 60)
    allowed = timedelta(seconds=STOPPED_INTERVALS * interval)
    last = practice.last_successful_poll_at
    if last is None:
        # Never polled: count from when sync was turned on (else from when the practice was made).
        enabled_at = db.session.scalar(
            select(func.max(AuditEntry.at)).where(AuditEntry.practice_id == practice.id,
                                                  AuditEntry.action == "practice.enable"))
        start = enabled_at or practice.created_at
        if start is None or now - start <= allowed:
            return None
        return Alert(practice.id, "sync_stopped",
                     f"Sync is on but Cliniko has not been polled successfully since it was turned on "
                     f"({start:%Y-%m-%d %H:%M} UTC).", practice.last_poll_error or "")
    if now - last <= allowed:
        return None
    minutes = int((now - last).total_seconds() // 60)
    return Alert(practice.id, "sync_stopped",
                 f"No successful poll of Cliniko for {minutes} minutes (last at {last:%Y-%m-%d %H:%M} UTC).",
                 f"Last poll error: {practice.last_poll_error}" if practice.last_poll_error else "")


def evaluate(practice: Practice, now: datetime | None = None) -> dict[str, Alert]:
    """The practice's current conditions, by kind."""
    now = now or utcnow()
    found = [_reconnect(practice), _daily_limit(practice), _failures(practice, now), _sync_stopped(practice, now)]
    return {a.kind: a for a in found if a is not None}


# -- episodes ----------------------------------------------------------------------------------------
def _key(practice_id: int) -> str:
    return f"{KEY_PREFIX}{practice_id}"


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else value


def stored(practice_id: int, conn: redis.Redis | None = None) -> dict[str, dict]:
    """The open episodes of a practice: {kind: {since, message, mailed}}."""
    raw = (conn or redis_client()).hgetall(_key(practice_id))
    out = {}
    for field, value in raw.items():
        try:
            out[_text(field)] = json.loads(_text(value))
        except ValueError:
            continue
    return out


def _mail(practice: Practice, alert: Alert) -> bool:
    if not current_app.config.get("SMTP_URL"):
        return False
    to = recipients(practice.id)
    if not to:
        logger.info("alert %s of practice %s: no admin to email", alert.kind, practice.id)
        return False
    body = f"{practice.name}: {alert.message}\n"
    if alert.details:
        body += f"\n{alert.details}\n"
    body += "\nYou get one email when this starts; it clears by itself when the condition ends.\n"
    try:
        send_mail(to, f"[Cliniko → Xero] {practice.name}: {alert.title}", body)
    except MailError as exc:
        logger.warning("alert %s of practice %s not emailed: %s", alert.kind, practice.id, exc)
        return False
    return True


def check_practice(practice: Practice, now: datetime | None = None, conn: redis.Redis | None = None) -> dict:
    """Open, keep or clear the practice's episodes; mail once per new episode. Returns what changed."""
    conn = conn or redis_client()
    now = now or utcnow()
    key = _key(practice.id)
    current = evaluate(practice, now)
    open_ = stored(practice.id, conn)
    changes = {"raised": [], "cleared": [], "mailed": []}
    for kind, alert in current.items():
        state = {"since": now.isoformat(), "message": alert.message, "mailed": False}
        if kind not in open_:
            if not conn.hsetnx(key, kind, json.dumps(state)):
                continue  # another check opened this episode a moment ago
            changes["raised"].append(kind)
            record("alert.raised", object_type="practice", object_id=practice.id, practice_id=practice.id,
                   details={"kind": kind, "message": alert.message})
        else:
            state = dict(open_[kind], message=alert.message)
        if not state.get("mailed") and current_app.config.get("SMTP_URL") and _mail(practice, alert):
            state["mailed"] = True
            changes["mailed"].append(kind)
        conn.hset(key, kind, json.dumps(state))
    for kind in open_:
        if kind not in current and conn.hdel(key, kind):
            changes["cleared"].append(kind)
            record("alert.cleared", object_type="practice", object_id=practice.id, practice_id=practice.id,
                   details={"kind": kind, "since": open_[kind].get("since")})
    db.session.commit()
    return changes


def check_all(now: datetime | None = None) -> dict[int, dict]:
    """Check every practice; drop the state of practices that no longer exist."""
    conn = redis_client()
    results = {}
    practices = db.session.scalars(select(Practice).order_by(Practice.id)).all()
    for practice in practices:
        try:
            results[practice.id] = check_practice(practice, now, conn)
        except Exception:
            db.session.rollback()
            logger.exception("alert check of practice %s failed", practice.id)
    known = {p.id for p in practices}
    for key in conn.scan_iter(match=f"{KEY_PREFIX}*", count=500):
        suffix = _text(key)[len(KEY_PREFIX):]
        if suffix.isdigit() and int(suffix) not in known:
            conn.delete(key)
    return results


# -- banner ------------------------------------------------------------------------------------------
def active_for_user(user) -> list[dict]:
    """Open alerts of the practices in the user's scope, for the banner ([] when Redis is down)."""
    if not getattr(user, "is_authenticated", False):
        return []
    query = select(Practice.id, Practice.name).order_by(Practice.name)
    if user.practice_id is not None:
        query = query.where(Practice.id == user.practice_id)
    practices = db.session.execute(query).all()
    if not practices:
        return []
    try:
        pipe = redis_client().pipeline(transaction=False)
        for practice_id, _ in practices:
            pipe.hgetall(_key(practice_id))
        raw = pipe.execute()
    except redis.RedisError as exc:
        logger.warning("alerts banner: Redis unavailable: %s", exc)
        return []
    out = []
    for (practice_id, name), fields in zip(practices, raw, strict=True):
        for field, value in sorted(fields.items()):
            kind = _text(field)
            if kind not in TITLES:
                continue
            try:
                state = json.loads(_text(value))
            except ValueError:
                continue
            out.append({"practice_id": practice_id, "practice": name, "kind": kind, "title": TITLES[kind],
                        "message": state.get("message", ""), "since": state.get("since")})
    return out


def init_app(app) -> None:
    """Make `active_alerts()` available to templates (evaluated only where the banner renders)."""

    @app.context_processor
    def _alerts():
        from flask_login import current_user

        return {"active_alerts": lambda: active_for_user(current_user)}
