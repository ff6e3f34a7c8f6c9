"""The Xero OAuth `state` (SPEC §6, §13): random, bound to the session and the practice; a callback without
it, with another one, with another session's, or a replay is refused (400) and saves nothing; a state
bound to a practice outside the user's scope gives 404 (support: 403), as does an organisation choice
pending for such a practice. (tests/xero/test_connect.py covers the happy path, mismatch and replay over
the real flow; these forge the session to reach the cases a browser cannot.)"""

from __future__ import annotations

import json
import secrets
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

from tests.security.conftest import changed, fingerprint, signed_in, token_of
from webapp import crypto
from webapp.models import utcnow
from webapp.xero.routes import STATE_KEY


def start(web, practice_id: int) -> str:
    response = web.client.get(f"/practices/{practice_id}/xero/connect")
    assert response.status_code == 302
    return parse_qs(urlsplit(response.headers["Location"]).query)["state"][0]


def test_state_is_random_and_bound_to_session_and_practice(app, world, clients):
    web = clients["admin"]
    first, second = start(web, world.a.practice_id), start(web, world.a.practice_id)
    assert first != second and len(first) >= 32
    with web.client.session_transaction() as session:
        assert session[STATE_KEY] == {"state": second, "practice_id": world.a.practice_id}  # the latest only


def test_callbacks_without_the_session_state_are_refused_and_save_nothing(app, world, clients, db, redis_conn):
    admin, other = clients["admin"], clients["admin_a"]
    state = start(admin, world.a.practice_id)
    fresh = signed_in(app, "admin")
    before = fingerprint(db, redis_conn)
    cases = [
        (other, f"/xero/callback?state={state}&code=abc"),        # another session's state (login CSRF)
        (fresh, f"/xero/callback?state={state}&code=abc"),  # same user, new session
        (admin, "/xero/callback?code=abc"),                         # no state
        (admin, f"/xero/callback?state={state}x&code=abc"),         # wrong state (this pops the real one)
        (admin, f"/xero/callback?state={state}&code=abc"),          # the real one, now spent
    ]
    for web, path in cases:
        response = web.client.get(path)
        assert response.status_code == 400, f"{path} → {response.status_code}"
    assert changed(before, fingerprint(db, redis_conn)) == []


def test_a_replayed_session_cookie_cannot_reuse_a_state(app, world, clients, db):
    """The state lives in a signed cookie, which can be replayed; the server remembers spent states."""
    web = clients["admin"]
    state = secrets.token_urlsafe(32)
    with web.client.session_transaction() as session:
        session[STATE_KEY] = {"state": state, "practice_id": world.a.practice_id}
    # Xero says "denied": the state is spent without any call to Xero.
    first = web.client.get(f"/xero/callback?state={state}&error=access_denied")
    assert first.status_code == 302
    with web.client.session_transaction() as session:  # the old cookie, replayed
        session[STATE_KEY] = {"state": state, "practice_id": world.a.practice_id}
    replay = web.client.get(f"/xero/callback?state={state}&code=abc")
    assert replay.status_code == 400 and "already been used" in replay.get_data(as_text=True)


def test_a_state_or_pending_choice_for_a_practice_out_of_scope_is_refused(app, world, clients, db, redis_conn):
    from webapp.redis_conn import redis_client

    expected = {"admin_a": 404, "support_a": 404, "support": 403}
    for role, status in expected.items():
        web = clients[role]
        state = secrets.token_urlsafe(32)
        with web.client.session_transaction() as session:
            session[STATE_KEY] = {"state": state, "practice_id": world.b.practice_id}
        before = fingerprint(db, redis_conn)
        response = web.client.get(f"/xero/callback?state={state}&code=abc")
        assert response.status_code == status, f"{role}: callback for B → {response.status_code}"

        # An organisation choice pending for practice B (as if B's admin had consented in this session).
        pending = secrets.token_urlsafe(24)
        payload = {"practice_id": world.b.practice_id,
                   "tokens": {"access_token": "a", "refresh_token": "r",
                              "expires_at": (utcnow() + timedelta(minutes=30)).isoformat(), "scope": "s"},
                   "tenants": [{"tenant_id": "t-1", "tenant_name": "Evil Org", "tenant_type": "ORGANISATION",
                                "connection_id": "c-1", "auth_event_id": "e-1"}]}
        redis_client().set(f"xero:pending:{pending}", crypto.encrypt(json.dumps(payload)), ex=600)
        with web.client.session_transaction() as session:
            session["xero_pending"] = pending
        response = web.client.post("/xero/choose", data={"tenant_id": "t-1", "csrf_token": token_of(web)})
        assert response.status_code == status, f"{role}: choose for B → {response.status_code}"
        after = fingerprint(db, redis_conn)
        assert changed(before, after) == [], f"{role}: {changed(before, after)}"
