"""Activity screen: the audit log newest first, filters, keyset pages, practice scoping."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from webapp.models import AuditEntry

PASSWORD = "correct horse battery"


def _ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'data-testid="audit-(\d+)"', html)]


def _add(db, action, at, practice=None, actor="root@example.com", details=None):
    entry = AuditEntry(actor=actor, action=action, at=at, practice_id=getattr(practice, "id", None),
                       object_type="practice" if practice else None, details=details)
    db.session.add(entry)
    db.session.commit()
    return entry.id


def test_filters_order_and_scope(web, app, db, make_user, make_practice):
    north = make_practice("north", name="North Clinic")
    south = make_practice("south", name="South Clinic")
    make_user("root@example.com")
    make_user("north-support@example.com", role="support", practice_slug="north")
    base = datetime(2026, 3, 10, 12, tzinfo=UTC)
    a = _add(db, "practice.enable", base, north)
    b = _add(db, "practice.pause", base + timedelta(days=1), south, actor="other@example.com")
    c = _add(db, "mapping.change", base + timedelta(days=2), north, details={"note": "<b>bold</b>"})
    d = _add(db, "user.invite", base + timedelta(days=3))
    web.login("root@example.com", PASSWORD)
    html = web.client.get("/activity/").get_data(as_text=True)
    ids = _ids(html)
    assert ids.index(d) < ids.index(c) < ids.index(b) < ids.index(a)  # newest first
    assert "&lt;b&gt;bold&lt;/b&gt;" in html or "\\u003cb\\u003ebold" in html
    assert "<b>bold</b>" not in html

    def only(**params):
        return set(_ids(web.client.get("/activity/", query_string=params).get_data(as_text=True)))

    assert only(practice=north.id) == {a, c}
    assert only(user="OTHER@example.com") == {b}
    assert only(action="practice.pause") == {b}
    assert only(date_from="2026-03-11", date_to="2026-03-12") == {b, c}
    assert only(date_to="2026-03-10") == {a}
    assert only(practice=north.id, action="mapping.change") == {c}
    assert web.client.get("/activity/", query_string={"practice": "x"}).status_code == 400

    # A practice-scoped user sees only their practice's entries, whatever the URL says.
    from tests.conftest import CsrfClient

    scoped = CsrfClient(app.test_client())
    scoped.login("north-support@example.com", PASSWORD)
    seen = set(_ids(scoped.client.get("/activity/").get_data(as_text=True)))
    assert {a, c} <= seen and not seen & {b, d}
    assert scoped.client.get("/activity/", query_string={"practice": south.id}).status_code == 404
    options = scoped.client.get("/activity/").get_data(as_text=True)
    assert "South Clinic" not in options and "practice.pause" not in options


def test_keyset_pages(web, db, make_user):
    make_user("root@example.com")
    base = datetime(2026, 1, 1, tzinfo=UTC)
    # Same timestamps on purpose: ties are broken by id.
    ids = [_add(db, "thing.happened", base + timedelta(minutes=i // 3)) for i in range(120)]
    web.login("root@example.com", PASSWORD)
    seen: list[int] = []
    url = "/activity/?action=thing.happened"
    pages = 0
    while url:
        html = web.client.get(url).get_data(as_text=True)
        page_ids = _ids(html)
        assert len(page_ids) <= 50
        seen += page_ids
        pages += 1
        match = re.search(r'href="([^"]+)" rel="next"', html)
        url = match.group(1).replace("&amp;", "&") if match else None
        if url:
            assert "action=thing.happened" in url
    assert pages == 3
    assert seen == sorted(ids, reverse=True)


def test_anonymous_is_sent_to_login(client):
    response = client.get("/activity/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_user_actions_appear_in_activity(web, db, make_user):
    make_user("root@example.com")
    web.login("root@example.com", PASSWORD)
    token = web.csrf_token("/users/new")
    web.client.post("/users/new", data={"email": "new@example.com", "role": "support", "practice": "",
                                        "csrf_token": token})
    html = web.client.get("/activity/", query_string={"action": "user.invite"}).get_data(as_text=True)
    assert "new@example.com" in html and "root@example.com" in html
