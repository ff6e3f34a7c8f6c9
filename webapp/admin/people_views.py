"""Users (admins), Activity (the audit log) and System (operators) screens (SPEC §8, screens 8 and 9)."""

from __future__ import annotations

import functools
import logging
import os
import subprocess
import time
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis
from flask import abort, current_app, flash, redirect, request, session, url_for
from flask_admin import BaseView, expose
from flask_login import current_user
from sqlalchemy import func, select, tuple_

from webapp.admin.access import SecuredView
from webapp.admin.user_forms import ActivityFilterForm, EditUserForm, InviteForm
from webapp.audit import record
from webapp.auth.invites import create_invited_user, invite_url, issue_invite, send_invite_email
from webapp.auth.users import UserError
from webapp.extensions import db
from webapp.models import AuditEntry, Practice, User, XeroConnection, utcnow

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent.parent
ACTIVITY_PAGE = 50


# -- Users -------------------------------------------------------------------------------------------
def _practices_for_admin():
    query = select(Practice).order_by(Practice.name)
    if current_user.practice_id is not None:
        query = query.where(Practice.id == current_user.practice_id)
    return db.session.scalars(query).all()


def _user_in_scope(user_id: int) -> User:
    """A user the current admin may manage (404 otherwise: scoped admins manage their practice's users)."""
    user = db.session.get(User, user_id)
    if user is None:
        abort(404)
    if current_user.practice_id is not None and user.practice_id != current_user.practice_id:
        abort(404)
    return user


def _is_unscoped_admin(role: str, practice_id: int | None, active: bool) -> bool:
    return role == "admin" and practice_id is None and active


def _keeps_an_unscoped_admin(user: User, role: str, practice_id: int | None, active: bool) -> bool:
    """False when this change would leave no active admin of all practices."""
    if not _is_unscoped_admin(user.role, user.practice_id, user.active):
        return True
    if _is_unscoped_admin(role, practice_id, active):
        return True
    # Lock the other unscoped admins' rows so two such changes at once cannot both pass.
    others = db.session.scalars(
        select(User.id).where(User.role == "admin", User.practice_id.is_(None), User.active.is_(True),
                              User.id != user.id).with_for_update()
    ).all()
    return bool(others)


def _scope_name(practice_id: int | None) -> str | None:
    if practice_id is None:
        return None
    practice = db.session.get(Practice, practice_id)
    return practice.slug if practice else str(practice_id)


