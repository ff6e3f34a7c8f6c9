"""SPEC §11 "Many tenants": 200 practices × 200 invoices through 4 workers, Xero's limits enforced.

    python bench/tenants.py [--practices 200 --invoices 200 --workers 4 --window 2]

Starts its own database / Redis index, sandbox Xero (no auto-consent; per-tenant 60 calls and the
app-wide 10,000 calls per shortened window, the same window given to the service) and sandbox
Cliniko. Each practice gets its own Cliniko account (`POST /_sandbox/seed` with its own API key) and
its own Xero organisation and Xero user (`POST /_sandbox/organisations`), and is connected through
the web app's OAuth flow with sandbox Xero's login and consent pages (4 browser sessions in
parallel). The per-practice CLI commands run in one process through Flask's CLI runner
(`harness.flask_batch`). Then every practice's `sync backfill` is requested at once and N RQ
workers discover and push. Prints per-tenant completion times, fairness, Xero calls, the highest
app-wide count in any window, 429s and duplicates as one JSON object.
"""

from __future__ import annotations

import argparse
import math
import sys
import threading
import time
from datetime import date, timedelta

import harness
import requests
from harness import Stack, log

XERO_PASSWORD = "bench-xero-pw"
FAIRNESS_TARGET = 1.5


def pct(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def stats(values: list[float]) -> dict:
    return {"min": round(min(values), 2), "p50": round(pct(values, 50), 2), "p95": round(pct(values, 95), 2),
            "max": round(max(values), 2), "n": len(values)} if values else {"n": 0}


class AppWindowWatcher(threading.Thread):
    """Polls sandbox Xero's app-wide window count (GET /_sandbox/app-calls) and keeps the highest count seen
    per window. A window's count only grows, so the last sample in a window is at most the calls of the last
    poll interval short of its final count."""

    def __init__(self, url: str, interval: float = 0.05):
        super().__init__(daemon=True)
        self.url, self.interval = url, interval
        self.peaks: dict[int, int] = {}
        self.samples = 0
        self.errors = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        http = requests.Session()
        deadline = time.monotonic() + 4 * 3600  # bounded whatever happens to the caller
        while not self.stopping.is_set() and time.monotonic() < deadline:
            try:
                body = http.get(self.url, timeout=5).json()
                self.samples += 1
                for app in body["apps"].values():
                    if app["window"] == app["current_window"]:
                        self.peaks[app["window"]] = max(self.peaks.get(app["window"], 0), app["count"])
            except (requests.RequestException, ValueError, KeyError):
                self.errors += 1
            self.stopping.wait(self.interval)

    def stop(self) -> None:
        self.stopping.set()
        self.join(10)


def progress_all(stack: Stack) -> dict:
    """Per practice: busy rows, backfill state; overall: waiting rows whose invoice is synced."""
    busy = dict(stack.sql("SELECT practice_id, count(*) FROM sync_jobs WHERE status IN ('pending', 'retrying', "
                          "'running') GROUP BY practice_id"))
    states = dict(stack.sql("SELECT DISTINCT ON (practice_id) practice_id, state FROM backfills "
                            "ORDER BY practice_id, id DESC"))
    waiting_ready = stack.sql(
        "SELECT count(*) FROM sync_jobs w JOIN sync_jobs i ON i.practice_id = w.practice_id AND "
        "i.kind = 'invoice' AND i.cliniko_id = w.parent_cliniko_id AND i.status = 'synced' "
        "WHERE w.status = 'waiting' AND w.kind <> 'invoice'")[0][0]
    return {"busy": busy, "states": states, "waiting_ready": waiting_ready}


def run(args) -> dict:
    window = args.window
    patients = args.patients if args.patients is not None else max(1, round(args.invoices * 0.3))
    env = {"XERO_APP_CALLS_PER_WINDOW": str(args.app_limit)}
    timings: dict = {}
    t_setup = time.monotonic()
    with Stack(db="cliniko_xero_bench_tenants", redis_db=6, window=window, env=env) as stack:
        stack.start_xero(window=window, auto_consent=False, limits={"app_minute_limit": args.app_limit})
        stack.start_cliniko(seed=args.seed, patients=5, invoices=0)  # the default account is not used
        http = requests.Session()
        practices = []
        t = time.monotonic()
        for i in range(args.practices):
            key = f"bench-tenant-{i:03d}-au1"
            r = http.post(f"{stack.cliniko_url}/_sandbox/seed", timeout=120,
                          json={"api_key": key, "seed": args.seed * 100_000 + i, "patients": patients,
                                "invoices": args.invoices})
            r.raise_for_status()
            email = f"owner-{i:03d}@bench-tenants.example.com"
            r = http.post(f"{stack.xero_url}/_sandbox/organisations", timeout=30,
                          json={"name": f"Bench Tenant {i:03d} Pty Ltd",
                                "user": {"email": email, "password": XERO_PASSWORD, "name": f"Owner {i:03d}"}})
            r.raise_for_status()
            practices.append({"slug": f"tenant-{i:03d}", "key": key, "email": email,
                              "tenant_id": r.json()["tenant_id"]})
        timings["sandbox_seed_seconds"] = round(time.monotonic() - t, 1)
        log(f"seeded {args.practices} Cliniko accounts and Xero organisations in {timings['sandbox_seed_seconds']} s")

        t = time.monotonic()
        out = stack.flask_batch([["practices", "create", "--name", f"Bench {p['slug']}", "--slug", p["slug"],
                                  "--cliniko-api-key", p["key"]] for p in practices])
        for p, o in zip(practices, out, strict=True):
            p["id"] = int(o["output"].strip().splitlines()[-1])
        timings["create_seconds"] = round(time.monotonic() - t, 1)
        log(f"created {len(practices)} practices in {timings['create_seconds']} s; connecting Xero (OAuth)")
        timings["connect_seconds"] = round(stack.connect_xero_many(
            [(p["id"], p["email"], XERO_PASSWORD, p["tenant_id"]) for p in practices],
            threads=args.connect_threads), 1)
        log(f"connected in {timings['connect_seconds']} s; defaults, first poll, tax mappings, enable")
        t = time.monotonic()
        commands = []
        for p in practices:
            commands += [
                ["practices", "set-defaults", p["slug"], "--sales-account", "200", "--payment-account", "090",
                 "--rounding-account", "860", "--tax-exempt", "EXEMPTOUTPUT"],
                ["sync", "poll", p["slug"]],  # loads the Cliniko catalogue; the cursor starts now
                *[["practices", "map", p["slug"], "tax", name, "--tax-type", tax]
                  for name, tax in harness.TAX_MAP.items()],
                ["practices", "enable", p["slug"]],
            ]
        stack.flask_batch(commands)
        timings["configure_seconds"] = round(time.monotonic() - t, 1)
        timings["setup_seconds"] = round(time.monotonic() - t_setup, 1)
        log(f"configured in {timings['configure_seconds']} s; starting {args.workers} workers")

        stack.start_workers(args.workers)
        time.sleep(3)  # let the workers import the app before the clock starts
        before = {o["tenant_id"]: o for o in stack.xero_state(summary=True)["organisations"]}
        watcher = AppWindowWatcher(f"{stack.xero_url}/_sandbox/app-calls")
        watcher.start()
        since = (date.today() - timedelta(days=400)).isoformat()
        t0 = time.monotonic()
        stack.flask_batch([["sync", "backfill", p["slug"], "--since", since] for p in practices])
        requested = time.monotonic() - t0
        log(f"{len(practices)} backfills requested in {requested:.1f} s; waiting")
        ids = {p["id"] for p in practices}
        deadline = time.monotonic() + args.timeout
        timed_out, last_log = True, 0.0
        while time.monotonic() < deadline:
            prog = progress_all(stack)
            done = [pid for pid in ids if prog["states"].get(pid) in ("done", "failed", "cancelled")
                    and not prog["busy"].get(pid)]
            if len(done) == len(ids) and prog["waiting_ready"] == 0:
                timed_out = False
                break
            if time.monotonic() - last_log > 15:
                last_log = time.monotonic()
                log(f"{time.monotonic() - t0:.0f} s: {len(done)}/{len(ids)} tenants done, "
                    f"{sum(prog['busy'].values())} rows busy")
            for name, proc in stack.procs:
                if name.startswith("worker") and proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}; see {stack.logdir}/{name}.log")
            time.sleep(1.0)
        wall = time.monotonic() - t0
        watcher.stop()

        rows = stack.sql(
            "SELECT b.practice_id, b.created_at, b.started_at, b.finished_at, b.state, b.discovered, "
            "(SELECT max(updated_at) FROM sync_jobs j WHERE j.practice_id = b.practice_id) "
            "FROM backfills b WHERE b.id IN (SELECT max(id) FROM backfills GROUP BY practice_id)")
        by_kind_status = stack.sql("SELECT kind, status, count(*) FROM sync_jobs GROUP BY 1, 2")
        failed = stack.sql("SELECT coalesce(error_category, '?'), count(*) FROM sync_jobs WHERE status = 'failed' "
                           "GROUP BY 1")
        samples = [{"kind": k, "category": c, "reason": (r or "")[:200]} for k, c, r in stack.sql(
            "SELECT kind, error_category, failure_reason FROM sync_jobs WHERE status = 'failed' AND "
            "coalesce(error_category, '') <> 'totals' ORDER BY id LIMIT 3")]
        state = stack.xero_state()
        cliniko = {}
        for p in practices:
            r = http.get(f"{stack.cliniko_url}/_sandbox/state", params={"api_key": p["key"], "invoices": 1},
                         timeout=120)
            r.raise_for_status()
            cliniko[p["tenant_id"]] = r.json()["invoices"]
        ours = {p["tenant_id"] for p in practices}

    tz = harness.UTC
    per_tenant, from_common = [], []
    first_start = min(r[1] for r in rows).replace(tzinfo=tz) if rows else None
    for _pid, created, _started, _finished, _state, _disc, last in rows:
        if last is None:
            continue
        created, last = created.replace(tzinfo=tz) if not created.tzinfo else created, \
            last.replace(tzinfo=tz) if not last.tzinfo else last
        per_tenant.append((last - created).total_seconds())
        from_common.append((last - first_start).total_seconds())
    calls = {"admitted": 0, "rate_limited": 0, "by_problem": {}}
    dups = {"invoice_numbers": 0, "contact_numbers": 0, "invoices_with_more_than_one_payment": 0}
    totals_mismatched = not_in_cliniko = 0
    sent = {"contacts": 0, "invoices": 0, "credit_notes": 0, "payments": 0}
    minimum = 0
    for org in state["organisations"]:
        if org["tenant_id"] not in ours:
            continue
        c0 = before[org["tenant_id"]]["calls"]
        c1 = org["calls"]
        calls["admitted"] += c1["admitted"] - c0["admitted"]
        calls["rate_limited"] += c1["rate_limited"] - c0["rate_limited"]
        for k, v in c1.get("rate_limited_by_problem", {}).items():
            calls["by_problem"][k] = calls["by_problem"].get(k, 0) + v - c0.get("rate_limited_by_problem", {}).get(k, 0)
        counts = {k: org["counts"][k] - before[org["tenant_id"]]["counts"].get(k, 0) for k in sent}
        for k in sent:
            sent[k] += counts[k]
        minimum += sum(math.ceil(counts[k] / 50) for k in counts)
        a = harness.audit(org, cliniko[org["tenant_id"]])
        for k in dups:
            dups[k] += a["duplicates"][k]
        totals_mismatched += a["totals_mismatched_count"]
        not_in_cliniko += a["xero_invoices_not_in_cliniko"]
    peak = max(watcher.peaks.values(), default=0)
    status: dict = {}
    for kind, st, n in by_kind_status:
        status.setdefault(kind, {})[st] = n
    ratio = (max(per_tenant) / min(per_tenant)) if per_tenant and min(per_tenant) > 0 else None
    ratio_common = (max(from_common) / min(from_common)) if from_common and min(from_common) > 0 else None
    return {
        "sizes": {"practices": args.practices, "invoices_per_practice": args.invoices,
                  "patients_per_practice": patients, "workers": args.workers},
        "window_seconds": window,
        "limits": {"per_tenant_calls_per_window": 60, "app_calls_per_window": args.app_limit,
                   "service": {"XERO_RATE_WINDOW_SECONDS": window, "XERO_CALLS_PER_WINDOW": 60,
                               "XERO_APP_CALLS_PER_WINDOW": args.app_limit}},
        "setup": timings,
        "tenants_finished": len(per_tenant),
        "completion_seconds": stats(per_tenant),
        "completion_seconds_from_first_backfill": stats(from_common),
        "slowest_to_fastest": round(ratio, 2) if ratio else None,
        "slowest_to_fastest_from_first_backfill": round(ratio_common, 2) if ratio_common else None,
        "backfills_requested_seconds": round(requested, 1),
        "wall_seconds": round(wall, 1),
        "rows": status,
        "failed_by_category": dict(failed),
        "failed_samples_other_than_totals": samples,
        "sent": sent,
        "xero_calls": calls["admitted"],
        "minimum_calls": minimum,
        "calls_ratio": round(calls["admitted"] / minimum, 3) if minimum else None,
        "http_429": {"total": calls["rate_limited"], "by_problem": calls["by_problem"]},
        "app_window": {"highest_calls_in_a_window_observed": peak, "limit": args.app_limit,
                       "windows_observed": len(watcher.peaks), "samples": watcher.samples,
                       "sample_interval_seconds": watcher.interval, "sample_errors": watcher.errors,
                       "note": "sandbox Xero's own fixed app window, sampled; an attempt beyond the limit would "
                               "show as a 429 'appminute' (counted exactly above)"},
        "duplicates": dups,
        "totals_mismatched": totals_mismatched,
        "xero_invoices_not_in_cliniko": not_in_cliniko,
        "timed_out": timed_out,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--practices", type=int, default=200)
    ap.add_argument("--invoices", type=int, default=200, help="invoices per practice")
    ap.add_argument("--patients", type=int, default=None, help="patients per practice (default 0.3 × invoices)")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--window", type=float, default=2.0, help="Xero window seconds (sandbox and service)")
    ap.add_argument("--app-limit", type=int, default=10_000, help="app-wide calls per window (sandbox and service)")
    ap.add_argument("--connect-threads", type=int, default=4, help="parallel browser sessions for the OAuth connect")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=1800, help="seconds to wait for every backlog")
    args = ap.parse_args()
    started = time.time()
    result = {"bench": "tenants", "machine": harness.machine()}
    log(f"{args.practices} practices x {args.invoices} invoices, {args.workers} workers, window {args.window} s")
    r = run(args)
    result.update(r)
    result["targets"] = {
        "every_tenant_finished": not r["timed_out"] and r["tenants_finished"] == args.practices,
        f"slowest_to_fastest<={FAIRNESS_TARGET}": (r["slowest_to_fastest"] or 99) <= FAIRNESS_TARGET,
        "app_limit_never_exceeded": r["app_window"]["highest_calls_in_a_window_observed"] <= args.app_limit
        and not r["http_429"]["by_problem"].get("appminute"),
        "no_duplicates": not any(r["duplicates"].values()),
    }
    result["bench_seconds"] = round(time.time() - started, 1)
    harness.emit(result)
    return 0 if all(result["targets"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
