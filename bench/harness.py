"""Shared plumbing for the bench programs: services, own database and Redis index, sandboxes, web app,
OAuth connect over HTTP, CLI calls, worker processes, progress polling, and stopping it all.

Nothing here imports the application: it runs `flask --app wsgi …`, `python -m jobs.worker` and the
sandboxes as subprocesses and talks HTTP to them (`Stack.flask_batch` runs many CLI commands in one
child process, `python bench/harness.py cli-batch`, which imports the app there). Postgres is read
(and, for the few settings that have no CLI yet, written) through psycopg.
"""

from __future__ import annotations

import base64
import json
import os
import platform
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis
import requests

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
FLASK = [PYTHON, "-m", "flask", "--app", "wsgi"]
# Each program has its own database and Redis index (so two programs may run at once); env overrides.
BENCH_DB = os.environ.get("BENCH_DB_NAME")
BENCH_REDIS_DB = os.environ.get("BENCH_REDIS_DB")
CLINIKO_KEY = "sandbox-key-au1"
ADMIN_EMAIL = "bench@example.com"
ADMIN_PASSWORD = "bench-password-123"
TAX_MAP = {"GST": "OUTPUT", "GST Free": "EXEMPTOUTPUT"}
HUGE = 10**9


def log(*args) -> None:
    print("[bench]", *args, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def machine() -> dict:
    """What the figures were measured on."""
    info = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()}
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    with suppress(OSError):
        info["loadavg_at_start"] = [round(x, 2) for x in os.getloadavg()]
    return info


def _proc_cpu(pid: int, children: bool = False) -> float:
    """CPU seconds (user + system) of a process; with `children`, plus those of its children it has reaped."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if children else 0)
    return ticks / os.sysconf("SC_CLK_TCK")


def _postgres_cpu() -> float:
    """CPU seconds of the machine's PostgreSQL: live backends plus those the postmaster has reaped."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if "(postgres)" in stat:
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            postmaster = "(postgres)" not in _read(f"/proc/{ppid}/stat")  # the others are its children
            total += _proc_cpu(int(entry.name), children=postmaster)
    return total


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def services_env() -> dict:
    """DATABASE_URL / REDIS_URL from the environment, else from `scripts/services.sh up`."""
    if os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL"):
        return {"DATABASE_URL": os.environ["DATABASE_URL"], "REDIS_URL": os.environ["REDIS_URL"]}
    out = subprocess.run([str(ROOT / "scripts/services.sh"), "up"], cwd=ROOT, check=True, capture_output=True,
                         text=True, timeout=300).stdout
    env = {}
    for line in out.splitlines():
        m = re.match(r"export (\w+)=(.*)$", line.strip())
        if m:
            env[m.group(1)] = shlex.split(m.group(2))[0] if m.group(2) else ""
    return env


def with_db(url: str, name: str) -> str:
    parts = urlsplit(url.replace("postgres://", "postgresql://", 1))
    return urlunsplit(parts._replace(path="/" + name))