class UsersView(SecuredView, BaseView):
    """List, invite, change role/scope, disable/enable, new link. Admins only; scoped admins see their practice."""

    admin_only = True

    @expose("/")
    def index(self):
        query = select(User).order_by(func.lower(User.email))
        if current_user.practice_id is not None:
            query = query.where(User.practice_id == current_user.practice_id)
        users = db.session.scalars(query).unique().all()
        return self.render("admin/people/users.html", users=users, now=utcnow())

    @expose("/new", methods=["GET", "POST"])
    def create(self):
        form = InviteForm()
        form.fill_scopes(_practices_for_admin(), current_user.practice_id)
        if current_user.practice_id is not None and request.method == "GET":
            form.practice.data = str(current_user.practice_id)
        if form.validate_on_submit():
            practice_id = form.practice_id()
            if current_user.practice_id is not None and practice_id != current_user.practice_id:
                abort(403)
            try:
                user, token = create_invited_user(form.email.data, form.role.data, practice_id)
            except UserError as exc:
                db.session.rollback()
                form.email.errors.append(str(exc))
                return self.render("admin/people/user_new.html", form=form), 400
            record("user.invite", user=current_user, object_type="user", object_id=user.id,
                   practice_id=practice_id,
                   details={"email": user.email, "role": user.role, "scope": _scope_name(practice_id)})
            db.session.commit()
            return self._show_link(user, token)
        status = 400 if request.method == "POST" else 200
        return self.render("admin/people/user_new.html", form=form), status

    def _show_link(self, user: User, token: str):
        link = invite_url(token)
        emailed = send_invite_email(user, link, current_user)
        response = self.render("admin/people/invite_link.html", user=user, link=link, emailed=emailed,
                               expires_at=user.invite_expires_at)
        return response, 200, {"Cache-Control": "no-store"}

    @expose("/<int:user_id>/edit", methods=["GET", "POST"])
    def edit(self, user_id: int):
        user = _user_in_scope(user_id)
        form = EditUserForm(data={"role": user.role, "practice": str(user.practice_id or "")})
        form.fill_scopes(_practices_for_admin(), current_user.practice_id)
        if form.validate_on_submit():
            role, practice_id = form.role.data, form.practice_id()
            if current_user.practice_id is not None and practice_id != current_user.practice_id:
                abort(403)
            if not _keeps_an_unscoped_admin(user, role, practice_id, user.active):
                db.session.rollback()
                flash("This is the last admin of all practices; make another one first.", "error")
                return self.render("admin/people/user_edit.html", form=form, user=user), 400
            before = {"role": user.role, "scope": _scope_name(user.practice_id)}
            after = {"role": role, "scope": _scope_name(practice_id)}
            if before != after:
                old_practice_id = user.practice_id
                user.role, user.practice_id = role, practice_id
                record("user.update", user=current_user, object_type="user", object_id=user.id,
                       practice_id=practice_id if practice_id is not None else old_practice_id,
                       details={"email": user.email, "before": before, "after": after})
                db.session.commit()
                flash(f"Saved {user.email}: {role}, {after['scope'] or 'all practices'}.", "info")
            return redirect(url_for(".index"))
        status = 400 if request.method == "POST" else 200
        return self.render("admin/people/user_edit.html", form=form, user=user), status

    @expose("/<int:user_id>/disable", methods=["POST"])
    def disable(self, user_id: int):
        user = _user_in_scope(user_id)
        if user.id == current_user.id:
            flash("You cannot disable yourself.", "error")
            return redirect(url_for(".index")), 303
        if not _keeps_an_unscoped_admin(user, user.role, user.practice_id, False):
            db.session.rollback()
            flash("This is the last admin of all practices; make another one first.", "error")
            return redirect(url_for(".index")), 303
        if user.active:
            user.active = False
            user.invite_token_hash = None  # an outstanding link stops working too
            user.invite_expires_at = None
            record("user.disable", user=current_user, object_type="user", object_id=user.id,
                   practice_id=user.practice_id, details={"email": user.email})
            db.session.commit()
            flash(f"Disabled {user.email}; they are signed out on their next request.", "info")
        return redirect(url_for(".index")), 303

    @expose("/<int:user_id>/enable", methods=["POST"])
    def enable(self, user_id: int):
        user = _user_in_scope(user_id)
        if not user.active:
            user.active = True
            user.failed_login_count = 0
            record("user.enable", user=current_user, object_type="user", object_id=user.id,
                   practice_id=user.practice_id, details={"email": user.email})
            db.session.commit()
            flash(f"Enabled {user.email}.", "info")
        return redirect(url_for(".index")), 303

    @expose("/<int:user_id>/invite", methods=["POST"])
    def reinvite(self, user_id: int):
        """A new one-time link (for a lost invitation or a forgotten password); the old link stops working."""
        user = _user_in_scope(user_id)
        if not user.active:
            flash("Enable the user first.", "error")
            return redirect(url_for(".index")), 303
        token = issue_invite(user)
        record("user.invite_link", user=current_user, object_type="user", object_id=user.id,
               practice_id=user.practice_id, details={"email": user.email})
        db.session.commit()
        return self._show_link(user, token)


# -- Activity ----------------------------------------------------------------------------------------
def _parse_cursor(value: str | None) -> tuple[datetime, int] | None:
    if not value or "_" not in value:
        return None
    at, _, ident = value.rpartition("_")
    try:
        return datetime.fromisoformat(at), int(ident)
    except ValueError:
        return None


