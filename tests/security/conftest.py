"""Two practices (A and B) with real rows of every kind a URL can name, users of every role, signed-in
clients, and a fingerprint of the whole database and queue state to prove a refused request changed nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from html.parser import HTMLParser

import pytest
from sqlalchemy import text

from tests.conftest import CsrfClient
from tests.support.servers import serve

PASSWORD = "correct horse battery"
_HASH: dict[str, str] = {}

# Text only practice B's rows carry: none of it may reach a user scoped to practice A.
B_MARKERS = ("Bravo Clinic", "Quentin Bravopatient", "INV-BRAVO-0042", "Bravo Books Ltd", "support.b@example.com",
             "Bravo Deep Tissue")
A_MARKERS = ("Alpha Clinic", "Agatha Alphapatient", "INV-ALPHA-0017", "Alpha Books Ltd", "staff.a@example.com",
             "Alpha Remedial")


def password_hash() -> str:
    """One scrypt hash of PASSWORD for every user (hashing is deliberately slow)."""
    if not _HASH:
        from webapp.auth.passwords import hash_password

        _HASH["h"] = hash_password(PASSWORD)
    return _HASH["h"]


@dataclass
class Side:
    """One practice's rows (ids), and the text its pages show."""

    practice_id: int
    job_id: int
    backfill_id: int
    connection_id: int
    user_id: int  # a support user scoped to this practice (not one of the signed-in clients)
    markers: tuple[str, ...]
    invite_token: str = ""

    def ids(self) -> dict[str, object]:
        return {"practice_id": self.practice_id, "job_id": self.job_id, "backfill_id": self.backfill_id,
                "connection_id": self.connection_id, "user_id": self.user_id}


@dataclass
class World:
    a: Side
    b: Side
    admin_id: int  # the admin of all practices
    users: dict[str, int] = field(default_factory=dict)


ROLES = {
    # name: (email, role, practice: "a" | "b" | None)
    "admin": ("admin@example.com", "admin", None),
    "support": ("support@example.com", "support", None),
    "admin_a": ("admin.a@example.com", "admin", "a"),
    "support_a": ("support.a@example.com", "support", "a"),
}


def _side(db, slug: str, name: str, patient: str, invoice: str, tenant: str, email: str, item: str) -> Side:
    from webapp import crypto
    from webapp.auth.invites import issue_invite
    from webapp.models import (
        Backfill,
        ClinikoRecord,
        Practice,
        SyncAttempt,
        SyncJob,
        User,
        XeroAccount,
        XeroConnection,
        XeroTaxRate,
        utcnow,
    )

    practice = Practice(name=name, slug=slug, cliniko_api_key_encrypted=crypto.encrypt(f"key-{slug}-au1"),
                        cliniko_shard="au1", settings={}, poll_cursors={})
    db.session.add(practice)
    db.session.flush()
    connection = XeroConnection(practice_id=practice.id, tenant_id=f"tenant-{slug}", tenant_name=tenant,
                                connection_id=f"conn-{slug}", status="active",
                                access_token_encrypted=crypto.encrypt(f"access-{slug}"),
                                refresh_token_encrypted=crypto.encrypt(f"refresh-{slug}"),
                                access_expires_at=utcnow() + timedelta(minutes=25), scopes="offline_access")
    db.session.add(connection)
    db.session.flush()
    db.session.add_all([
        XeroAccount(connection_id=connection.id, account_id=f"{slug}-200", code="200", name="Sales",
                    type="REVENUE", status="ACTIVE"),
        XeroAccount(connection_id=connection.id, account_id=f"{slug}-090", code="090", name="Business Bank",
                    type="BANK", status="ACTIVE"),
        XeroTaxRate(connection_id=connection.id, tax_type="OUTPUT", name="GST on Income", status="ACTIVE",
                    effective_rate=Decimal("10")),
        ClinikoRecord(practice_id=practice.id, kind="billable_item", cliniko_id=f"{slug}-item", name=item, data={}),
    ])
    job = SyncJob(practice_id=practice.id, kind="invoice", cliniko_id=f"{slug}-1001", invoice_number=invoice,
                  patient_name=patient, amount=Decimal("120.00"), status="failed", error_category="mapping",
                  failure_reason=f"Account 250 is archived in Xero ({name}).", attempts=1,
                  issue_date=utcnow() - timedelta(days=2))
    db.session.add(job)
    db.session.flush()
    db.session.add(SyncAttempt(job_id=job.id, outcome="error", http_status=400, error="archived account",
                               request_body={"InvoiceNumber": invoice, "Contact": {"Name": patient}},
                               started_at=utcnow() - timedelta(hours=1), finished_at=utcnow()))
    backfill = Backfill(practice_id=practice.id, from_date=date.today() - timedelta(days=90), state="running",
                        started_at=utcnow())
    db.session.add(backfill)
    user = User(email=email, password_hash=password_hash(), role="support", practice_id=practice.id)
    db.session.add(user)
    db.session.flush()
    token = issue_invite(user)
    db.session.commit()
    return Side(practice.id, job.id, backfill.id, connection.id, user.id, (), token)


