"""The dashboard: counts by state linking to the job list, backlog and ETA, today's Xero calls, SVG charts
(per hour and per day, escaped), connection state, and practice scoping."""

from datetime import timedelta
from decimal import Decimal

import pytest

from webapp.admin.charts import Point, bar_chart
from webapp.extensions import db
from webapp.models import SyncAttempt, SyncJob, XeroConnection, utcnow

PASSWORD = "correct horse battery"


def job(practice, n, status, **fields):
    return SyncJob(practice_id=practice.id, kind="invoice", cliniko_id=f"{practice.slug}-{n}",
                   invoice_number=f"INV-{n}", amount=Decimal("10.00"), status=status, **fields)


@pytest.fixture
def seeded(make_practice, make_user):
    now = utcnow()
    a = make_practice("alpha", name="Alpha <Clinic>", time_zone="UTC", sync_enabled=True,
                      last_successful_poll_at=now - timedelta(minutes=3),
                      last_poll_error="ServerError: Cliniko said <b>500</b>")
    b = make_practice("beta", name="Beta Clinic", time_zone="Australia/Sydney")
    rows = []
    # Alpha: 5 synced (3 in the last hours, 2 three days ago), 2 failed, 100 pending + 10 retrying + 10 waiting.
    # Anchored on the hour and on midnight (UTC, alpha's zone) so that buckets never straddle a boundary.
    hour = now.replace(minute=0, second=0, microsecond=0)
    midnight = hour.replace(hour=0)
    for i, at in enumerate([hour - timedelta(minutes=10), hour - timedelta(minutes=20),
                            hour - timedelta(hours=2, minutes=10), midnight - timedelta(days=3, hours=-1),
                            midnight - timedelta(days=3, hours=-2)]):
        rows.append(job(a, f"s{i}", "synced", synced_at=at, xero_id=f"x{i}"))
    rows += [job(a, f"f{i}", "failed", error_category="validation") for i in range(2)]
    rows += [job(a, f"p{i}", "pending") for i in range(100)]
    rows += [job(a, f"r{i}", "retrying") for i in range(10)]
    rows += [job(a, f"w{i}", "waiting") for i in range(10)]
    rows += [job(b, f"s{i}", "synced", synced_at=now - timedelta(hours=1)) for i in range(7)]
    db.session.add_all(rows)
    db.session.flush()
    failed = [r for r in rows if r.status == "failed"]
    for r in failed:
        db.session.add_all([
            SyncAttempt(job_id=r.id, practice_id=r.practice_id, started_at=hour - timedelta(minutes=30),
                        outcome="error", http_status=400),
            SyncAttempt(job_id=r.id, practice_id=r.practice_id, started_at=midnight - timedelta(days=4, hours=-1),
                        outcome="error", http_status=400)])
    db.session.add(SyncAttempt(job_id=rows[0].id, started_at=now - timedelta(minutes=6), outcome="synced"))
    db.session.add(XeroConnection(practice_id=a.id, tenant_id="tenant-alpha", tenant_name="Alpha Pty <Ltd>",
                                  status="active"))
    db.session.add(XeroConnection(practice_id=b.id, tenant_id="tenant-beta", tenant_name="Beta Pty Ltd",
                                  status="needs_reconnect"))
    db.session.commit()
    make_user("admin@example.com")
    make_user("support@example.com", role="support", practice_slug="beta")
    return a, b


def card(html: str, slug: str) -> str:
    start = html.index(f'data-testid="practice-{slug}"')
    end = html.find("</section>", start)
    return html[start:end]


