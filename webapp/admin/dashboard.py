"""The dashboard: per practice, counts of sync jobs by state."""

from __future__ import annotations

from flask_admin import AdminIndexView, expose
from flask_login import current_user
from sqlalchemy import func, select

from webapp.admin.access import SecuredView
from webapp.extensions import db
from webapp.models import JOB_STATUSES, Practice, SyncJob


def practices_in_scope():
    """The practices the current user may see."""
    query = select(Practice).order_by(Practice.name)
    if current_user.practice_id is not None:
        query = query.where(Practice.id == current_user.practice_id)
    return db.session.scalars(query).all()


def counts_by_state(practice_ids: list[int]) -> dict[int, dict[str, int]]:
    """{practice_id: {status: count}} for the given practices, in one query."""
    counts: dict[int, dict[str, int]] = {pid: dict.fromkeys(JOB_STATUSES, 0) for pid in practice_ids}
    if not practice_ids:
        return counts
    rows = db.session.execute(
        select(SyncJob.practice_id, SyncJob.status, func.count())
        .where(SyncJob.practice_id.in_(practice_ids))
        .group_by(SyncJob.practice_id, SyncJob.status)
    )
    for practice_id, status, count in rows:
        counts[practice_id][status] = count
    return counts


class DashboardView(SecuredView, AdminIndexView):
    """Home page after login."""

    @expose("/")
    def index(self):
        practices = practices_in_scope()
        counts = counts_by_state([p.id for p in practices])
        return self.render(
            "admin/dashboard.html", practices=practices, counts=counts, statuses=JOB_STATUSES
        )
