"""SPEC §11 "UI": with 1,000,000 job rows, the job list (any filter, search by invoice number) and the
dashboard render in ≤ 300 ms server time (p95).

    python bench/ui.py [--rows 1000000 --repeat 20 --explain]

1. Its own database (`cliniko_xero_bench_ui`, dropped, re-created and migrated with `flask --app wsgi
   db upgrade` by `harness.Stack`) and Redis index 12.
2. Seeds BY SQL (`generate_series`, `setseed` so runs are comparable): 3 practices (50 / 30 / 20 % of
   the rows), `--rows` sync_jobs rows over 5 kinds, 8 states, 6 error categories, ~2,500 distinct
   patient names, invoice numbers, issue dates and `updated_at` spread over 6 months, and attempts
   (`sync_attempts`) for every failed/retrying row plus one synced row in ten; then VACUUM ANALYZE.
   The dashboard's activity roll-up (`sync_activity`) is filled as in production: by the triggers of
   migration 0005, which fire on these INSERT/UPDATE statements; the JSON reports whether it equals a
   direct count over the base tables (`seed.rollup_matches_base_tables`).
3. Measures SERVER time in-process: the Flask app built with `webapp.create_app()` on this database,
   a signed-in admin (all practices) test client, `time.perf_counter()` around `client.get(...)` plus
   reading the whole body (for the CSV export: up to the first streamed chunk, i.e. the header and
   the first 1,000-row keyset chunk). No network, no browser: view + SQL + template rendering. Each
   case is requested `--warmup` times unmeasured, then `--repeat` times.
4. Prints ONE JSON object: per case p50 / p95 / max ms and `ratio_p95_to_limit` (p95 / 300 ms); with
   `--explain` (or for any case over the limit) the EXPLAIN (ANALYZE, BUFFERS) of the slowest SQL
   statement of that case's last request goes into `explain`.

Exit 0 when every case's p95 ≤ 300 ms, 1 otherwise. Bounded: seeding ~1–2 min at 1M rows on 2 vCPUs,
measuring ~20 cases × 22 requests.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import statistics
import sys
import time
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import harness  # noqa: E402
from harness import Stack, log  # noqa: E402

LIMIT_MS = 300.0
EMAIL = "bench-ui@example.com"
PASSWORD = "bench-password-123"
PRACTICES = (("ui-north", "North Physio", "Australia/Sydney"), ("ui-south", "South Podiatry", "Australia/Melbourne"),
             ("ui-west", "West Chiro", "Australia/Perth"))

FIRST = ("Olivia", "Jack", "Charlotte", "William", "Amelia", "Noah", "Isla", "Thomas", "Mia", "James", "Ava",
         "Lucas", "Grace", "Henry", "Chloe", "Oliver", "Sophie", "Leo", "Zoe", "Ethan", "Ruby", "Liam", "Ella",
         "Mason", "Harper", "Max", "Emily", "Archie", "Lily", "Hudson", "Matilda", "Oscar", "Evie", "Charlie",
         "Sienna", "Cooper", "Ivy", "Hunter", "Willow", "Samuel", "Zoë", "José", "Ngaio", "Aroha", "Wei",
         "Priya", "Mohammed", "Fatima", "Siobhán", "Łukasz")
LAST = ("Smith", "Jones", "Williams", "Brown", "Wilson", "Taylor", "Johnson", "White", "Martin", "Anderson",
        "Thompson", "Nguyen", "Thomas", "Walker", "Harris", "Lee", "Ryan", "Robinson", "Kelly", "King", "Davis",
        "Wright", "Evans", "Roberts", "Green", "Hall", "Wood", "Jackson", "Clarke", "Patel", "Khan", "Lewis",
        "Baker", "Campbell", "Mitchell", "Young", "Scott", "Turner", "O'Brien", "Murphy", "Singh", "Chen",
        "Wang", "Li", "García", "Müller", "Ngata", "Te Rangi", "Kowalski", "Papadopoulos")
CATEGORY_REASONS = {
    "transient": "Xero did not answer in time (HTTP 503); will retry.",
    "validation": "Xero refused the invoice: Account code '250' is not a valid code for this document.",
    "mapping": "No Xero tax rate chosen for the Cliniko tax 'GST (NZ)'.",
    "totals": "Totals differ: Cliniko $120.00, Xero would compute $116.09.",
    "conflict": "The contact name is already assigned to another contact.",
    "auth": "The Xero connection needs to be reconnected.",
}


def sql_list(values) -> str:
    return "ARRAY[" + ",".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def seed(stack: Stack, rows: int) -> dict:
    """Practices and a user in-process (needs the app's crypto/password hashing), jobs and attempts by SQL."""
    t0 = time.monotonic()
    ids = [r[0] for r in stack.sql("SELECT id FROM practices ORDER BY id")]
    reasons = "CASE error_category " + " ".join(
        f"WHEN '{k}' THEN '{v.replace(chr(39), chr(39) * 2)}'" for k, v in CATEGORY_REASONS.items()) + " END"
    statements = [
        "SELECT setseed(0.42)",
        # One row per generated number; r1..r7 are independent uniform draws.
        f"""
        CREATE UNLOGGED TABLE bench_gen AS
        SELECT g, random() AS r1, random() AS r2, random() AS r3, random() AS r4, random() AS r5, random() AS r6,
            random() AS r7
        FROM generate_series(1, {rows}) g
        """,  # noqa: S608 (numbers and constants only)
        f"""
        INSERT INTO sync_jobs (id, practice_id, kind, cliniko_id, invoice_number, patient_name, amount, status,
            status_reason, attempts, max_attempts, next_attempt_at, priority, failure_reason, suggested_fix,
            error_category, error_detail, xero_id, payload_hash, source_updated_at, issue_date, synced_at,
            created_at, updated_at, parent_cliniko_id, reconcile)
        SELECT g, practice_id, kind,
            (1000000000 + g)::text,
            CASE WHEN kind = 'contact' THEN NULL ELSE (100000 + g / 2)::text END,
            ({sql_list(FIRST)})[1 + (r3 * {len(FIRST)})::int % {len(FIRST)}] || ' ' ||
              ({sql_list(LAST)})[1 + (r4 * {len(LAST)})::int % {len(LAST)}],
            CASE WHEN kind = 'contact' THEN NULL ELSE round((20 + r5 * 280)::numeric, 2) END,
            status,
            CASE status WHEN 'skipped' THEN 'Credit invoice: not sent (practice setting)'
                        WHEN 'ignored' THEN 'Ignored by admin: duplicate in Xero'
                        WHEN 'waiting' THEN 'Waiting for the invoice to be in Xero' END,
            CASE WHEN status IN ('failed', 'retrying') THEN 1 + (r7 * 11)::int WHEN status = 'synced' THEN 1 ELSE 0 END,
            12,
            CASE WHEN status IN ('pending', 'retrying', 'waiting') THEN now() + (r7 * 3600) * interval '1 second'
                 END,
            0,
            reason, CASE WHEN reason IS NOT NULL THEN 'Fix the mapping or setting named, then re-queue.' END,
            error_category,
            CASE WHEN error_category IS NOT NULL THEN jsonb_build_object('http_status',
                CASE error_category WHEN 'transient' THEN 503 WHEN 'auth' THEN 401 ELSE 400 END,
                'xero_request_id', md5(g::text)) END,
            CASE WHEN status = 'synced' THEN
                substr(md5('x' || g), 1, 8) || '-' || substr(md5('x' || g), 9, 4) || '-' ||
                substr(md5('x' || g), 13, 4) || '-' || substr(md5('x' || g), 17, 4) || '-' ||
                substr(md5('x' || g), 21, 12) END,
            md5(g::text),
            updated_at - interval '5 minutes',
            CASE WHEN kind = 'contact' THEN NULL ELSE date_trunc('day', updated_at - interval '1 day') END,
            CASE WHEN status = 'synced' THEN updated_at - (r6 * 60) * interval '1 second' END,
            updated_at - interval '10 minutes', updated_at,
            CASE WHEN kind = 'invoice' THEN (2000000000 + g % 50000)::text
                 WHEN kind <> 'contact' THEN (1000000000 + g - 1)::text END,
            false
        FROM (
            SELECT g, r3, r4, r5, r6, r7, practice_id, kind, status, error_category, updated_at,
                {reasons} AS reason
            FROM (
                SELECT g, r3, r4, r5, r6, r7,
                    CASE WHEN r1 < 0.5 THEN {ids[0]} WHEN r1 < 0.8 THEN {ids[1]} ELSE {ids[2]} END AS practice_id,
                    CASE WHEN r2 < 0.20 THEN 'contact' WHEN r2 < 0.65 THEN 'invoice' WHEN r2 < 0.95 THEN 'payment'
                         WHEN r2 < 0.98 THEN 'void' ELSE 'payment_delete' END AS kind,
                    st.status,
                    CASE WHEN st.status IN ('failed', 'retrying')
                              OR (st.status = 'ignored' AND r7 < 0.5) THEN
                        CASE WHEN st.status = 'retrying' THEN 'transient'
                             ELSE (ARRAY['validation','mapping','totals','conflict','auth','transient',
                                         'validation','mapping'])[1 + (r7 * 8)::int % 8] END
                    END AS error_category,
                    -- 6 months, more recent rows more likely (a practice grows); to the second.
                    date_trunc('second', now() - (power(r5, 1.3) * 182 * 86400) * interval '1 second')
                        AS updated_at
                FROM bench_gen,
                LATERAL (SELECT CASE
                    WHEN r6 < 0.80 THEN 'synced' WHEN r6 < 0.84 THEN 'failed' WHEN r6 < 0.87 THEN 'pending'
                    WHEN r6 < 0.872 THEN 'running' WHEN r6 < 0.882 THEN 'retrying' WHEN r6 < 0.902 THEN 'waiting'
                    WHEN r6 < 0.972 THEN 'skipped' ELSE 'ignored' END AS status) st
            ) a
        ) b
        """,  # noqa: S608 (numbers and constants only)
        "DROP TABLE bench_gen",
        "SELECT setval('sync_jobs_id_seq', (SELECT max(id) FROM sync_jobs))",
        # Running rows are claimed by a worker, recently.
        "UPDATE sync_jobs SET claimed_by = 'worker.1', heartbeat_at = now(), updated_at = now() - (id % 600) * "
        "interval '1 second' WHERE status = 'running'",
        # Attempts: every failed/retrying row (1–3 each, the last one an error) and one synced row in ten (ok).
        """
        INSERT INTO sync_attempts (job_id, practice_id, batch_id, started_at, finished_at, outcome, http_status,
            error, duration_ms, request_body, xero_request_id, idempotency_key)
        SELECT j.id, j.practice_id, md5(j.id::text || n), j.updated_at - (n * 600) * interval '1 second',
            j.updated_at - (n * 600 - 1) * interval '1 second',
            CASE WHEN j.status = 'synced' THEN 'ok' WHEN j.error_category = 'transient' AND n = 2 THEN 'ambiguous'
                 ELSE 'error' END,
            CASE WHEN j.status = 'synced' THEN 200 WHEN j.error_category = 'transient' THEN 503 ELSE 400 END,
            CASE WHEN j.status = 'synced' THEN NULL ELSE j.failure_reason END,
            200 + j.id % 900,
            jsonb_build_object('InvoiceNumber', j.invoice_number,
                               'Contact', jsonb_build_object('Name', j.patient_name)),
            md5('req' || j.id || n), 'bench-' || md5(j.id::text)
        FROM sync_jobs j, generate_series(0, 2) n
        WHERE (j.status IN ('failed', 'retrying') AND n <= j.id % 3)
           OR (j.status = 'synced' AND j.id % 10 = 0 AND n = 0)
        """,
        "VACUUM ANALYZE sync_jobs",
        "VACUUM ANALYZE sync_attempts",
        "VACUUM ANALYZE sync_activity",
    ]
    import psycopg

    with psycopg.connect(stack.database_url, autocommit=True) as conn:  # one session: setseed applies
        for statement in statements:
            conn.execute(statement)
    counts = dict(stack.sql("SELECT status, count(*) FROM sync_jobs GROUP BY 1 ORDER BY 1"))
    attempts = stack.sql("SELECT count(*) FROM sync_attempts")[0][0]
    size = stack.sql("SELECT pg_size_pretty(pg_total_relation_size('sync_jobs'))")[0][0]
    rollup_rows = stack.sql("SELECT count(*) FROM sync_activity")[0][0]
    return {"rows": sum(counts.values()), "by_state": counts, "attempts": attempts, "sync_jobs_size": size,
            "seconds": round(time.monotonic() - t0, 1), "rollup_rows": rollup_rows,
            "rollup_matches_base_tables": rollup_matches(stack)}


def rollup_matches(stack: Stack) -> bool:
    """The trigger-kept roll-up equals the same grouping done directly over sync_jobs / sync_attempts."""
    slot = "date_bin(interval '15 minutes', {}, timestamptz '2000-01-01 00:00+00')"
    differing = stack.sql(f"""
        SELECT count(*) FROM (SELECT practice_id, slot, synced, failed FROM sync_activity
                              WHERE synced <> 0 OR failed <> 0) r
        FULL JOIN (
            SELECT practice_id, slot, sum(synced) AS synced, sum(failed) AS failed FROM (
                SELECT practice_id, {slot.format('synced_at')} AS slot, 1 AS synced, 0 AS failed
                FROM sync_jobs WHERE status = 'synced' AND synced_at IS NOT NULL
                UNION ALL
                SELECT practice_id, {slot.format('started_at')}, 0, 1 FROM sync_attempts
                WHERE outcome IN ('error', 'ambiguous') AND practice_id IS NOT NULL) c
            GROUP BY 1, 2) d USING (practice_id, slot)
        WHERE r.synced IS DISTINCT FROM d.synced OR r.failed IS DISTINCT FROM d.failed
        """)[0][0]  # noqa: S608 (constants only)
    return differing == 0


def make_app(stack: Stack):
    os.environ.update({k: v for k, v in stack.env.items() if isinstance(v, str)})
    from webapp import create_app

    app = create_app({"SESSION_COOKIE_SECURE": False, "REMEMBER_COOKIE_SECURE": False})
    return app


def setup_practices_and_user(app) -> list[int]:
    from webapp import crypto
    from webapp.auth.users import create_user
    from webapp.extensions import db
    from webapp.models import Practice

    with app.app_context():
        ids = []
        for slug, name, zone in PRACTICES:
            p = Practice(name=name, slug=slug, cliniko_api_key_encrypted=crypto.encrypt(f"key-{slug}-au1"),
                         cliniko_shard="au1", time_zone=zone, sync_enabled=True, settings={}, poll_cursors={})
            db.session.add(p)
            db.session.flush()
            ids.append(p.id)
        create_user(EMAIL, PASSWORD, role="admin")
        db.session.commit()
        return ids


def login(client) -> None:
    html = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html) or re.search(
        r'value="([^"]+)"[^>]*name="csrf_token"', html)
    r = client.post("/login", data={"email": EMAIL, "password": PASSWORD, "csrf_token": token.group(1)})
    assert r.status_code in (302, 303), f"login failed: {r.status_code}"