def test_dashboard_counts_links_backlog_eta_and_budget(app, web, seeded):
    from webapp.practices import xero_budget

    a, b = seeded
    budget = xero_budget()
    for _ in range(3):
        budget.release(budget.acquire("tenant-alpha"))
    web.login("admin@example.com", PASSWORD)
    response = web.client.get("/")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    alpha = card(html, "alpha")
    assert "Alpha &lt;Clinic&gt;" in alpha and "<Clinic>" not in html
    assert "Alpha Pty &lt;Ltd&gt;" in alpha and "active" in alpha
    assert "Cliniko said &lt;b&gt;500&lt;/b&gt;" in alpha
    assert f'href="/jobs/?practice={a.id}&amp;state=failed" data-testid="count-failed">2<' in alpha
    assert f'href="/jobs/?practice={a.id}&amp;state=synced" data-testid="count-synced">5<' in alpha
    assert f'href="/jobs/?practice={a.id}&amp;state=pending" data-testid="count-pending">100<' in alpha
    # Backlog 120 rows = 3 batches of 50 = 3 calls at 60 calls a 60-second window: 3 s.
    assert "120 rows" in alpha and 'data-testid="eta">3 s<' in alpha
    assert "3 / 5000" in alpha
    beta = card(html, "beta")
    assert "needs reconnect" in beta and "sync off" in beta and "never" in beta


def test_dashboard_charts_are_inline_svg_from_grouped_queries(app, web, seeded):
    a, b = seeded
    web.login("admin@example.com", PASSWORD)
    html = web.client.get("/").get_data(as_text=True)
    alpha = card(html, "alpha")
    hours = alpha[alpha.index(f'data-testid="chart-hours-{a.id}"'):]
    hours = hours[:hours.index("</svg>")]
    days = alpha[alpha.index(f'data-testid="chart-days-{a.id}"'):]
    days = days[:days.index("</svg>")]
    # Last 48 h: 3 synced (two in the previous hour), 2 failed attempts; 30 days: 5 synced, 4 failed.
    assert "3 synced, 2 failed" in hours
    assert hours.count('class="bar-synced"') == 2 and hours.count('class="bar-failed"') == 1
    assert "5 synced, 4 failed" in days
    assert days.count('class="bar-synced"') in (2, 3) and days.count('class="bar-failed"') == 2
    assert "<script" not in alpha
    beta = card(html, "beta")
    assert "7 synced, 0 failed" in beta


def test_dashboard_uses_a_fixed_number_of_queries(app, web, seeded, make_practice):
    from sqlalchemy import event

    web.login("admin@example.com", PASSWORD)
    web.client.get("/")
    statements = []

    def count(*args, **kwargs):
        statements.append(args[2])

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        web.client.get("/")
        first = len(statements)
        for i in range(5):
            make_practice(f"extra-{i}")
        statements.clear()
        web.client.get("/")
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert len(statements) == first <= 12


def test_scoped_support_user_sees_only_their_practice(app, web, seeded):
    a, b = seeded
    web.login("support@example.com", PASSWORD)
    html = web.client.get("/").get_data(as_text=True)
    assert 'data-testid="practice-beta"' in html
    assert "Alpha" not in html and "alpha" not in html
    assert f"practice={a.id}&" not in html


def test_bar_chart_escapes_text():
    svg = str(bar_chart([Point("<b>", 'a "quoted" & <tag>', 3, 1), Point("x", "y", 0, 0)],
                        title="<script>alert(1)</script>"))
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert "&lt;b&gt;" in svg and "&#34;quoted&#34; &amp; &lt;tag&gt;" in svg
    assert svg.count("<rect") == 2


def test_backfill_and_reconcile_pickers_list_practices_in_scope(app, web, seeded):
    a, b = seeded
    web.login("admin@example.com", PASSWORD)
    picker = web.client.get("/backfill/").get_data(as_text=True)
    assert f"/backfill/{a.id}/" in picker and f"/backfill/{b.id}/" in picker
    form = web.client.get("/reconcile/").get_data(as_text=True)
    assert f'<option value="{a.id}"' in form and f'<option value="{b.id}"' in form
    bad = web.client.get(f"/reconcile/?practice={a.id}&date_from=nonsense&run=1")
    assert bad.status_code == 400 and "Dates must look like" in bad.get_data(as_text=True)