# Nothing listens here: a request that should never leave the app fails at once instead of reaching the internet.
NOWHERE = "http://127.0.0.1:9"


@pytest.fixture
def world(app, db) -> World:
    """Practices A and B with a connection, accounts, a catalogue row, a failed job with an attempt, a running
    backfill and a scoped user each; and the users of ROLES."""
    from webapp.models import Practice, User

    app.config.update(
        XERO_CLIENT_ID="walk-client", XERO_CLIENT_SECRET="walk-secret",
        XERO_AUTHORIZE_URL=f"{NOWHERE}/identity/connect/authorize", XERO_TOKEN_URL=f"{NOWHERE}/connect/token",
        XERO_REVOKE_URL=f"{NOWHERE}/connect/revocation", XERO_CONNECTIONS_URL=f"{NOWHERE}/connections",
        XERO_API_URL=f"{NOWHERE}/api.xro/2.0", XERO_REDIRECT_URI="http://localhost/xero/callback",
        CLINIKO_API_URL=f"{NOWHERE}/v1",
    )

    a = _side(db, "alpha", "Alpha Clinic", "Agatha Alphapatient", "INV-ALPHA-0017", "Alpha Books Ltd",
              "staff.a@example.com", "Alpha Remedial")
    b = _side(db, "bravo", "Bravo Clinic", "Quentin Bravopatient", "INV-BRAVO-0042", "Bravo Books Ltd",
              "support.b@example.com", "Bravo Deep Tissue")
    a.markers, b.markers = A_MARKERS, B_MARKERS
    ids = {}
    for name, (email, role, scope) in ROLES.items():
        practice_id = {"a": a.practice_id, "b": b.practice_id, None: None}[scope]
        user = User(email=email, password_hash=password_hash(), role=role, practice_id=practice_id)
        db.session.add(user)
        db.session.flush()
        ids[name] = user.id
    db.session.commit()
    assert db.session.get(Practice, a.practice_id).name == "Alpha Clinic"
    return World(a=a, b=b, admin_id=ids["admin"], users=ids)


@pytest.fixture
def cliniko_url(app, world):
    """Sandbox Cliniko on a real port (knowing none of our keys: a test of the key answers 401 at once)."""
    from sandbox.cliniko.app import create_app

    with serve(create_app(api_key="sandbox-only-key-au1", patients=2, invoices=2)) as url:
        app.config["CLINIKO_API_URL"] = f"{url}/v1"
        yield url


_ip = iter(range(1, 250))