class ActivityView(SecuredView, BaseView):
    """The audit log, newest first, filtered; keyset pages; scoped users see their practice's entries only."""

    @expose("/")
    def index(self):
        form = ActivityFilterForm(request.args)
        scoped = current_user.practice_id
        practices = db.session.scalars(
            select(Practice).order_by(Practice.name).where(Practice.id == scoped) if scoped is not None
            else select(Practice).order_by(Practice.name)
        ).all()
        form.practice.choices = [("", "All in scope")] + [(str(p.id), p.name) for p in practices]
        query = select(AuditEntry)
        if scoped is not None:
            query = query.where(AuditEntry.practice_id == scoped)
        actions_query = select(AuditEntry.action).distinct().order_by(AuditEntry.action).limit(300)
        if scoped is not None:
            actions_query = actions_query.where(AuditEntry.practice_id == scoped)
        form.action.choices = [("", "Any")] + [(a, a) for a in db.session.scalars(actions_query)]
        form.validate()
        filters = {}
        practice_arg = request.args.get("practice", "")
        if practice_arg:
            if not practice_arg.isdigit():
                abort(400)
            practice_id = int(practice_arg)
            if scoped is not None and practice_id != scoped:
                abort(404)
            query = query.where(AuditEntry.practice_id == practice_id)
            filters["practice"] = practice_arg
        user_arg = (request.args.get("user") or "").strip()
        if user_arg:
            query = query.where(func.lower(AuditEntry.actor) == user_arg.lower())
            filters["user"] = user_arg
        action_arg = (request.args.get("action") or "").strip()
        if action_arg:
            query = query.where(AuditEntry.action == action_arg)
            filters["action"] = action_arg
        if form.date_from.data and not form.date_from.errors:
            start = datetime.combine(form.date_from.data, datetime.min.time(), UTC)
            query = query.where(AuditEntry.at >= start)
            filters["date_from"] = form.date_from.data.isoformat()
        if form.date_to.data and not form.date_to.errors:
            end = datetime.combine(form.date_to.data, datetime.min.time(), UTC) + timedelta(days=1)
            query = query.where(AuditEntry.at < end)
            filters["date_to"] = form.date_to.data.isoformat()
        cursor = _parse_cursor(request.args.get("before"))
        if cursor:
            query = query.where(tuple_(AuditEntry.at, AuditEntry.id) < tuple_(*cursor))
        rows = db.session.scalars(
            query.order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(ACTIVITY_PAGE + 1)
        ).all()
        more = len(rows) > ACTIVITY_PAGE
        rows = rows[:ACTIVITY_PAGE]
        next_url = None
        if more:
            last = rows[-1]
            next_url = url_for(".index", **filters, before=f"{last.at.isoformat()}_{last.id}")
        names = {p.id: p.name for p in practices}
        missing = {r.practice_id for r in rows if r.practice_id and r.practice_id not in names}
        if missing:
            names.update(dict(db.session.execute(select(Practice.id, Practice.name).where(Practice.id.in_(missing)))))
        return self.render("admin/people/activity.html", form=form, entries=rows, practice_names=names,
                           next_url=next_url, first_url=url_for(".index", **filters) if cursor else None)


# -- System ------------------------------------------------------------------------------------------
@functools.cache
def app_version() -> str:
    """The pyproject version, plus the git commit when known (env SOURCE_VERSION/GIT_SHA or `git`)."""
    try:
        with open(ROOT / "pyproject.toml", "rb") as fh:
            version = tomllib.load(fh)["project"]["version"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        version = "unknown"
    sha = os.environ.get("SOURCE_VERSION") or os.environ.get("GIT_SHA") or os.environ.get("HEROKU_SLUG_COMMIT")
    if not sha:
        try:
            result = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True,
                                    text=True, timeout=5)
            sha = result.stdout.strip() if result.returncode == 0 else None
        except (OSError, subprocess.SubprocessError):
            sha = None
    return f"{version} ({sha[:12]})" if sha else version


def _ts(value) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromtimestamp(float(value), UTC)


def queue_info(conn) -> list[dict]:
    from jobs.queues import QUEUE_NAMES, queue

    out = []
    for name in QUEUE_NAMES:
        q = queue(name, conn)
        out.append({
            "name": name, "queued": q.count, "started": q.started_job_registry.count,
            "scheduled": q.scheduled_job_registry.count, "deferred": q.deferred_job_registry.count,
            "failed": q.failed_job_registry.count,
        })
    return out


def worker_info(conn) -> list[dict]:
    from rq import Worker

    out = []
    for worker in sorted(Worker.all(connection=conn), key=lambda w: w.name):
        job_id = worker.get_current_job_id()
        out.append({
            "name": worker.name, "state": worker.get_state(), "queues": ", ".join(worker.queue_names()),
            "hostname": worker.hostname, "pid": worker.pid, "current_job": job_id,
            "last_heartbeat": _ts(worker.last_heartbeat), "birth": _ts(worker.birth_date),
            "successful": worker.successful_job_count, "failed": worker.failed_job_count,
        })
    return out


