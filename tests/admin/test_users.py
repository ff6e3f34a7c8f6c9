"""Users screen: invite with a one-time link, role and scope rules, disable/enable, audit entries."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.admin.test_alerts import smtp_server  # noqa: F401, F811 (fixture)
from webapp.models import AuditEntry, User, utcnow

PASSWORD = "correct horse battery"
NEW_PASSWORD = "a brand new passphrase"


def _link(html: str) -> str:
    match = re.search(r'data-testid="invite-link"[^>]*value="([^"]+)"', html)
    assert match, html
    return match.group(1)


def _path(link: str) -> str:
    return re.sub(r"^https?://[^/]+", "", link)


def _invite(web, email, role="support", practice=""):
    token = web.csrf_token("/users/new")
    return web.client.post("/users/new", data={"email": email, "role": role, "practice": practice,
                                               "csrf_token": token})


def _post(web, path, page="/users/"):
    return web.client.post(path, data={"csrf_token": web.csrf_token(page)})


def _actions(db):
    return [e.action for e in db.session.scalars(select(AuditEntry).order_by(AuditEntry.id))]


def _set_password(client_web, path, password=NEW_PASSWORD, confirm=None):
    token = client_web.csrf_token(path)
    return client_web.client.post(path, data={"password": password, "confirm": confirm or password,
                                              "csrf_token": token})


@pytest.fixture
def other_web(app):
    """A second, independent browser session."""
    from tests.conftest import CsrfClient

    return CsrfClient(app.test_client())


def test_invite_link_sets_password_once_then_login(web, other_web, make_user, make_practice, db):
    practice = make_practice("north", name="North Clinic")
    make_user()
    web.login("admin@example.com", PASSWORD)
    response = _invite(web, "New.Person@example.com", role="support", practice=str(practice.id))
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    html = response.get_data(as_text=True)
    link = _link(html)
    assert "not emailed" in html
    user = db.session.scalar(select(User).where(User.email == "New.Person@example.com"))
    db.session.refresh(user)
    token = link.rsplit("/", 1)[1]
    # Only a hash is stored, with an expiry about 72 h away.
    assert user.invite_token_hash and token not in user.invite_token_hash
    assert timedelta(hours=71) < user.invite_expires_at - utcnow() <= timedelta(hours=72)
    assert user.password_hash is None and (user.role, user.practice_id) == ("support", practice.id)
    # The invited person cannot sign in before choosing a password.
    assert other_web.login("new.person@example.com", "anything at all").status_code == 401
    # Mismatch and weak passwords are refused without spending the link.
    assert _set_password(other_web, _path(link), NEW_PASSWORD, "something else").status_code == 400
    assert _set_password(other_web, _path(link), "short").status_code == 400
    page = other_web.client.get(_path(link))
    assert page.status_code == 200 and "New.Person@example.com" in page.get_data(as_text=True)
    done = _set_password(other_web, _path(link))
    assert done.status_code == 302 and done.headers["Location"].endswith("/login")
    # Used once: the link is now refused.
    again = other_web.client.get(_path(link))
    assert again.status_code == 404 and "not valid" in again.get_data(as_text=True)
    refused = other_web.client.post(_path(link), data={"password": "x" * 12, "confirm": "x" * 12})
    assert refused.status_code in (400, 404)
    assert other_web.login("new.person@example.com", NEW_PASSWORD).status_code == 302
    assert other_web.client.get("/").status_code == 200
    # A support user cannot open Users.
    assert other_web.client.get("/users/").status_code == 403
    assert {"user.invite", "user.invite_accepted"} <= set(_actions(db))
    invite = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "user.invite"))
    assert invite.actor == "admin@example.com" and invite.practice_id == practice.id
    assert token not in str(invite.details)


def test_expired_and_replaced_links_are_refused(web, other_web, make_user, db):
    make_user()
    web.login("admin@example.com", PASSWORD)
    first = _link(_invite(web, "late@example.com").get_data(as_text=True))
    user = db.session.scalar(select(User).where(User.email == "late@example.com"))
    # A new link replaces the first one.
    second = _link(_post(web, f"/users/{user.id}/invite").get_data(as_text=True))
    assert other_web.client.get(_path(first)).status_code == 404
    assert other_web.client.get(_path(second)).status_code == 200
    db.session.refresh(user)
    user.invite_expires_at = utcnow() - timedelta(minutes=1)
    db.session.commit()
    assert other_web.client.get(_path(second)).status_code == 404
    assert other_web.client.get("/invite/not-a-real-token").status_code == 404
    assert "user.invite_link" in _actions(db)


def test_invite_validation(web, make_user):
    make_user()
    web.login("admin@example.com", PASSWORD)
    dup = _invite(web, "ADMIN@example.com")
    assert dup.status_code == 400 and "already exists" in dup.get_data(as_text=True)
    bad = _invite(web, "not-an-email")
    assert bad.status_code == 400
    assert _invite(web, "x@example.com", role="owner").status_code == 400
    # A POST without the CSRF token is refused.
    assert web.client.post("/users/new", data={"email": "y@example.com", "role": "support"}).status_code == 400


def test_scoped_admin_manages_only_their_practice(web, make_user, make_practice, db):
    north = make_practice("north", name="North Clinic")
    south = make_practice("south", name="South Clinic")
    make_user("root@example.com")
    make_user("north-admin@example.com", practice_slug="north")
    south_user = make_user("south-support@example.com", role="support", practice_slug="south")
    north_user = make_user("north-support@example.com", role="support", practice_slug="north")
    web.login("north-admin@example.com", PASSWORD)
    html = web.client.get("/users/").get_data(as_text=True)
    assert "north-support@example.com" in html
    assert "south-support@example.com" not in html and "root@example.com" not in html
    # URL guessing another practice's user: 404.
    assert web.client.get(f"/users/{south_user.id}/edit").status_code == 404
    assert _post(web, f"/users/{south_user.id}/disable").status_code == 404
    # Can only invite into their own practice.
    form = web.client.get("/users/new").get_data(as_text=True)
    assert "All practices" not in form and "South Clinic" not in form
    assert _invite(web, "sneaky@example.com", practice="").status_code == 400
    assert _invite(web, "sneaky@example.com", practice=str(south.id)).status_code == 400
    assert _invite(web, "ok@example.com", practice=str(north.id)).status_code == 200
    assert db.session.scalar(select(User).where(User.email == "ok@example.com")).practice_id == north.id
    # Can make a colleague an admin of the practice but not of all practices.
    token = web.csrf_token(f"/users/{north_user.id}/edit")
    widen = web.client.post(f"/users/{north_user.id}/edit",
                            data={"role": "admin", "practice": "", "csrf_token": token})
    assert widen.status_code == 400
    token = web.csrf_token(f"/users/{north_user.id}/edit")
    promote = web.client.post(f"/users/{north_user.id}/edit",
                              data={"role": "admin", "practice": str(north.id), "csrf_token": token})
    assert promote.status_code == 302
    db.session.refresh(north_user)
    assert north_user.role == "admin"
    # The System screen is for unscoped operators only.
    assert web.client.get("/system/").status_code == 403


def test_cannot_disable_self_or_remove_last_unscoped_admin(web, other_web, make_user, make_practice, db):
    make_practice("north")
    me = make_user("root@example.com")
    web.login("root@example.com", PASSWORD)
    response = _post(web, f"/users/{me.id}/disable")
    assert response.status_code == 303
    assert "cannot disable yourself" in web.client.get("/users/").get_data(as_text=True)
    # Demoting or scoping the only unscoped admin (myself) is refused.
    for data in ({"role": "support", "practice": ""}, {"role": "admin", "practice": "1"}):
        token = web.csrf_token(f"/users/{me.id}/edit")
        refused = web.client.post(f"/users/{me.id}/edit", data={**data, "csrf_token": token})
        assert refused.status_code == 400
        assert "last admin of all practices" in refused.get_data(as_text=True)
    db.session.refresh(me)
    assert (me.role, me.practice_id, me.active) == ("admin", None, True)
    # With a second unscoped admin, the first may be demoted; the second is then the last one.
    other = make_user("ops@example.com")
    token = web.csrf_token(f"/users/{me.id}/edit")
    assert web.client.post(f"/users/{me.id}/edit", data={"role": "support", "practice": "",
                                                          "csrf_token": token}).status_code == 302
    # Demoted: no longer an admin, so the Users screen is closed to me.
    assert web.client.get("/users/").status_code == 403
    other_web.login("ops@example.com", PASSWORD)
    assert _post(other_web, f"/users/{other.id}/disable").status_code == 303
    db.session.refresh(other)
    assert other.active
    update = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "user.update"))
    assert update.details["before"] == {"role": "admin", "scope": None}
    assert update.details["after"] == {"role": "support", "scope": None}


def test_disable_logs_out_on_next_request_and_enable(web, other_web, make_user, db):
    make_user()
    target = make_user("staff@example.com", role="support")
    other_web.login("staff@example.com", PASSWORD)
    assert other_web.client.get("/").status_code == 200
    web.login("admin@example.com", PASSWORD)
    assert _post(web, f"/users/{target.id}/disable").status_code == 303
    db.session.refresh(target)
    assert not target.active
    # The open session of the disabled user no longer works.
    response = other_web.client.get("/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert other_web.login("staff@example.com", PASSWORD).status_code == 401
    html = web.client.get("/users/").get_data(as_text=True)
    assert "disabled" in html
    assert _post(web, f"/users/{target.id}/enable").status_code == 303
    assert other_web.login("staff@example.com", PASSWORD).status_code == 302
    entries = db.session.scalars(select(AuditEntry).where(AuditEntry.action.in_(("user.disable", "user.enable")))
                                 .order_by(AuditEntry.id)).all()
    assert [(e.action, e.actor, e.object_id) for e in entries] == [
        ("user.disable", "admin@example.com", str(target.id)), ("user.enable", "admin@example.com", str(target.id))]


def test_disabled_user_invite_link_stops_working(web, other_web, make_user, db):
    make_user()
    web.login("admin@example.com", PASSWORD)
    link = _link(_invite(web, "gone@example.com").get_data(as_text=True))
    user = db.session.scalar(select(User).where(User.email == "gone@example.com"))
    _post(web, f"/users/{user.id}/disable")
    assert other_web.client.get(_path(link)).status_code == 404


def test_invite_is_emailed_when_smtp_is_configured(web, make_user, app, smtp_server):  # noqa: F811
    app.config["SMTP_URL"] = smtp_server.url
    make_user()
    web.login("admin@example.com", PASSWORD)
    html = _invite(web, "mailme@example.com").get_data(as_text=True)
    link = _link(html)
    assert "also emailed" in html
    [message] = smtp_server.messages
    assert message["rcpt"] == ["mailme@example.com"]
    assert link in message["body"]
