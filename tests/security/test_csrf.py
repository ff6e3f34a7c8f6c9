"""CSRF on every POST (SPEC §8, §13): each route of `app.url_map` that accepts POST, for every role that could
otherwise reach it (anonymous, support and admin of all practices, practice-A admin and support), refuses
a POST without a token, with a forged token, with another session's token and as JSON (400, the CSRF
message), and nothing changes in the database or the queues."""

from __future__ import annotations

import pytest

from tests.security.conftest import changed, fingerprint, header_problems, signed_in, token_of
from tests.security.routes import app_rules, fill, form_for

CSRF_MESSAGE = "security token is missing or expired"


def post_rules(app):
    return [r for r in app_rules(app) if "POST" in r.methods]


def path_of(rule, world) -> str:
    return fill(rule, {**world.a.ids(), "token": world.a.invite_token, "filename": "x"})


@pytest.mark.parametrize("role", ["anonymous", "support", "admin", "admin_a", "support_a"])
def test_every_post_without_a_token_is_refused_and_changes_nothing(app, world, clients, db, redis_conn, role):
    web = clients[role]
    before = fingerprint(db, redis_conn)
    rules = post_rules(app)
    assert len(rules) >= 20
    for rule in rules:
        path = path_of(rule, world)
        response = web.client.post(path, data=form_for(rule.endpoint, world.a.ids()))
        where = f"{role} POST {path} ({rule.endpoint}) without a token → {response.status_code}"
        assert response.status_code == 400, where
        assert CSRF_MESSAGE in response.get_data(as_text=True), where
        assert not header_problems(response), where
    assert changed(before, fingerprint(db, redis_conn)) == []
    if role != "anonymous":  # still signed in: the refusals did not end the session either
        assert web.client.get("/").status_code == 200


def test_forged_foreign_and_json_tokens_are_refused(app, world, clients, db, redis_conn):
    """As the admin of all practices (who may do everything): a made-up token, the token of another
    signed-in session, a token in a header of a JSON body without the form field, all refused."""
    web = clients["admin"]
    own = token_of(web)
    other = token_of(clients["support"])
    assert own != other
    before = fingerprint(db, redis_conn)
    for rule in post_rules(app):
        path = path_of(rule, world)
        form = form_for(rule.endpoint, world.a.ids())
        attempts = {
            "made-up token": dict(data={**form, "csrf_token": "IjAwMDAi.aaaaaa.bbbbbbbbbbbbbbbbbbbbbbbbbbb"}),
            "another session's token": dict(data={**form, "csrf_token": other}),
            "empty token": dict(data={**form, "csrf_token": ""}),
            "JSON body, no token": dict(json=form),
            "another session's token in the header": dict(data=form, headers={"X-CSRFToken": other}),
        }
        for label, kwargs in attempts.items():
            response = web.client.post(path, **kwargs)
            where = f"admin POST {path} with {label} → {response.status_code}"
            assert response.status_code == 400, where
    assert changed(before, fingerprint(db, redis_conn)) == []
    # The same session's own token is accepted (the check is not refusing everything).
    response = web.client.post(f"/jobs/{world.a.job_id}/requeue", data={"csrf_token": own})
    assert response.status_code == 302


def test_a_token_dies_with_the_session_at_logout_and_login(app, world, db, redis_conn):
    """A token taken before sign-in (or from a signed-out session) does not work after it: the session is new."""
    web = signed_in(app, None)
    anonymous_token = token_of(web)
    assert web.login("admin@example.com", "correct horse battery").status_code == 302
    before = fingerprint(db, redis_conn)
    response = web.client.post(f"/practices/{world.a.practice_id}/sync",
                               data={"enabled": "0", "csrf_token": anonymous_token})
    assert response.status_code == 400 and CSRF_MESSAGE in response.get_data(as_text=True)
    signed_in_token = token_of(web)
    assert web.client.post("/logout", data={"csrf_token": signed_in_token}).status_code == 302
    assert web.login("admin@example.com", "correct horse battery").status_code == 302
    response = web.client.post(f"/practices/{world.a.practice_id}/sync",
                               data={"enabled": "0", "csrf_token": signed_in_token})
    assert response.status_code == 400
    after = fingerprint(db, redis_conn)
    assert changed(before, after) in ([], ["audit_log", "users"])  # only the logout/login bookkeeping