def scheduled_info(conn, limit: int = 50) -> list[dict]:
    from rq.job import Job

    from jobs.queues import QUEUE_NAMES, queue

    items = []
    for name in QUEUE_NAMES:
        registry = queue(name, conn).scheduled_job_registry
        ids = registry.get_job_ids(0, limit - 1)
        jobs = Job.fetch_many(ids, connection=conn) if ids else []
        for job_id, job in zip(ids, jobs, strict=True):
            try:
                at = registry.get_scheduled_time(job_id)
            except Exception:  # the job left the registry between the two reads
                at = None
            items.append({"queue": name, "id": job_id, "func": job.func_name if job else "(gone)",
                          "args": ", ".join(map(str, job.args)) if job else "", "at": _ts(at)})
    items.sort(key=lambda i: i["at"] or datetime.max.replace(tzinfo=UTC))
    return items[:limit]


def budget_info() -> list[dict]:
    from webapp.practices import xero_budget

    rows = db.session.execute(
        select(XeroConnection, Practice.name).join(Practice, Practice.id == XeroConnection.practice_id)
        .where(XeroConnection.status == "active").order_by(Practice.name, XeroConnection.id)
    ).all()
    budget = xero_budget()
    out = []
    for connection, practice_name in rows:
        snap = budget.snapshot(connection.tenant_id)
        out.append({"practice": practice_name, "tenant": connection.tenant_name or connection.tenant_id,
                    "tenant_id": connection.tenant_id, "snap": snap,
                    "parked_until": _ts(snap.parked_until), "day_resets_at": _ts(snap.day_resets_at)})
    return out


def clock_info(conn) -> dict:
    from jobs.maintenance import HEARTBEAT_KEY

    raw = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
           for k, v in conn.hgetall(HEARTBEAT_KEY).items()}
    last = float(raw["last"]) if raw.get("last") else None
    age = time.time() - last if last else None
    poll = int(current_app.config.get("POLL_INTERVAL_SECONDS") or 60)
    heartbeat_every = float(os.environ.get("HEARTBEAT_SECONDS", "60"))
    return {"last": _ts(last), "age": age, "runs": raw.get("runs"),
            "stale": age is None or age > 3 * max(heartbeat_every, 1), "poll_interval": poll}


class SystemView(SecuredView, BaseView):
    """Operators' view of queues, workers, schedules, rate budgets, the clock and the version."""

    admin_only = True

    def is_accessible(self) -> bool:
        return super().is_accessible() and current_user.practice_id is None

    def inaccessible_callback(self, name, **kwargs):
        if current_user.is_authenticated:
            abort(403)
        return super().inaccessible_callback(name, **kwargs)

    @expose("/")
    def index(self):
        from jobs.queues import connection

        conn = connection(current_app.config["REDIS_URL"])
        context = {"version": app_version(), "error": None, "queues": [], "workers": [], "scheduled": [],
                   "budgets": [], "clock": None, "app_budget": None}
        try:
            context.update(queues=queue_info(conn), workers=worker_info(conn), scheduled=scheduled_info(conn),
                           clock=clock_info(conn), budgets=budget_info())
        except redis.RedisError as exc:
            logger.warning("system screen: Redis unavailable: %s", exc)
            context["error"] = "Redis does not answer; queue, worker and budget figures are unavailable."
        context["now"] = datetime.now(UTC)
        return self.render("admin/people/system.html", **context)


# -- registration ------------------------------------------------------------------------------------
def register(admin) -> None:
    """Add Users, Activity and System to the admin; mount /invite/<token> and the alerts banner."""
    from webapp import alerts
    from webapp.auth import invites

    admin.add_view(UsersView(name="Users", endpoint="users", url="/users"))
    admin.add_view(ActivityView(name="Activity", endpoint="activity", url="/activity"))
    admin.add_view(SystemView(name="System", endpoint="system", url="/system"))
    app = admin.app
    if app is not None:
        if "invites" not in app.blueprints:
            app.register_blueprint(invites.bp)
        if not app.extensions.get("alerts_banner"):
            alerts.init_app(app)
            app.before_request(end_refused_sessions)
            app.extensions["alerts_banner"] = True


def end_refused_sessions() -> None:
    """A session whose user the loader refused (disabled or deleted) is ended for good, so enabling the
    user again later does not bring the old session back."""
    if "_user_id" in session and not current_user.is_authenticated:
        session.clear()