def with_redis_db(url: str, index: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{index}"))


class Stack:
    """Everything one bench run starts; a context manager that stops it all (also on Ctrl-C / SIGTERM)."""

    def __init__(self, *, db: str = "cliniko_xero_bench", redis_db: int = 9, window: float = 60.0,
                 env: dict | None = None, fresh: bool = True):
        self.db_name = BENCH_DB or db
        self.redis_db = int(BENCH_REDIS_DB or redis_db)
        self.window = window
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.logdir = ROOT / ".run" / "bench" / self.db_name
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.fresh = fresh
        self.extra_env = dict(env or {})
        self._sql_conn: psycopg.Connection | None = None

    # --- lifecycle -------------------------------------------------------------------------------
    def __enter__(self) -> Stack:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        base = services_env()
        self.database_url = with_db(base["DATABASE_URL"], self.db_name)
        self.redis_url = with_redis_db(base["REDIS_URL"], self.redis_db)
        key = base64.urlsafe_b64encode(os.urandom(32)).decode()
        self.env = {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "SECRET_KEY": base64.urlsafe_b64encode(os.urandom(24)).decode(),
            "TOKEN_ENCRYPTION_KEYS": key,
            "CLINIKO_USER_AGENT": "Cliniko Xero Sync bench (bench@example.com)",
            "SESSION_COOKIE_SECURE": "0",
            "XERO_CLIENT_ID": "sandbox-client",
            "XERO_CLIENT_SECRET": "sandbox-secret",
            "XERO_RATE_WINDOW_SECONDS": str(self.window),
            "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }
        self.env.pop("TEST_DATABASE_URL", None)
        if self.fresh:
            self._fresh_database(base["DATABASE_URL"])
        redis.Redis.from_url(self.redis_url).flushdb()
        self.flask("db", "upgrade", timeout=300)
        return self

    def __exit__(self, *exc) -> None:
        if self._sql_conn is not None:
            self._sql_conn.close()
        self.stop_all()

    def _fresh_database(self, admin_url: str) -> None:
        with psycopg.connect(with_db(admin_url, "postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{self.db_name}"')

    def spawn(self, name: str, argv: list[str], env: dict | None = None) -> subprocess.Popen:
        logfile = open(self.logdir / f"{name}.log", "w")  # noqa: SIM115 (kept open for the child)
        proc = subprocess.Popen(argv, cwd=ROOT, env=env or self.env, stdout=logfile, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs.append((name, proc))
        return proc

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds used so far by role: the worker processes (with the work horses they forked and reaped),
        each sandbox, the web app and PostgreSQL. Taken before and after a run, the difference says where the
        machine's cores went, a share that this shared machine's varying speed does not blur as much as
        elapsed times."""
        roles: dict[str, float] = {}
        for name, proc in self.procs:
            role = "workers" if name.startswith("worker") else name
            roles[role] = roles.get(role, 0.0) + _proc_cpu(proc.pid, children=True)
        roles["postgres"] = _postgres_cpu()
        roles["bench_and_cli"] = _proc_cpu(os.getpid(), children=True)
        return roles

    @staticmethod
    def cpu_used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        return {role: round(after.get(role, 0.0) - before.get(role, 0.0), 2) for role in after}

    def stop(self, proc: subprocess.Popen, timeout: float = 15) -> None:
        if proc.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        self.procs = [(n, p) for n, p in self.procs if p is not proc]

    def stop_all(self) -> None:
        for _name, proc in reversed(list(self.procs)):
            with suppress(Exception):
                self.stop(proc)

    # --- CLI -------------------------------------------------------------------------------------
    def flask(self, *args: str, timeout: float = 600, env: dict | None = None) -> str:
        result = subprocess.run([*FLASK, *args], cwd=ROOT, env=env or self.env, capture_output=True, text=True,
                                timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"flask {' '.join(args)} failed ({result.returncode}): "
                               f"{result.stderr.strip()[-2000:]}")
        return result.stdout

    def sql(self, query: str, params: tuple = (), fetch: bool = True):
        """Run one statement on the bench's own connection (kept open: a connection a poll would cost Postgres
        a new backend process each time)."""
        if self._sql_conn is None or self._sql_conn.closed:
            self._sql_conn = psycopg.connect(self.database_url, autocommit=True)
        try:
            cur = self._sql_conn.execute(query, params)
        except psycopg.OperationalError:  # e.g. the database was restarted: once more on a new connection
            self._sql_conn = psycopg.connect(self.database_url, autocommit=True)
            cur = self._sql_conn.execute(query, params)
        return cur.fetchall() if fetch and cur.description else None

    # --- sandboxes and web -----------------------------------------------------------------------
    def start_xero(self, *, window: float, limits: dict | None = None, auto_consent: bool = True) -> str:
        port = free_port()
        self.spawn("sandbox-xero", [PYTHON, "-m", "sandbox.xero", "--port", str(port), "--window-seconds",
                                    str(window), *(["--auto-consent"] if auto_consent else [])])
        self.xero_url = f"http://127.0.0.1:{port}"
        wait_http(f"{self.xero_url}/_sandbox/state?summary=1")
        if limits:
            requests.post(f"{self.xero_url}/_sandbox/limits", json=limits, timeout=10).raise_for_status()
        self.env.update({
            "XERO_AUTHORIZE_URL": f"{self.xero_url}/identity/connect/authorize",
            "XERO_TOKEN_URL": f"{self.xero_url}/connect/token",
            "XERO_REVOKE_URL": f"{self.xero_url}/connect/revocation",
            "XERO_CONNECTIONS_URL": f"{self.xero_url}/connections",
            "XERO_API_URL": f"{self.xero_url}/api.xro/2.0",
        })
        return self.xero_url

    def start_cliniko(self, *, seed: int, patients: int, invoices: int, calls_per_minute: int = 200) -> str:
        port = free_port()
        self.spawn("sandbox-cliniko", [PYTHON, "-m", "sandbox.cliniko", "--port", str(port), "--seed", str(seed),
                                       "--patients", str(patients), "--invoices", str(invoices),
                                       "--calls-per-minute", str(calls_per_minute)])
        self.cliniko_url = f"http://127.0.0.1:{port}"
        wait_http(f"{self.cliniko_url}/_sandbox/state", timeout=300)
        self.env["CLINIKO_API_URL"] = f"{self.cliniko_url}/v1"
        return self.cliniko_url

    def xero_state(self, summary: bool = False) -> dict:
        r = requests.get(f"{self.xero_url}/_sandbox/state", params={"summary": 1} if summary else None, timeout=120)
        r.raise_for_status()
        return r.json()

    def xero_org(self, summary: bool = False, name: str = "Demo Clinic Pty Ltd") -> dict:
        return next(o for o in self.xero_state(summary)["organisations"] if o["name"] == name)

    def cliniko_state(self, invoices: bool = False) -> dict:
        r = requests.get(f"{self.cliniko_url}/_sandbox/state", params={"invoices": 1} if invoices else None,
                         timeout=120)
        r.raise_for_status()
        return r.json()

    def connect_xero(self, practice_id: int) -> None:
        """Start the web app, log in, run the OAuth connect through it (sandbox auto-consent), stop it."""
        port = free_port()
        self.env["XERO_REDIRECT_URI"] = f"http://127.0.0.1:{port}/xero/callback"
        with suppress(RuntimeError):
            self.flask("users", "create", ADMIN_EMAIL, "--role", "admin", "--password", ADMIN_PASSWORD)
        web = self.spawn("web", [*FLASK, "run", "--host", "127.0.0.1", "--port", str(port)])
        base = f"http://127.0.0.1:{port}"
        try:
            wait_http(f"{base}/healthz")
            http = requests.Session()
            page = http.get(f"{base}/login", timeout=30)
            token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text) or re.search(
                r'value="([^"]+)"[^>]*name="csrf_token"', page.text)
            assert token, "no csrf_token on /login"
            r = http.post(f"{base}/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD,
                                                 "csrf_token": token.group(1)}, timeout=30, allow_redirects=False)
            assert r.status_code in (302, 303), f"login failed: {r.status_code}"
            r = http.get(f"{base}/practices/{practice_id}/xero/connect", timeout=30, allow_redirects=False)
            assert r.status_code in (302, 303), f"connect did not redirect: {r.status_code} {r.text[:300]}"
            consent = requests.get(r.headers["Location"], timeout=30, allow_redirects=False)
            assert consent.status_code in (302, 303), f"sandbox did not auto-consent: {consent.status_code}"
            callback = consent.headers["Location"]
            r = http.get(callback, timeout=60, allow_redirects=False)
            assert r.status_code in (302, 303), f"callback failed: {r.status_code} {r.text[:300]}"
        finally:
            self.stop(web)

    def connect_xero_many(self, items: list[tuple[int, str, str, str]], threads: int = 4) -> float:
        """Connect many practices through the web app's OAuth flow with sandbox Xero's login + consent pages.

        `items`: (practice_id, Xero user email, password, tenant_id). The sandbox must run without
        auto-consent. One web app, `threads` logged-in sessions working in parallel. Returns seconds taken.
        """
        from concurrent.futures import ThreadPoolExecutor
        from urllib.parse import parse_qs

        port = free_port()
        self.env["XERO_REDIRECT_URI"] = f"http://127.0.0.1:{port}/xero/callback"
        with suppress(RuntimeError):
            self.flask("users", "create", ADMIN_EMAIL, "--role", "admin", "--password", ADMIN_PASSWORD)
        web = self.spawn("web", [*FLASK, "run", "--host", "127.0.0.1", "--port", str(port), "--with-threads"])
        base = f"http://127.0.0.1:{port}"
        t0 = time.monotonic()

        def login() -> requests.Session:
            http = requests.Session()
            page = http.get(f"{base}/login", timeout=30)
            token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text) or re.search(
                r'value="([^"]+)"[^>]*name="csrf_token"', page.text)
            assert token, "no csrf_token on /login"
            r = http.post(f"{base}/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD,
                                                 "csrf_token": token.group(1)}, timeout=30, allow_redirects=False)
            assert r.status_code in (302, 303), f"login failed: {r.status_code}"
            return http

        def connect_one(http: requests.Session, item: tuple[int, str, str, str]) -> None:
            practice_id, email, password, tenant_id = item
            r = http.get(f"{base}/practices/{practice_id}/xero/connect", timeout=30, allow_redirects=False)
            assert r.status_code in (302, 303), f"connect did not redirect: {r.status_code} {r.text[:300]}"
            authorize = r.headers["Location"]
            oauth = {k: v[0] for k, v in parse_qs(urlsplit(authorize).query).items()}
            xero = requests.Session()  # the browser at Xero: login page, then consent page
            action = authorize.split("?", 1)[0]
            assert xero.get(authorize, timeout=30).status_code == 200, "no Xero login page"
            page = xero.post(action, data={**oauth, "step": "login", "email": email, "password": password},
                             timeout=30)
            ticket = re.search(r'name="login_ticket" value="([^"]+)"', page.text)
            assert ticket and tenant_id in page.text, f"no consent page for {email}: {page.text[:300]}"
            r = xero.post(action, data={**oauth, "step": "consent", "login_ticket": ticket.group(1),
                                        "tenant_id": tenant_id, "decision": "allow"},
                          timeout=30, allow_redirects=False)
            assert r.status_code in (302, 303), f"consent did not redirect: {r.status_code}"
            r = http.get(r.headers["Location"], timeout=60, allow_redirects=False)
            assert r.status_code in (302, 303), f"callback failed: {r.status_code} {r.text[:300]}"

        def worker(chunk: list) -> None:
            http = login()
            for item in chunk:
                connect_one(http, item)

        try:
            wait_http(f"{base}/healthz")
            chunks = [items[i::threads] for i in range(threads)]
            with ThreadPoolExecutor(threads) as pool:
                for future in [pool.submit(worker, c) for c in chunks if c]:
                    future.result()
        finally:
            self.stop(web)
        missing = self.sql("SELECT count(*) FROM practices p WHERE NOT EXISTS (SELECT 1 FROM xero_connections c "
                           "WHERE c.practice_id = p.id AND c.status = 'active') AND p.id = ANY(%s)",
                           ([i[0] for i in items],))[0][0]
        if missing:
            raise RuntimeError(f"{missing} practices have no active Xero connection after the connect")
        return time.monotonic() - t0

    def flask_batch(self, commands: list[list[str]], timeout: float = 1800) -> list[dict]:
        """Run many `flask --app wsgi …` commands in ONE child process (the same click commands through
        Flask's CLI runner), so 200 practices do not pay 200 × the app's start-up. Returns
        [{"args", "exit_code", "output"}]; raises on the first failure."""
        result = subprocess.run([PYTHON, str(Path(__file__).resolve()), "cli-batch"], cwd=ROOT, env=self.env,
                                input=json.dumps(commands), capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"cli-batch failed ({result.returncode}): {result.stderr.strip()[-3000:]}")
        return json.loads(result.stdout)

    def start_clock(self, env: dict | None = None) -> subprocess.Popen:
        """The clock process (`python -m jobs.clock`): polls, reaper, alerts… at the env's intervals."""
        return self.spawn("clock", [PYTHON, "-m", "jobs.clock"], env={**self.env, **(env or {})})

    # --- practice setup by CLI (plus SQL where no CLI exists yet) ---------------------------------
    def create_practice(self, slug: str, *, connect: bool = True, settings: dict | None = None) -> int:
        practice_id = int(self.flask("practices", "create", "--name", f"Bench {slug}", "--slug", slug,
                                     "--cliniko-api-key", CLINIKO_KEY).strip().splitlines()[-1])
        if settings:  # no CLI for practice settings such as sync_from: SQL (see bench/README.md)
            self.sql("UPDATE practices SET settings = coalesce(settings, '{}'::jsonb) || %s::jsonb WHERE id = %s",
                     (json.dumps(settings), practice_id), fetch=False)
        if connect:
            self.connect_xero(practice_id)
            self.flask("practices", "set-defaults", slug, "--sales-account", "200", "--payment-account", "090",
                       "--rounding-account", "860", "--tax-exempt", "EXEMPTOUTPUT")
        return practice_id

    def map_taxes(self, practice_id: int) -> int:
        """Tax mappings 'GST'→OUTPUT, 'GST Free'→EXEMPTOUTPUT (no CLI yet: SQL; needs the catalogue)."""
        rows = self.sql("SELECT cliniko_id, name FROM cliniko_catalogue WHERE practice_id = %s AND kind = 'tax'",
                        (practice_id,))
        n = 0
        for cliniko_id, name in rows:
            if name in TAX_MAP:
                self.sql("INSERT INTO mappings (practice_id, kind, cliniko_id, cliniko_name, tax_type, created_at, "
                         "updated_at) VALUES (%s, 'tax', %s, %s, %s, now(), now()) ON CONFLICT DO NOTHING",
                         (practice_id, cliniko_id, name, TAX_MAP[name]), fetch=False)
                n += 1
        return n

    def wire(self, slug: str) -> int:
        """A connected, defaulted, tax-mapped, enabled practice whose cursor starts now."""
        practice_id = self.create_practice(slug)
        self.flask("sync", "poll", slug)  # loads the Cliniko catalogue (cursor = now: no invoices)
        if self.map_taxes(practice_id) < len(TAX_MAP):
            raise RuntimeError("Cliniko taxes GST / GST Free not found in the catalogue")
        self.flask("practices", "enable", slug)
        return practice_id

    # --- workers and progress ----------------------------------------------------------------------
    def start_workers(self, n: int, env: dict | None = None, prefix: list[str] | None = None) -> list:
        procs = []
        for i in range(n):
            procs.append(self.spawn(f"worker-{i}", [*(prefix or [PYTHON]), "-m", "jobs.worker"],
                                    env={**self.env, **(env or {})}))
        return procs

    def progress(self, practice_id: int) -> dict:
        """The counts `sync status --json` prints, plus the stop condition, read with one SQL query."""
        counts: dict = {}
        for kind, status, n in self.sql("SELECT kind, status, count(*) FROM sync_jobs WHERE practice_id = %s "
                                        "GROUP BY kind, status", (practice_id,)):
            counts.setdefault(kind, {})[status] = n
        # Rows still waiting although what they wait for is synced (the reaper's business, not yet done). Looked
        # up only when something waits, from the waiting rows: the bench's own polling must not load the
        # machine it measures (the join the other way round took 300 ms, five times a second).
        waiting = any(kinds.get("waiting") for kind, kinds in counts.items() if kind != "invoice")
        waiting_ready = self.sql(
            "SELECT count(*) FROM sync_jobs w WHERE w.practice_id = %s AND w.status = 'waiting' "
            "AND w.kind IN ('payment', 'payment_delete', 'void') AND EXISTS (SELECT 1 FROM sync_jobs i "
            "WHERE i.practice_id = w.practice_id AND i.kind = 'invoice' AND i.cliniko_id = w.parent_cliniko_id "
            "AND i.status = 'synced')", (practice_id,))[0][0] if waiting else 0
        backfill = self.sql("SELECT state FROM backfills WHERE practice_id = %s ORDER BY id DESC LIMIT 1",
                            (practice_id,))
        busy = sum(n for kinds in counts.values() for s, n in kinds.items()
                   if s in ("pending", "retrying", "running"))
        return {"counts": counts, "busy": busy, "waiting_ready": waiting_ready,
                "backfill": backfill[0][0] if backfill else None}

    def wait_settled(self, practice_id: int, timeout: float, interval: float = 0.25) -> dict:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            p = self.progress(practice_id)
            done = p["backfill"] in ("done", "failed", "cancelled", None) and p["busy"] == 0 \
                and p["waiting_ready"] == 0
            if done:
                return {**p, "timed_out": False}
            if p != last:
                last = p
            for name, proc in self.procs:
                if name.startswith("worker") and proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}; see {self.logdir}/{name}.log")
            time.sleep(interval)
        return {**(last or {}), "timed_out": True}

    def last_write_at(self, practice_id: int) -> datetime | None:
        row = self.sql("SELECT max(updated_at) FROM sync_jobs WHERE practice_id = %s", (practice_id,))
        return row[0][0]

    def failures_by_category(self, practice_id: int) -> dict:
        out: dict = {}
        for kind, category, n in self.sql(
                "SELECT kind, coalesce(error_category, '?'), count(*) FROM sync_jobs WHERE practice_id = %s AND "
                "status = 'failed' GROUP BY 1, 2", (practice_id,)):
            out.setdefault(category, {})[kind] = n
        return out

    def sample_failures(self, practice_id: int, limit: int = 3) -> list:
        return [{"kind": k, "category": c, "reason": (r or "")[:200]} for k, c, r in self.sql(
            "SELECT kind, error_category, failure_reason FROM sync_jobs WHERE practice_id = %s AND status = 'failed' "
            "ORDER BY id LIMIT %s", (practice_id, limit))]


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(url, timeout=5).status_code < 500:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {timeout} s")
        time.sleep(0.2)


def utc_now() -> datetime:
    return datetime.now(UTC)


def audit(org: dict, cliniko_invoices: list[dict]) -> dict:
    """Duplicates in sandbox Xero and totals against Cliniko (by invoice number)."""
    accrec = [i for i in org["invoices"] if i["Type"] == "ACCREC"]
    numbers = [i["InvoiceNumber"] for i in accrec]
    contact_numbers = [c["ContactNumber"] for c in org["contacts"] if c.get("ContactNumber")]
    multi_paid = [i["InvoiceNumber"] for i in accrec
                  if sum(1 for p in i["payments"] if p.get("Status") != "DELETED") > 1]
    cliniko = {str(i["number"]): i for i in cliniko_invoices}
    mismatched, unknown = [], []
    from decimal import Decimal

    for inv in accrec:
        src = cliniko.get(str(inv["InvoiceNumber"]))
        if src is None:
            unknown.append(inv["InvoiceNumber"])
        elif Decimal(str(src["total_amount"])).quantize(Decimal("0.01")) != Decimal(inv["Total"]):
            mismatched.append({"number": inv["InvoiceNumber"], "xero": inv["Total"],
                               "cliniko": str(src["total_amount"])})
    return {
        "duplicates": {"invoice_numbers": len(numbers) - len(set(numbers)),
                       "contact_numbers": len(contact_numbers) - len(set(contact_numbers)),
                       "invoices_with_more_than_one_payment": len(multi_paid)},
        "totals_match": not mismatched and not unknown,
        "totals_mismatched": mismatched[:5], "totals_mismatched_count": len(mismatched),
        "xero_invoices_not_in_cliniko": len(unknown),
    }


def emit(result: dict) -> None:
    print(json.dumps(result, indent=2, sort_keys=False, default=str))


def _cli_batch() -> int:
    """Child side of Stack.flask_batch: JSON list of argv lists on stdin, JSON results on stdout."""
    sys.path.insert(0, str(ROOT))
    from wsgi import app  # noqa: PLC0415 (only in the child process)

    runner = app.test_cli_runner()
    out = []
    for args in json.loads(sys.stdin.read()):
        res = runner.invoke(args=args)
        out.append({"args": args, "exit_code": res.exit_code, "output": res.output})
        if res.exit_code != 0:
            detail = res.output + (repr(res.exception) if res.exception else "")
            print(f"flask {' '.join(args)} failed ({res.exit_code}): {detail[-2000:]}", file=sys.stderr)
            return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__" and sys.argv[1:2] == ["cli-batch"]:
    sys.exit(_cli_batch())
