"""The route inventory the security walks use: every rule of `app.url_map`, who may use it, and how to fill
its URL parameters from real rows.

A new route is covered without editing this file: it is walked anonymously, without a CSRF token, as a
support user (where it is treated as admin-only unless listed in SUPPORT_ALLOWED) and with the other
practice's ids. A route with a URL parameter of a new name fails `fill()` until PARAMS learns the name,
so no route is silently skipped.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

from werkzeug.routing import Rule

# Reachable without signing in.
PUBLIC = frozenset({"health.healthz", "auth.login", "invites.accept", "static", "admin.static"})

# What a signed-in support user may do (SPEC §8: read everything in scope, diagnostics, re-queue one row).
# Everything else that needs a login is admin-only: 403 for support users.
SUPPORT_ALLOWED: dict[str, frozenset[str]] = {
    "admin.index": frozenset({"GET"}),
    "activity.index": frozenset({"GET"}),
    "backfill.index": frozenset({"GET"}),
    "backfill.practice_page": frozenset({"GET"}),
    "backfill.progress_json": frozenset({"GET"}),
    "jobs.index": frozenset({"GET"}),
    "jobs.detail": frozenset({"GET"}),
    "jobs.export": frozenset({"GET"}),
    "jobs.requeue_one": frozenset({"POST"}),
    "practices.index": frozenset({"GET"}),
    "practices.detail": frozenset({"GET"}),
    "practices.cliniko_test": frozenset({"POST"}),  # reads Cliniko with the stored key; changes nothing
    "practice_mappings.index": frozenset({"GET"}),
    "practice_routing.index": frozenset({"GET"}),  # read-only for support users
    "practice_settings.index": frozenset({"GET"}),
    "reconcile.index": frozenset({"GET"}),
    "settings.index": frozenset({"GET"}),
    "auth.logout": frozenset({"POST"}),
}

# Steps of the Xero OAuth flow: refused (400) unless this session started the flow (tested in test_oauth.py).
OAUTH_FLOW = frozenset({"xero.callback", "xero.choose"})

# Admin screens only for admins of all practices: 403 for a practice-scoped admin.
UNSCOPED_ADMIN_ONLY = frozenset({"system.index", "practices.create"})

# URL parameters that name a row of one practice (substituted by the other practice's row in the scope walk).
SCOPED_PARAMS = ("practice_id", "job_id", "backfill_id", "connection_id", "user_id")
# Parameters that name no practice's data.
FIXED_PARAMS = {"kind": "billable_item"}


def methods(rule: Rule) -> list[str]:
    """The methods a rule answers (HEAD and OPTIONS aside), GET first."""
    return sorted(rule.methods - {"HEAD", "OPTIONS"}, key=lambda m: (m != "GET", m))


def app_rules(app) -> list[Rule]:
    """Every rule of the app, in a stable order (logout last: it ends the session)."""
    rules = sorted(app.url_map.iter_rules(), key=lambda r: (r.endpoint == "auth.logout", r.rule))
    return rules


def support_may(endpoint: str, method: str) -> bool:
    return method in SUPPORT_ALLOWED.get(endpoint, frozenset())


def fill(rule: Rule, values: dict[str, object]) -> str:
    """The rule's path with its parameters taken from `values` (then FIXED_PARAMS)."""
    args = {}
    for name in rule.arguments:
        if name in values:
            args[name] = values[name]
        elif name in FIXED_PARAMS:
            args[name] = FIXED_PARAMS[name]
        else:
            raise AssertionError(
                f"{rule.rule} ({rule.endpoint}) has a URL parameter {name!r} the security walks cannot fill: "
                "add it to tests/security/routes.py (SCOPED_PARAMS if it names a practice's row)")
    built = rule.build(args, append_unknown=False)
    assert built is not None, f"cannot build {rule.rule} from {args}"
    return built[1]


@dataclass(frozen=True)
class Probe:
    """One URL to try: the rule, the path, and which of its parameters came from the other practice."""

    rule: Rule
    path: str
    foreign: tuple[str, ...]


def foreign_probes(rule: Rule, own: dict[str, object], other: dict[str, list]) -> Iterator[Probe]:
    """Every way of putting the other practice's ids into the rule's scoped parameters (own ids elsewhere);
    at least one parameter is foreign in each. `other[name]` lists foreign values for that parameter."""
    names = [n for n in SCOPED_PARAMS if n in rule.arguments]
    unknown = set(rule.arguments) - set(SCOPED_PARAMS) - set(FIXED_PARAMS) - {"filename", "token"}
    assert not unknown, f"{rule.rule}: teach tests/security/routes.py the parameter(s) {sorted(unknown)}"
    choices = [[(n, own[n], False)] + [(n, v, True) for v in other[n]] for n in names]
    for combo in itertools.product(*choices):
        foreign = tuple(n for n, _, is_foreign in combo if is_foreign)
        if not foreign:
            continue
        values = dict(own)
        values.update({n: v for n, v, _ in combo})
        yield Probe(rule, fill(rule, values), foreign)


def form_for(endpoint: str, ids: dict[str, object]) -> dict:
    """A plausible, complete form for each POST endpoint (CSRF token aside), so that a refusal seen in
    the walks is the gate's doing, not a validation error."""
    forms = {
        "auth.login": {"email": "admin@example.com", "password": "correct horse battery"},
        "invites.accept": {"password": "a new password 123", "confirm": "a new password 123"},
        "jobs.bulk": {"action": "requeue", "ids": [str(ids.get("job_id", 1))]},
        "jobs.requeue_all": {"practice": str(ids.get("practice_id", "")), "state": "failed"},
        "jobs.ignore_one": {"reason": "security walk"},
        "practices.create": {"name": "Walk Clinic", "slug": "walk-clinic", "cliniko_api_key": "walkkey-au1",
                             "time_zone": "Australia/Sydney"},
        "practices.cliniko_key": {"cliniko_api_key": "replaced-key-au2"},
        "practices.defaults": {"sales_account": "200", "payment_account": "090", "rounding_account": "",
                               "tax_exempt": ""},
        "practices.sync_toggle": {"enabled": "0"},
        "backfill.start": {"since": "2024-01-01"},
        "practice_settings.index": {"invoice_status": "DRAFT"},
        "users.create": {"email": "walker@example.com", "role": "admin", "practice": ""},
        "users.edit": {"role": "admin", "practice": ""},
        "xero.choose": {"tenant_id": "00000000-0000-0000-0000-000000000000"},
    }
    return dict(forms.get(endpoint, {}))
