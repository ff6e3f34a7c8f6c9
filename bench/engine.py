"""SPEC §11 "Engine overhead": invoices per second end-to-end with the rate limits off.

    python bench/engine.py [--invoices 10000 --patients 3000 --workers 1,2 --profile]

Limits off on both sides (sandbox Xero's per-tenant, concurrent, daily and app limits; sandbox
Cliniko's calls per minute; the service's budgets) so only the engine, Postgres, Redis and the
local sandbox set the pace. For each worker count: a fresh database, a backfill through RQ workers
(`python -m jobs.worker`), and the rate over the push phase (discovery done → last row written) and
over the whole run. With --profile, the same backfill once more in one process under cProfile
(`python -m cProfile -o … -m flask … sync backfill SLUG --since … --wait`: an RQ worker forks a
work horse per job, so profiling `jobs.worker` itself would only show the parent waiting), and the
top functions. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import io
import pstats
import statistics
import sys
import time
from contextlib import contextmanager
from datetime import date, timedelta

import harness
from harness import FLASK, HUGE, ROOT, Stack, log

SLUG = "engine"
XERO_LIMITS_OFF = {"minute_limit": HUGE, "concurrent_limit": HUGE, "day_limit": HUGE, "app_minute_limit": HUGE}
SERVICE_LIMITS_OFF = {"XERO_CALLS_PER_WINDOW": str(HUGE), "XERO_MAX_CONCURRENT": "1000",
                      "XERO_DAILY_CALLS": str(HUGE), "XERO_APP_CALLS_PER_WINDOW": str(HUGE),
                      "CLINIKO_CALLS_PER_MINUTE": str(HUGE)}
CLINIKO_CPM = 2**31 - 1


def tz(d):
    return d if d is None or d.tzinfo else d.replace(tzinfo=harness.UTC)


@contextmanager
def engine_stack(args):
    """A fresh database, both sandboxes with every limit off, and a wired practice: (stack, practice id,
    the backfill's start date)."""
    with Stack(db="cliniko_xero_bench_engine", redis_db=11, env=SERVICE_LIMITS_OFF) as stack:
        stack.start_xero(window=60, limits=XERO_LIMITS_OFF)
        stack.start_cliniko(seed=args.seed, patients=args.patients, invoices=args.invoices,
                            calls_per_minute=CLINIKO_CPM)
        practice_id = stack.wire(SLUG)
        yield stack, practice_id, (date.today() - timedelta(days=400)).isoformat()


def run(args, workers: int) -> dict:
    with engine_stack(args) as (stack, practice_id, since):
        stack.start_workers(workers)
        cpu0 = stack.cpu_seconds()
        t0 = time.monotonic()
        stack.flask("sync", "backfill", SLUG, "--since", since)
        settled = stack.wait_settled(practice_id, args.timeout, interval=0.2)
        wall = time.monotonic() - t0
        cpu = stack.cpu_used(cpu0, stack.cpu_seconds())
        created, started, finished = (tz(x) for x in stack.sql(
            "SELECT created_at, started_at, finished_at FROM backfills WHERE practice_id = %s ORDER BY id DESC "
            "LIMIT 1", (practice_id,))[0])
        last = tz(stack.last_write_at(practice_id))
        counts = dict(stack.sql("SELECT kind, count(*) FROM sync_jobs WHERE practice_id = %s AND status = 'synced' "
                                "GROUP BY kind", (practice_id,)))
        handled = stack.sql("SELECT count(*) FROM sync_jobs WHERE practice_id = %s AND kind = 'invoice' AND "
                            "status IN ('synced', 'failed', 'skipped')", (practice_id,))[0][0]
        org = stack.xero_org(summary=True)
        load = [round(x, 2) for x in __import__("os").getloadavg()]
    invoices = counts.get("invoice", 0)
    push = (last - finished).total_seconds()
    total = (last - created).total_seconds()
    return {
        "workers": workers,
        "synced": counts, "invoices_handled": handled,
        "discovery_seconds": round((finished - started).total_seconds(), 2),
        "push_phase_seconds": round(push, 2),
        "end_to_end_seconds": round(total, 2),
        "wall_seconds_incl_cli": round(wall, 2),
        "invoices_per_second_push": round(invoices / push, 1) if push > 0 else None,
        "invoices_per_second_end_to_end": round(invoices / total, 1) if total > 0 else None,
        "rows_per_second_push": round(sum(counts.values()) / push, 1) if push > 0 else None,
        "xero_calls": org["calls"]["admitted"], "http_429": org["calls"]["rate_limited"],
        "cpu_seconds_whole_run": cpu,  # discovery and push, by process role (2 cores: wall × 2 at most)
        "loadavg_after": load, "timed_out": settled.get("timed_out"),
    }


def in_process_backfill(args, command) -> tuple[float, str]:
    """A fresh stack, then one backfill pushed by the CLI in this machine's foreground (`sync backfill
    --wait`: the CLI acting as the worker) under `command(python, flask_args)`; returns (seconds, stdout)."""
    import subprocess

    with engine_stack(args) as (stack, _practice_id, since):
        t0 = time.monotonic()
        cmd = command(FLASK[0], [*FLASK[1:], "sync", "backfill", SLUG, "--since", since, "--wait", "--timeout",
                                 str(args.timeout)])
        r = subprocess.run(cmd, cwd=ROOT, env=stack.env, capture_output=True, text=True, timeout=args.timeout + 60)
        if r.returncode != 0:
            raise RuntimeError(r.stderr[-2000:])
        return time.monotonic() - t0, r.stdout


def profile(args) -> dict:
    out = ROOT / ".run" / "bench" / "engine.prof"
    elapsed, stdout = in_process_backfill(
        args, lambda python, flask_args: [python, "-m", "cProfile", "-o", str(out), *flask_args])
    stats = pstats.Stats(str(out))
    total = stats.total_tt

    def top(key: str, n: int) -> list:
        rows = []
        for (file, line, func), (_cc, nc, tt, ct, _callers) in sorted(
                stats.stats.items(), key=lambda kv: kv[1][3 if key == "cumulative" else 2], reverse=True):
            short = file.replace(str(ROOT) + "/", "")
            if "site-packages/" in short:
                short = short.split("site-packages/", 1)[1]
            rows.append({"function": f"{short}:{line}({func})", "calls": nc, "tottime": round(tt, 2),
                         "cumtime": round(ct, 2), "share_cum": round(ct / total, 3) if total else None})
            if len(rows) >= n:
                break
        return rows

    def group(pred) -> float:
        return round(sum(v[2] for k, v in stats.stats.items() if pred(k[0])), 2)

    buf = io.StringIO()
    pstats.Stats(str(out), stream=buf).sort_stats("cumulative").print_stats(40)
    (ROOT / ".run" / "bench" / "engine-profile.txt").write_text(buf.getvalue())
    return {
        "command": "python -m cProfile -o .run/bench/engine.prof -m flask --app wsgi sync backfill engine "
                   "--since … --wait",
        "output": stdout.strip().splitlines()[-1] if stdout.strip() else None,
        "elapsed_seconds": round(elapsed, 2), "profiled_cpu_seconds": round(total, 2),
        "self_time_by_area": {
            "webapp": group(lambda f: "/webapp/" in f),
            "sqlalchemy": group(lambda f: "sqlalchemy" in f),
            "psycopg": group(lambda f: "psycopg" in f),
            "requests_urllib3_http": group(lambda f: any(x in f for x in ("requests", "urllib3", "http/client",
                                                                           "socket", "ssl"))),
            "json": group(lambda f: "json" in f),
            "builtins_and_other": None,
        },
        "top_cumulative": top("cumulative", 30),
        "top_self": top("tottime", 20),
        "full_text": ".run/bench/engine-profile.txt",
    }


SPY_RATE = 200  # samples a second


def _activity(stack: str) -> str:
    """What a sampled stack (root first, `;`-separated frames) was doing."""
    leaf = stack.rsplit(";", 1)[-1]
    if "psycopg" in stack:
        return "postgres: waiting for the server" if "wait" in leaf else "postgres: driver"
    if any(x in stack for x in ("urllib3", "http/client", "socket.py", "requests/")):
        if "clients/xero.py" in stack:
            return "http: sandbox Xero"
        if "clients/cliniko.py" in stack:
            return "http: sandbox Cliniko"
        return "http: other"
    if "sqlalchemy" in stack:
        return "sqlalchemy"
    if "cliniko_records.py" in stack or "snapshot.py" in stack:
        return "python: snapshot conversion"
    if "mapping_" in stack or "plans.py" in stack:
        return "python: mapping and payloads"
    if "json" in stack:
        return "python: json"
    return "python: other"


def _phase(stack: str) -> str:
    if "sync/backfill.py" in stack:
        return "discovery"
    if "sync/push.py" in stack:
        return "push"
    return "other"


def sample(args) -> dict:
    """The same in-process run under py-spy (wall-clock sampling, idle included: where the time goes,
    including waits on Postgres and HTTP that cProfile does not show as such)."""
    import shutil

    spy = shutil.which("py-spy") or str(ROOT / ".venv" / "bin" / "py-spy")
    raw = ROOT / ".run" / "bench" / "engine-spy.txt"
    in_process_backfill(args, lambda python, flask_args: [
        spy, "record", "--idle", "--nonblocking", "--format", "raw", "--rate", str(SPY_RATE), "-o", str(raw), "--",
        python, *flask_args])
    table: dict[str, dict[str, float]] = {}
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        phase = table.setdefault(_phase(stack), {})
        activity = _activity(stack)
        phase[activity] = phase.get(activity, 0.0) + int(count) / SPY_RATE
    return {
        "command": "py-spy record --idle --format raw -- python -m flask --app wsgi sync backfill engine --since … "
                   "--wait",
        "wall_seconds_by_phase": {phase: round(sum(v.values()), 2) for phase, v in table.items()},
        "wall_seconds_by_phase_and_activity": {
            phase: dict(sorted(((k, round(v, 2)) for k, v in acts.items()), key=lambda kv: -kv[1]))
            for phase, acts in table.items()},
        "raw": str(raw.relative_to(ROOT)),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--invoices", type=int, default=10_000)
    ap.add_argument("--patients", type=int, default=3_000)
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs per worker count (this shared machine's speed varies by a third from run to run; "
                         "the target is judged on the median)")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--profile", action="store_true", help="also profile one in-process run (cProfile)")
    ap.add_argument("--sample", action="store_true",
                    help="also sample one in-process run with py-spy: wall time by phase and activity")
    args = ap.parse_args()
    result = {"bench": "engine", "machine": harness.machine(),
              "sizes": {"invoices": args.invoices, "patients": args.patients}, "runs": []}
    for n in [int(x) for x in args.workers.split(",") if x]:
        for i in range(args.repeat):
            log(f"engine run with {n} worker(s), {i + 1} of {args.repeat}")
            result["runs"].append(run(args, n))
    result["median_invoices_per_second_push"] = {
        str(n): statistics.median(r["invoices_per_second_push"] or 0 for r in result["runs"] if r["workers"] == n)
        for n in sorted({r["workers"] for r in result["runs"]})}
    # With 2+ workers one pushes while another still discovers, so the push phase is only the tail after
    # discovery: compare worker counts end to end.
    result["median_invoices_per_second_end_to_end"] = {
        str(n): statistics.median(r["invoices_per_second_end_to_end"] or 0 for r in result["runs"] if r["workers"] == n)
        for n in sorted({r["workers"] for r in result["runs"]})}
    one = result["median_invoices_per_second_push"].get("1")
    if one is not None:
        result["target"] = {"invoices_per_second_one_worker>=300 (median)": one >= 300}
    if args.profile:
        log("profiled in-process run")
        result["profile"] = profile(args)
    if args.sample:
        log("sampled in-process run (py-spy)")
        result["sampled"] = sample(args)
    harness.emit(result)
    return 0 if all(result.get("target", {}).values()) else 1


if __name__ == "__main__":
    sys.exit(main())