def signed_in(app, role: str | None) -> CsrfClient:
    """A client of its own (own address, own cookies) signed in as ROLES[role]; None = anonymous."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = f"10.77.0.{next(_ip) % 250 + 1}"
    web = CsrfClient(client)
    if role is not None:
        email = ROLES[role][0]
        response = web.login(email, PASSWORD)
        assert response.status_code == 302, f"{role} could not sign in: {response.status_code}"
    return web


class _Clients(dict):
    """Signed-in clients by role name, each signed in when first asked for ("anonymous": not signed in)."""

    def __init__(self, app):
        super().__init__()
        self.app = app

    def __missing__(self, role: str) -> CsrfClient:
        web = signed_in(self.app, None if role == "anonymous" else role)
        self[role] = web
        return web


@pytest.fixture
def clients(app, world) -> dict[str, CsrfClient]:
    """One client per role of ROLES, plus "anonymous"."""
    return _Clients(app)


def token_of(web: CsrfClient) -> str:
    """A valid CSRF token for this client's session (from the login page or, signed in, the dashboard)."""
    page = web.client.get("/login", follow_redirects=False)
    path = "/login" if page.status_code == 200 else "/"
    return web.csrf_token(path)


def fingerprint(db, redis_conn) -> dict[str, str]:
    """A digest of every table's rows and of the RQ keys in Redis (what any effect would change)."""
    tables = [t.name for t in db.metadata.sorted_tables]
    columns = ", ".join(
        f"(SELECT md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) FROM {name} x) AS \"{name}\""  # noqa: S608
        for name in tables)  # (our own table names)
    with db.engine.connect() as conn:
        row = conn.execute(text(f"SELECT {columns}")).mappings().one()  # noqa: S608 - our own table names
    out = dict(row)
    out["redis:rq"] = ",".join(sorted(k.decode() for k in redis_conn.scan_iter("rq:*")
                                      if not k.decode().startswith("rq:workers")))
    return out


def changed(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(k for k in before if before[k] != after.get(k))


class _ScriptFinder(HTMLParser):
    """Collects what a CSP without 'unsafe-inline' would block: inline <script> bodies, on…= handler
    attributes and javascript: URLs (parsed as a browser would, so escaped text inside attributes is text)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self._inline: str | None = None

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"<{tag} {name}=…> handler")
            if name in ("href", "src", "action", "formaction") and (value or "").strip().lower().startswith(
                    "javascript:"):
                self.problems.append(f"<{tag} {name}={value!r}>")
        if tag == "script" and not values.get("src") and "json" not in (values.get("type") or ""):
            self._inline = ""

    def handle_data(self, data):
        if self._inline is not None:
            self._inline += data

    def handle_endtag(self, tag):
        if tag == "script" and self._inline is not None:
            if self._inline.strip():
                self.problems.append(f"inline <script>: {self._inline.strip()[:100]!r}")
            self._inline = None


def inline_script_problems(html: str) -> list[str]:
    """Inline <script> blocks, on…= handler attributes and javascript: URLs (all blocked by the CSP)."""
    finder = _ScriptFinder()
    finder.feed(html)
    finder.close()
    return finder.problems


def header_problems(response) -> list[str]:
    """What is missing from the security headers of one response."""
    problems = []
    csp = response.headers.get("Content-Security-Policy", "")
    directives = {d.strip().split(" ", 1)[0]: d.strip() for d in csp.split(";") if d.strip()}
    script = directives.get("script-src") or directives.get("default-src", "")
    if not script:
        problems.append("no script-src/default-src in the CSP")
    if "'unsafe-inline'" in script or "'unsafe-eval'" in script or "*" in script.split():
        problems.append(f"script-src allows inline/eval/any: {script}")
    if "frame-ancestors 'none'" not in csp:
        problems.append("CSP lacks frame-ancestors 'none'")
    if response.headers.get("X-Frame-Options") != "DENY":
        problems.append(f"X-Frame-Options is {response.headers.get('X-Frame-Options')!r}")
    if response.headers.get("X-Content-Type-Options") != "nosniff":
        problems.append(f"X-Content-Type-Options is {response.headers.get('X-Content-Type-Options')!r}")
    return problems