def cursor(updated_at: datetime, row_id: int) -> str:
    raw = f"{updated_at.astimezone(UTC).isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def cases(stack: Stack, ids: list[int]) -> list[tuple[str, str]]:
    """(name, URL) of every measured request; search terms are taken from the seeded data."""
    def one(query, params=()):
        return stack.sql(query, params)[0]

    n, = one("SELECT max(id) FROM sync_jobs")
    invoice_number, = one("SELECT invoice_number FROM sync_jobs WHERE kind = 'invoice' AND id > %s "
                          "ORDER BY id LIMIT 1", (n // 2,))
    cliniko_id, = one("SELECT cliniko_id FROM sync_jobs WHERE id >= %s ORDER BY id LIMIT 1", (n * 2 // 3,))
    xero_id, = one("SELECT xero_id FROM sync_jobs WHERE status = 'synced' AND id > %s ORDER BY id LIMIT 1",
                   (n // 3,))
    full_name, = one("SELECT patient_name FROM sync_jobs WHERE id >= %s ORDER BY id LIMIT 1", (n // 5,))
    deep_all = one("SELECT updated_at, id FROM sync_jobs ORDER BY updated_at DESC, id DESC OFFSET "
                   "(SELECT count(*) * 7 / 10 FROM sync_jobs) LIMIT 1")
    deep_synced = one("SELECT updated_at, id FROM sync_jobs WHERE status = 'synced' ORDER BY updated_at DESC, "
                      "id DESC OFFSET (SELECT count(*) * 7 / 10 FROM sync_jobs WHERE status = 'synced') LIMIT 1")
    today = datetime.now(UTC).date()
    date_from, date_to = (today - timedelta(days=60)).isoformat(), (today - timedelta(days=30)).isoformat()
    out = [(f"list:{state}", f"/jobs/?state={state}") for state in
           ("pending", "running", "synced", "failed", "retrying", "waiting", "skipped", "ignored")]
    out += [
        ("list:all", "/jobs/"),
        ("list:all per_page=200", "/jobs/?per_page=200"),
        ("filtered: practice+failed+validation+30 days",
         f"/jobs/?practice={ids[0]}&state=failed&category=validation&date_from={date_from}&date_to={date_to}"),
        ("filtered: practice+all states+mapping+30 days (no state)",
         f"/jobs/?practice={ids[1]}&category=mapping&date_from={date_from}&date_to={date_to}"),
        ("filtered: practice+kind=payment+issued date range",
         f"/jobs/?practice={ids[2]}&kind=payment&date_field=issued&date_from={date_from}&date_to={date_to}"),
        ("search invoice number (by=invoice)", f"/jobs/?q={invoice_number}&by=invoice"),
        ("search invoice number (by=any)", f"/jobs/?q={invoice_number}"),
        ("search patient prefix 'oli' (by=patient)", "/jobs/?q=oli&by=patient"),
        ("search patient full name (by=patient)", f"/jobs/?q={full_name}&by=patient"),
        ("search patient prefix 'wil' (by=any)", "/jobs/?q=wil"),
        ("search cliniko id (by=cliniko)", f"/jobs/?q={cliniko_id}&by=cliniko"),
        ("search xero id (by=xero)", f"/jobs/?q={xero_id}&by=xero"),
        ("deep keyset page (all, 70% deep)", f"/jobs/?after={cursor(*deep_all)}"),
        ("deep keyset page (synced, 70% deep)", f"/jobs/?state=synced&after={cursor(*deep_synced)}"),
        ("previous page (all, 70% deep)", f"/jobs/?before={cursor(*deep_all)}"),
        ("csv export first chunk (all)", "/jobs/export.csv"),
        ("csv export first chunk (failed)", "/jobs/export.csv?state=failed"),
        ("dashboard", "/"),
    ]
    return [(name, url.replace(" ", "+")) for name, url in out]


class StatementTimer:
    """Records (seconds, statement, parameters) of every SQL statement while active."""

    def __init__(self, engine):
        from sqlalchemy import event

        self.engine, self.event, self.active, self.log = engine, event, False, []
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn, cursor, statement, parameters, context, executemany):
        conn.info["bench_t0"] = time.perf_counter()

    def _after(self, conn, cursor, statement, parameters, context, executemany):
        if self.active:
            self.log.append((time.perf_counter() - conn.info.pop("bench_t0", time.perf_counter()), statement,
                             parameters))


def explain(app, statement: str, parameters) -> list[str]:
    from webapp.extensions import db

    with app.app_context():
        raw = db.engine.raw_connection()
        try:
            cur = raw.cursor()
            cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
            return [r[0] for r in cur.fetchall()]
        finally:
            raw.close()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(p / 100 * len(ordered) + 0.5)) - 1))
    return ordered[k]


def measure(app, client, name: str, url: str, repeat: int, warmup: int, timer: StatementTimer,
            want_explain: bool) -> dict:
    csv_mode = "export.csv" in url

    def request_once() -> tuple[float, int, int]:
        t0 = time.perf_counter()
        if csv_mode:
            response = client.get(url, buffered=False)
            body = next(iter(response.response), b"")
            elapsed = time.perf_counter() - t0
            response.close()
            return elapsed, response.status_code, len(body)
        response = client.get(url)
        body = response.get_data()
        return time.perf_counter() - t0, response.status_code, len(body)

    for _ in range(warmup):
        request_once()
    times, sql_times, statements = [], [], 0
    status = size = None
    for i in range(repeat):
        timer.log, timer.active = [], True
        elapsed, status, size = request_once()
        timer.active = False
        times.append(elapsed * 1000)
        sql_times.append(sum(t for t, _, _ in timer.log) * 1000)
        statements = len(timer.log)
        if i == repeat - 1:
            last_log = list(timer.log)
    p50, p95 = statistics.median(times), percentile(times, 95)
    result = {"p50_ms": round(p50, 1), "p95_ms": round(p95, 1), "max_ms": round(max(times), 1),
              "sql_p50_ms": round(statistics.median(sql_times), 1), "statements": statements,
              "ratio_p95_to_limit": round(p95 / LIMIT_MS, 3), "status": status, "bytes": size, "url": url}
    if status != 200:
        result["error"] = f"HTTP {status}"
    if (want_explain or p95 > LIMIT_MS) and last_log:
        slowest = max(last_log, key=lambda x: x[0])
        result["slowest_sql_ms"] = round(slowest[0] * 1000, 1)
        result["slowest_sql"] = " ".join(slowest[1].split())[:1500]
        with suppress(Exception):
            result["explain"] = explain(app, slowest[1], slowest[2])
    log(f"{name}: p50 {p50:.1f} ms, p95 {p95:.1f} ms (sql {result['sql_p50_ms']} ms, {statements} statements)")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE the slowest SQL of every case")
    parser.add_argument("--only", default="", help="measure only the cases whose name contains this text")
    parser.add_argument("--reuse", action="store_true",
                        help="keep the database of the previous run if it holds the rows (skips seeding)")
    parser.add_argument("--with-index", action="append", default=[], metavar="SQL",
                        help="what-if: run this CREATE INDEX … on the bench database before measuring "
                             "(repeatable; reported in the JSON)")
    args = parser.parse_args()
    started = time.monotonic()
    result: dict = {"bench": "ui", "target": {"p95_ms_max": LIMIT_MS, "rows": 1_000_000},
                    "machine": harness.machine(),
                    "timing": "server time in-process: time.perf_counter() around Flask test-client GET "
                              "+ reading the body (CSV: to the first streamed chunk); view + SQL + templates, "
                              "no network"}
    with Stack(db="cliniko_xero_bench_ui", redis_db=12, env={"LOG_LEVEL": "WARNING"}, fresh=not args.reuse) as stack:
        app = make_app(stack)
        have = stack.sql("SELECT count(*) FROM sync_jobs")[0][0] if args.reuse else 0
        if args.reuse and have >= args.rows:
            ids = [r[0] for r in stack.sql("SELECT id FROM practices ORDER BY id")]
            result["seed"] = {"reused": True, "rows": have}
        else:
            if have:
                raise SystemExit("--reuse: the database holds other rows; run without --reuse")
            log(f"database {stack.db_name} migrated; seeding {args.rows:,} rows")
            ids = setup_practices_and_user(app)
            result["seed"] = seed(stack, args.rows)
        log(f"seeded: {result['seed']}")
        for statement in args.with_index:
            log(f"what-if: {statement}")
            stack.sql(statement, fetch=False)
            stack.sql("ANALYZE sync_jobs", fetch=False)
            stack.sql("ANALYZE sync_attempts", fetch=False)
        result["what_if_indexes"] = args.with_index
        from webapp.extensions import db

        with app.app_context():
            timer = StatementTimer(db.engine)
        client = app.test_client()
        login(client)
        result["cases"] = {}
        for name, url in cases(stack, ids):
            if args.only and args.only not in name:
                continue
            result["cases"][name] = measure(app, client, name, url, args.repeat, args.warmup, timer, args.explain)
        for statement in args.with_index:  # leave the database as seeded
            created = re.search(r"CREATE\s+INDEX\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)", statement, re.I)
            if created:
                stack.sql(f"DROP INDEX IF EXISTS {created.group(1)}", fetch=False)
    misses = {n: c["p95_ms"] for n, c in result["cases"].items() if c["p95_ms"] > LIMIT_MS or c.get("error")}
    result["worst_p95_ms"] = max(c["p95_ms"] for c in result["cases"].values())
    result["misses"] = misses
    result["ok"] = not misses
    result["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    result["elapsed_seconds"] = round(time.monotonic() - started, 1)
    harness.emit(result)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
