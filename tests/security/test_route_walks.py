"""Role and practice scoping on every route, found by walking `app.url_map` (SPEC §8, §13).

- anonymous: every non-public route redirects to /login (or 401/404), never 200, never with data;
- support users: admin-only routes 403 (GET and POST) and nothing changes; allowed routes 200;
- admins: every page renders (200) for an admin of all practices and for a practice-scoped admin,
  who sees none of practice B's data;
- practice-A-scoped admin and support: B's practice, job, backfill, connection and user ids put into every
  URL parameter (alone and mixed with A's) give 404 (support: 403 or 404), nothing changes, no B data;
  an admin of all practices gets 404 for mismatched pairs (A's practice with B's backfill or connection);
- query strings and form fields naming B's rows (filters, bulk ids, user scope) leak nothing and change nothing.

Every response of every walk is also checked for the security headers, and every HTML page for inline script.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.security.conftest import (
    changed,
    fingerprint,
    header_problems,
    inline_script_problems,
    token_of,
)
from tests.security.routes import (
    FIXED_PARAMS,
    OAUTH_FLOW,
    PUBLIC,
    SCOPED_PARAMS,
    SUPPORT_ALLOWED,
    UNSCOPED_ADMIN_ONLY,
    app_rules,
    fill,
    foreign_probes,
    form_for,
    methods,
    support_may,
)

SECRETS = ("key-alpha-au1", "key-bravo-au1", "access-alpha", "refresh-alpha", "access-bravo", "refresh-bravo",
           "walk-secret")


def send(web, method: str, path: str, data: dict | None = None):
    # buffered: a streamed body (the CSV export) runs to the end inside the request's own context.
    response = web.client.open(path, method=method, data=data if method == "POST" else None, buffered=True)
    problems = header_problems(response)
    assert not problems, f"{method} {path} → {response.status_code}: {problems}"
    if response.mimetype == "text/html":
        html = response.get_data(as_text=True)
        inline = inline_script_problems(html)
        assert not inline, f"{method} {path}: {inline}"
    return response


def text_of(response) -> str:
    return response.get_data(as_text=True) + " " + response.headers.get("Location", "")


def leaked(response, markers) -> list[str]:
    body = text_of(response)
    return [m for m in markers if m in body]


def static_file(rule) -> str:
    if rule.endpoint == "static":
        return "app.css"
    return "admin/css/bootstrap4/admin.css"


def url_for_walk(rule, world, side="a") -> str:
    own = getattr(world, side)
    values = dict(own.ids())
    values["token"] = own.invite_token
    values["filename"] = static_file(rule)
    return fill(rule, values)


# -- inventory ----------------------------------------------------------------------------------------------

def test_every_route_is_walkable_and_the_policy_names_only_real_endpoints(app, world):
    rules = app_rules(app)
    endpoints = {r.endpoint for r in rules}
    assert len(rules) >= 40, "the URL map looks truncated"
    for rule in rules:
        assert url_for_walk(rule, world).startswith("/")
        unknown = set(rule.arguments) - set(SCOPED_PARAMS) - set(FIXED_PARAMS) - {"filename", "token"}
        assert not unknown, f"{rule.rule}: parameter(s) {unknown} unknown to tests/security/routes.py"
    stale = (set(SUPPORT_ALLOWED) | OAUTH_FLOW | UNSCOPED_ADMIN_ONLY | PUBLIC) - endpoints
    assert not stale, f"policy names endpoints that no longer exist: {stale}"
    # Every POST route is a change; every change needs a login except signing in and accepting an invitation.
    assert {r.endpoint for r in rules if "POST" in r.methods} & PUBLIC == {"auth.login", "invites.accept"}


# -- anonymous ----------------------------------------------------------------------------------------------

def test_anonymous_walk_reaches_nothing_but_the_public_routes(app, world, clients, db, redis_conn):
    web = clients["anonymous"]
    token = token_of(web)
    before = fingerprint(db, redis_conn)
    walked = 0
    for rule in app_rules(app):
        path = url_for_walk(rule, world)
        for method in methods(rule):
            if rule.endpoint in PUBLIC:
                continue
            data = {**form_for(rule.endpoint, world.a.ids()), "csrf_token": token}
            response = send(web, method, path, data)
            walked += 1
            assert response.status_code in (302, 401, 404), f"anonymous {method} {path} → {response.status_code}"
            if response.status_code == 302:
                location = urlsplit(response.headers["Location"])
                assert location.netloc in ("", "localhost") and location.path == "/login", \
                    f"anonymous {method} {path} → {response.headers['Location']}"
            assert not leaked(response, world.a.markers + world.b.markers), f"anonymous {method} {path} leaks"
    assert walked >= 40
    assert changed(before, fingerprint(db, redis_conn)) == []


def test_public_routes_answer_without_login_and_show_no_practice_data(app, world, clients):
    web = clients["anonymous"]
    for rule in app_rules(app):
        if rule.endpoint not in PUBLIC:
            continue
        path = url_for_walk(rule, world)
        response = send(web, "GET", path)
        assert response.status_code == 200, f"{path} → {response.status_code}"
        assert not leaked(response, world.a.markers[:4] + world.b.markers), f"{path} shows practice data"
    # An invitation page needs a real, unexpired token: a guessed one is 404.
    assert send(web, "GET", "/invite/not-a-real-token").status_code == 404
    health = send(web, "GET", "/healthz")
    assert health.is_json and set(health.get_json()) <= {"status", "database", "redis", "ok", "checks", "version"}


# -- support users ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("role", ["support", "support_a"])
def test_support_walk_admin_only_routes_are_403_and_change_nothing(app, world, clients, db, redis_conn, role,
                                                                  cliniko_url):
    web = clients[role]
    token = token_of(web)
    allowed_seen, refused_seen = set(), set()
    for rule in app_rules(app):
        if rule.endpoint in PUBLIC:
            continue
        path = url_for_walk(rule, world)
        for method in methods(rule):
            data = {**form_for(rule.endpoint, world.a.ids()), "csrf_token": token}
            before = fingerprint(db, redis_conn)
            response = send(web, method, path, data)
            status = response.status_code
            where = f"{role} {method} {path} ({rule.endpoint}) → {status}"
            if rule.endpoint in OAUTH_FLOW:
                assert status == 400, where
            elif support_may(rule.endpoint, method):
                allowed_seen.add(rule.endpoint)
                if method == "GET":
                    if status == 302:  # e.g. the backfill picker with one practice in scope: go to it
                        target = response.headers["Location"]
                        assert urlsplit(target).netloc in ("", "localhost"), where
                        status = send(web, "GET", target).status_code
                    assert status == 200, where
                else:
                    assert status in (302, 303), where
                continue
            else:
                refused_seen.add(rule.endpoint)
                assert status == 403, where
            assert changed(before, fingerprint(db, redis_conn)) == [], f"{where} changed data"
    assert allowed_seen == set(SUPPORT_ALLOWED)
    assert {"users.index", "users.create", "system.index", "jobs.bulk", "jobs.ignore_one", "practices.defaults",
            "practice_settings.index", "practice_mappings.save", "xero.connect", "xero.disconnect_view",
            "backfill.start", "backfill.cancel"} <= refused_seen


# -- admins: every page renders -----------------------------------------------------------------------------

@pytest.mark.parametrize("role", ["admin", "admin_a"])
def test_admin_walk_every_page_renders(app, world, clients, role):
    """GET every route as an admin (all practices / practice A): pages render, A-scoped ones show no B data.
    (The HTML of each is checked for inline script and each response for the headers, in send().)"""
    web = clients[role]
    rendered = 0
    for rule in app_rules(app):
        if "GET" not in rule.methods or rule.endpoint in PUBLIC:
            continue
        path = url_for_walk(rule, world)
        response = send(web, "GET", path)
        status, where = response.status_code, f"{role} GET {path} ({rule.endpoint})"
        if rule.endpoint in OAUTH_FLOW:
            assert status == 400, where
        elif rule.endpoint == "xero.connect":
            assert status == 302 and response.headers["Location"].startswith(app.config["XERO_AUTHORIZE_URL"])
        elif role == "admin_a" and rule.endpoint in UNSCOPED_ADMIN_ONLY:
            assert status == 403, where
        elif status == 302:
            target = response.headers["Location"]
            assert urlsplit(target).netloc in ("", "localhost"), where
            assert send(web, "GET", target).status_code == 200, where
        else:
            assert status == 200, where
            rendered += 1
        if role == "admin_a":
            shown = leaked(response, world.b.markers)
            assert not shown, f"{where} shows practice B: {shown}"
        # Stored secrets (the world's Cliniko keys and Xero tokens) never reach a page.
        assert not leaked(response, SECRETS), f"{where} shows a secret: {leaked(response, SECRETS)}"
    assert rendered >= (18 if role == "admin" else 16)


# -- practice B's ids in practice A's hands ------------------------------------------------------------------

def _foreign_values(world, role: str) -> dict[str, list]:
    b = world.b
    return {"practice_id": [b.practice_id], "job_id": [b.job_id], "backfill_id": [b.backfill_id],
            "connection_id": [b.connection_id],
            # Users of B, and users of no practice (the admin and support of all practices).
            "user_id": [b.user_id, world.users["admin"], world.users["support"]]}


@pytest.mark.parametrize("role", ["admin_a", "support_a"])
def test_practice_b_ids_are_404_for_practice_a_users(app, world, clients, db, redis_conn, role):
    web = clients[role]
    token = token_of(web)
    probes = 0
    for rule in app_rules(app):
        if not set(rule.arguments) & set(SCOPED_PARAMS):
            continue
        for probe in foreign_probes(rule, world.a.ids(), _foreign_values(world, role)):
            for method in methods(rule):
                ids = {**world.a.ids(), **{n: world.b.ids()[n] for n in probe.foreign}}
                data = {**form_for(rule.endpoint, ids), "csrf_token": token}
                before = fingerprint(db, redis_conn)
                response = send(web, method, probe.path, data)
                probes += 1
                status = response.status_code
                where = f"{role} {method} {probe.path} ({rule.endpoint}, foreign {probe.foreign}) → {status}"
                # A support user may meet the role gate (403) before the scope check on admin-only routes.
                expected = {404} if role == "admin_a" or support_may(rule.endpoint, method) else {403, 404}
                assert status in expected, where
                assert changed(before, fingerprint(db, redis_conn)) == [], f"{where} changed data"
                assert not leaked(response, world.b.markers), f"{where} shows practice B"
    assert probes >= 40


def test_mismatched_practice_and_child_ids_are_404_even_for_an_admin_of_all_practices(
        app, world, clients, db, redis_conn):
    """/practices/A/xero/<B's connection>/…, /backfill/A/<B's backfill>/… and the reverse: 404, no effect."""
    web = clients["admin"]
    token = token_of(web)
    probes = 0
    for rule in app_rules(app):
        names = [n for n in ("backfill_id", "connection_id") if n in rule.arguments]
        if "practice_id" not in rule.arguments or not names:
            continue
        for parent, child in (("a", "b"), ("b", "a")):
            values = {**getattr(world, parent).ids(), **{n: getattr(world, child).ids()[n] for n in names}}
            path = fill(rule, values)
            for method in methods(rule):
                before = fingerprint(db, redis_conn)
                response = send(web, method, path, {**form_for(rule.endpoint, values), "csrf_token": token})
                probes += 1
                assert response.status_code == 404, f"admin {method} {path} → {response.status_code}"
                assert changed(before, fingerprint(db, redis_conn)) == []
    assert probes >= 8


@pytest.mark.parametrize("role", ["admin_a", "support_a"])
def test_practice_b_named_in_query_strings_and_forms_leaks_and_changes_nothing(
        app, world, clients, db, redis_conn, role):
    web = clients[role]
    token = token_of(web)
    b = world.b
    query = (f"?practice={b.practice_id}&practice_id={b.practice_id}&q=INV-BRAVO-0042&by=invoice"
             f"&run=1&state=failed")
    for rule in app_rules(app):
        if rule.arguments or "GET" not in rule.methods or rule.endpoint in PUBLIC | OAUTH_FLOW:
            continue
        response = send(web, "GET", rule.rule + query)
        where = f"{role} GET {rule.rule}{query} → {response.status_code}"
        assert response.status_code < 500, where
        # An HTML page echoes the search term back into its form and links; B's other text must not appear,
        # nor B's row. A CSV echoes nothing, so there even the invoice number counts.
        markers = [m for m in b.markers if response.mimetype != "text/html" or m != "INV-BRAVO-0042"]
        assert not leaked(response, markers), f"{where} shows practice B: {leaked(response, markers)}"
        assert f'data-job-id="{b.job_id}"' not in response.get_data(as_text=True), where
    # Patient search finds nothing of B's either.
    response = send(web, "GET", "/jobs/?q=Quentin+Bravopatient&by=patient")
    assert response.status_code == 200 and f'data-job-id="{b.job_id}"' not in response.get_data(as_text=True)
    assert not leaked(response, [m for m in b.markers if m != "Quentin Bravopatient"])
    # The control: the admin of all practices does find B's row by the same searches.
    for search in ("/jobs/?q=INV-BRAVO-0042&by=invoice", "/jobs/?q=Quentin+Bravopatient&by=patient"):
        assert f'data-job-id="{b.job_id}"' in send(clients["admin"], "GET", search).get_data(as_text=True)

    a_user = world.a.user_id
    attempts = [
        ("/jobs/bulk", {"action": "requeue", "ids": [str(b.job_id)]}),
        ("/jobs/bulk", {"action": "requeue", "ids": [str(world.a.job_id), str(b.job_id)]}),
        ("/jobs/bulk", {"action": "ignore", "reason": "x", "ids": [str(b.job_id)]}),
        ("/jobs/requeue-all", {"practice": str(b.practice_id), "state": "failed"}),
        ("/users/new", {"email": "sneaky@example.com", "role": "admin", "practice": str(b.practice_id)}),
        ("/users/new", {"email": "sneaky@example.com", "role": "admin", "practice": ""}),
        (f"/users/{a_user}/edit", {"role": "admin", "practice": str(b.practice_id)}),
        (f"/users/{a_user}/edit", {"role": "admin", "practice": ""}),
    ]
    for path, form in attempts:
        before = fingerprint(db, redis_conn)
        response = send(web, "POST", path, {**form, "csrf_token": token})
        where = f"{role} POST {path} {form} → {response.status_code}"
        assert response.status_code in (400, 403, 404), where
        assert changed(before, fingerprint(db, redis_conn)) == [], f"{where} changed data"
        assert not leaked(response, b.markers), where
