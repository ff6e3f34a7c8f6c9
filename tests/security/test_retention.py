"""Patient data in attempt payloads is purged after the retention period (SPEC §13, default 30 days):
`jobs.maintenance.purge_attempt_payloads` blanks request and response bodies older than the practice's
retention, keeps newer ones and other practices' ones, and the clock runs the purge for every practice."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, text

from jobs.maintenance import purge_all_payloads, purge_attempt_payloads
from webapp.models import Practice, SyncAttempt, utcnow


def add_attempt(db, job_id: int, days_ago: float, name: str) -> int:
    attempt = SyncAttempt(job_id=job_id, outcome="ok", http_status=200,
                          started_at=utcnow() - timedelta(days=days_ago),
                          request_body={"Contact": {"Name": name, "EmailAddress": "p@example.com"}},
                          response_body={"Contacts": [{"Name": name}]})
    db.session.add(attempt)
    db.session.commit()
    return attempt.id


def bodies(db, attempt_id: int):
    db.session.expire_all()
    attempt = db.session.get(SyncAttempt, attempt_id)
    return attempt.request_body, attempt.response_body


def test_payloads_older_than_the_retention_are_blanked_and_no_others(app, db, world, clients):
    a, b = world.a, world.b
    db.session.query(SyncAttempt).update({"request_body": None, "response_body": None})
    old = add_attempt(db, a.job_id, 31, "Old Patient")
    page = f"/jobs/{a.job_id}/"
    assert "Old Patient" in clients["admin"].client.get(page).get_data(as_text=True)  # the payload sent
    edge = add_attempt(db, a.job_id, 29, "Recent Patient")
    fresh = add_attempt(db, a.job_id, 0.001, "Fresh Patient")
    other = add_attempt(db, b.job_id, 90, "Other Practice Patient")

    purged = purge_attempt_payloads(a.practice_id)
    assert purged == 1
    assert bodies(db, old) == (None, None)
    assert bodies(db, edge)[0]["Contact"]["Name"] == "Recent Patient"
    assert bodies(db, fresh)[0] is not None
    assert bodies(db, other)[0] is not None  # practice B's retention is applied by B's own purge
    # The rest of the attempt (outcome, status, timing) is history and stays.
    kept = db.session.get(SyncAttempt, old)
    assert (kept.outcome, kept.http_status) == ("ok", 200)
    # The job detail page no longer shows the purged patient data (it shows the latest payload kept).
    html = clients["admin"].client.get(page).get_data(as_text=True)
    assert "Old Patient" not in html and "Fresh Patient" in html

    # A practice with a shorter retention purges sooner; running again is harmless.
    practice = db.session.get(Practice, a.practice_id)
    practice.settings = {**(practice.settings or {}), "payload_retention_days": 7}
    db.session.commit()
    purge_attempt_payloads(a.practice_id)
    assert bodies(db, edge) == (None, None) and bodies(db, fresh)[0] is not None
    purge_attempt_payloads(b.practice_id)
    assert bodies(db, other) == (None, None)
    assert purge_attempt_payloads(999_999) == 0


def test_a_purge_is_idempotent_and_leaves_sql_null(app, db, world):
    """Purged bodies are SQL NULL (not JSON null), so the next hourly run finds nothing to rewrite."""
    old = add_attempt(db, world.a.job_id, 31, "Old Patient")
    assert purge_attempt_payloads(world.a.practice_id) == 1
    with db.engine.connect() as conn:
        nulls = conn.execute(text("SELECT request_body IS NULL AND response_body IS NULL FROM sync_attempts "
                                  "WHERE id = :id"), {"id": old}).scalar()
    assert purge_attempt_payloads(world.a.practice_id) == 0, "the second run purged already-purged attempts"
    assert nulls, "purged bodies are stored as JSON null, not SQL NULL"


def test_the_clock_purges_every_practice(app, db, world, redis_conn):
    from jobs.clock import periodic_jobs
    from jobs.queues import queue

    purge = [p for p in periodic_jobs() if p.path == "jobs.maintenance.purge_all_payloads"]
    assert purge and purge[0].every <= 24 * 3600
    assert purge_all_payloads() == 2
    jobs = queue("maintenance", redis_conn).jobs
    assert sorted(j.args[0] for j in jobs if j.func_name == "jobs.maintenance.purge_attempt_payloads") == \
        sorted(db.session.scalars(select(Practice.id)))
