"""The job list: tabs, filters, search (indexed), keyset pages, CSV export, roles, scope, escaping."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, text

from tests.admin.test_jobs_support import PASSWORD, csrf_from, link, make_jobs, row_ids
from webapp.extensions import db
from webapp.models import SyncJob


@pytest.fixture
def two_practices(make_practice):
    return make_practice("north", name="North Clinic"), make_practice("south", name="South Clinic")


@pytest.fixture
def admin(web, make_user):
    make_user("admin@example.com")
    web.login("admin@example.com", PASSWORD)
    return web


def expected_order(practice_ids=None, status=None):
    query = select(SyncJob.id).order_by(SyncJob.updated_at.desc(), SyncJob.id.desc())
    if practice_ids:
        query = query.where(SyncJob.practice_id.in_(practice_ids))
    if status:
        query = query.where(SyncJob.status == status)
    return list(db.session.scalars(query))


def test_keyset_pages_cover_every_row_once_both_ways(admin, two_practices):
    north, south = two_practices
    make_jobs(north, 250)
    make_jobs(south, 20, start=1000)
    want = expected_order([north.id])
    seen, pages, url = [], [], f"/jobs/?practice={north.id}&per_page=50"
    while url:
        html = admin.client.get(url).get_data(as_text=True)
        assert "OFFSET" not in html
        page = row_ids(html)
        pages.append((url, page))
        seen += page
        url = link(html, "next")
    assert [len(p) for _, p in pages] == [50, 50, 50, 50, 50]
    assert seen == want and len(set(seen)) == 250
    # Back again with "Previous": the same pages, in reverse.
    html = admin.client.get(pages[-1][0]).get_data(as_text=True)
    for _, page in reversed(pages[:-1]):
        html = admin.client.get(link(html, "prev")).get_data(as_text=True)
        assert row_ids(html) == page
    assert link(html, "prev") is None


def test_keyset_query_uses_the_list_index_without_offset(app, two_practices):
    from webapp.admin.job_forms import keyset_page

    north, _ = two_practices
    make_jobs(north, 30)
    query = keyset_page(select(SyncJob).where(SyncJob.practice_id == north.id, SyncJob.status == "failed"),
                        after=(datetime.now(UTC), 10**9), limit=51)
    sql = str(query.compile(dialect=db.engine.dialect, compile_kwargs={"literal_binds": True}))
    assert "OFFSET" not in sql.upper()
    with db.engine.connect() as conn:
        # Tiny tables make any plan cheap; forbid the alternatives to show an ordered index answers it
        # (bench at a million rows: 1-5 ms a page, see docs/ui-jobs.md).
        for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
            conn.execute(text(f"SET {setting} = off"))
        plan = "\n".join(r[0] for r in conn.execute(text("EXPLAIN " + sql)))
    assert "ix_sync_jobs_practice_list" in plan and "Sort" not in plan, plan


def test_tabs_count_and_filter(admin, two_practices):
    north, south = two_practices
    make_jobs(north, 50)
    make_jobs(south, 10, start=500, status="failed", error_category="validation")
    html = admin.client.get("/jobs/").get_data(as_text=True)
    assert 'data-testid="count-failed">20<' in html  # 10 north + 10 south
    assert 'data-testid="count-synced">10<' in html
    html = admin.client.get("/jobs/?state=failed&category=validation").get_data(as_text=True)
    ids = row_ids(html)
    assert len(ids) == 10
    assert {db.session.get(SyncJob, i).practice_id for i in ids} == {south.id}
    # Counts follow the other filters; the state tab keeps them.
    assert 'data-testid="count-failed">10<' in html and 'data-testid="count-synced">0<' in html
    html = admin.client.get(f"/jobs/?practice={north.id}&kind=payment").get_data(as_text=True)
    assert row_ids(html) == []


def test_date_filters(admin, two_practices):
    north, _ = two_practices
    make_jobs(north, 60)
    # Issue dates run back 0..29 days from 2024-05-01: two rows per day.
    html = admin.client.get("/jobs/?date_field=issued&date_from=2024-04-30&date_to=2024-05-01").get_data(as_text=True)
    assert len(row_ids(html)) == 4
    html = admin.client.get("/jobs/?date_field=updated&date_from=2024-05-02").get_data(as_text=True)
    assert row_ids(html) == []
    html = admin.client.get("/jobs/?date_from=not-a-date").get_data(as_text=True)
    assert len(row_ids(html)) == 50


def test_search_exact_and_patient_prefix(admin, two_practices):
    north, _ = two_practices
    ids = make_jobs(north, 40)
    get = lambda q: row_ids(admin.client.get("/jobs/", query_string=q).get_data(as_text=True))  # noqa: E731
    assert get({"q": "INV-00007"}) == [ids[7]]
    assert get({"q": "INV-0000"}) == []  # invoice numbers are exact
    assert get({"q": "100012", "by": "cliniko"}) == [ids[12]]
    assert get({"q": "00000000-0000-4000-8000-000000000001", "by": "xero"}) == [ids[1]]
    assert get({"q": "patient 00003", "by": "patient"}) == [ids[3]]
    assert sorted(get({"q": "PATIENT 0001", "by": "patient"})) == sorted(ids[10:20])
    assert get({"q": "patient_0%", "by": "patient"}) == []  # LIKE wildcards are literal


def test_patient_search_uses_the_lower_name_index(app, two_practices):
    from webapp.admin.job_forms import search_condition

    north, _ = two_practices
    make_jobs(north, 20)
    query = select(SyncJob.id).where(search_condition("jane sm", "patient"))
    sql = str(query.compile(dialect=db.engine.dialect, compile_kwargs={"literal_binds": True}))
    with db.engine.connect() as conn:
        conn.execute(text("SET enable_seqscan = off"))
        plan = "\n".join(r[0] for r in conn.execute(text("EXPLAIN " + sql)))
    assert "ix_sync_jobs_patient_name_lower" in plan, plan
    query = select(SyncJob.id).where(search_condition("INV-1", "any"))
    sql = str(query.compile(dialect=db.engine.dialect, compile_kwargs={"literal_binds": True}))
    with db.engine.connect() as conn:
        conn.execute(text("SET enable_seqscan = off"))
        plan = "\n".join(r[0] for r in conn.execute(text("EXPLAIN " + sql)))
    for index in ("ix_sync_jobs_invoice_number", "ix_sync_jobs_cliniko_id", "ix_sync_jobs_xero_id",
                  "ix_sync_jobs_patient_name_lower"):
        assert index in plan, plan


def test_csv_export_of_the_filter_neutralises_formulas(admin, two_practices):
    north, south = two_practices
    make_jobs(north, 1200, status="failed")
    make_jobs(south, 3, start=5000, status="failed", patient_name="=HYPERLINK(\"http://evil\")")
    bad = db.session.scalars(select(SyncJob).where(SyncJob.practice_id == south.id)).first()
    bad.failure_reason = "+SUM(A1:A9)"
    bad.invoice_number = "@cmd"
    db.session.commit()
    # buffered: the test client runs each request in its own context, so read the stream inside it.
    response = admin.client.get(f"/jobs/export.csv?practice={south.id}", buffered=True)
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert len(rows) == 3
    assert all(r["patient_name"].startswith("'=HYPERLINK") for r in rows)
    flagged = next(r for r in rows if r["id"] == str(bad.id))
    assert flagged["failure_reason"] == "'+SUM(A1:A9)" and flagged["invoice_number"] == "'@cmd"
    assert flagged["practice"] == "south"
    # Streamed in keyset chunks: every north row exactly once, in list order.
    response = admin.client.get(f"/jobs/export.csv?practice={north.id}&state=failed", buffered=True)
    assert "Content-Length" not in response.headers  # a generator, not one built string
    ids = [int(r["id"]) for r in csv.DictReader(io.StringIO(response.get_data(as_text=True)))]
    assert ids == expected_order([north.id])


def test_patient_name_is_escaped(admin, two_practices):
    north, _ = two_practices
    [job_id] = make_jobs(north, 1, status="failed", patient_name="<script>alert(1)</script>")
    for url in ("/jobs/", f"/jobs/{job_id}/"):
        html = admin.client.get(url).get_data(as_text=True)
        assert "<script>alert(1)</script>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_post_without_csrf_is_refused(admin, two_practices):
    north, _ = two_practices
    [job_id] = make_jobs(north, 1, status="failed")
    for url, data in ((f"/jobs/{job_id}/requeue", {}), ("/jobs/bulk", {"action": "requeue", "ids": [job_id]}),
                      ("/jobs/requeue-all", {}), (f"/jobs/{job_id}/ignore", {"reason": "x"})):
        assert admin.client.post(url, data=data).status_code == 400
    assert db.session.get(SyncJob, job_id).status == "failed"


def test_scoped_user_gets_404_for_another_practice(web, make_user, two_practices, redis_conn):
    north, south = two_practices
    [mine] = make_jobs(north, 1, status="failed")
    [theirs] = make_jobs(south, 1, start=10, status="failed")
    make_user("north-admin@example.com", practice_slug="north")
    web.login("north-admin@example.com", PASSWORD)
    html = web.client.get("/jobs/").get_data(as_text=True)
    assert row_ids(html) == [mine] and "South Clinic" not in html
    assert row_ids(web.client.get(f"/jobs/?practice={south.id}").get_data(as_text=True)) == []
    assert web.client.get(f"/jobs/{theirs}/").status_code == 404
    token = csrf_from(html)
    assert web.client.post(f"/jobs/{theirs}/requeue", data={"csrf_token": token}).status_code == 404
    assert web.client.post(f"/jobs/{theirs}/ignore", data={"csrf_token": token, "reason": "x"}).status_code == 404
    response = web.client.post("/jobs/bulk", data={"csrf_token": token, "action": "requeue", "ids": [mine, theirs]})
    assert response.status_code == 404
    assert web.client.get(f"/jobs/requeue-all?practice={south.id}").status_code == 404
    assert web.client.post("/jobs/requeue-all", data={"csrf_token": token, "practice": south.id}).status_code == 404
    assert redis_conn.llen("rq:queue:live") == 0
    export = web.client.get("/jobs/export.csv", buffered=True).get_data(as_text=True)
    assert str(theirs) not in [r["id"] for r in csv.DictReader(io.StringIO(export))]
    assert db.session.get(SyncJob, theirs).status == "failed"


def test_support_may_requeue_one_row_but_no_bulk(web, make_user, two_practices, redis_conn):
    north, _ = two_practices
    [a, b] = make_jobs(north, 2, status="failed")
    make_user("support@example.com", role="support")
    web.login("support@example.com", PASSWORD)
    html = web.client.get("/jobs/").get_data(as_text=True)
    assert set(row_ids(html)) == {a, b}
    assert 'data-testid="bulk-form"' not in html and 'name="ids"' not in html
    token = csrf_from(html)
    assert web.client.post("/jobs/bulk", data={"csrf_token": token, "action": "requeue", "ids": [a]}).status_code == 403
    assert web.client.get("/jobs/requeue-all").status_code == 403
    assert web.client.post("/jobs/requeue-all", data={"csrf_token": token}).status_code == 403
    detail = web.client.get(f"/jobs/{a}/").get_data(as_text=True)
    assert "Re-queue" in detail and 'name="reason"' not in detail
    assert web.client.post(f"/jobs/{a}/ignore", data={"csrf_token": token, "reason": "no"}).status_code == 403
    response = web.client.post(f"/jobs/{a}/requeue", data={"csrf_token": token})
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(SyncJob, a).status == "pending" and db.session.get(SyncJob, b).status == "failed"
    from webapp.models import AuditEntry

    entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "requeue")).one()
    assert entry.actor == "support@example.com" and entry.object_id == str(a)


def test_admin_ignore_one_needs_a_reason(admin, two_practices, redis_conn):
    north, _ = two_practices
    [job_id] = make_jobs(north, 1, status="failed")
    token = csrf_from(admin.client.get(f"/jobs/{job_id}/").get_data(as_text=True))
    admin.client.post(f"/jobs/{job_id}/ignore", data={"csrf_token": token, "reason": "  "})
    db.session.expire_all()
    assert db.session.get(SyncJob, job_id).status == "failed"
    admin.client.post(f"/jobs/{job_id}/ignore", data={"csrf_token": token, "reason": "Paid by insurer"})
    db.session.expire_all()
    row = db.session.get(SyncJob, job_id)
    assert row.status == "ignored" and row.status_reason == "Paid by insurer"
