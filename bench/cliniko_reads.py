"""SPEC §11 "Cliniko reads": Cliniko calls to discover N invoices (with items and patients) by `flask sync poll`.

    python bench/cliniko_reads.py [--invoices 10000 --patients 3000]

A practice (no Xero needed for discovery) whose cursor starts before every invoice (its `sync_from`
setting, written by SQL: there is no CLI for it yet) is polled once; the calls are counted by
sandbox Cliniko (`/_sandbox/state` → `calls`). A first poll without `sync_from` loads the catalogue
so its calls are reported apart. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from datetime import date, timedelta

import harness
from harness import CLINIKO_KEY, HUGE, Stack, log

SLUG = "reads"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--invoices", type=int, default=10_000)
    ap.add_argument("--patients", type=int, default=3_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--real-limit", action="store_true",
                    help="keep Cliniko's 200 calls/minute (the poll then waits for windows; calls are the same)")
    args = ap.parse_args()
    cpm = 200 if args.real_limit else HUGE
    result = {"bench": "cliniko_reads", "machine": harness.machine()}
    with Stack(db="cliniko_xero_bench_reads", redis_db=10, env={"CLINIKO_CALLS_PER_MINUTE": str(cpm)}) as stack:
        stack.start_cliniko(seed=args.seed, patients=args.patients, invoices=args.invoices,
                            calls_per_minute=min(cpm, 2**31 - 1))
        practice_id = stack.create_practice(SLUG, connect=False)

        def calls() -> tuple[int, int]:
            s = stack.cliniko_state()
            return s["calls"].get(CLINIKO_KEY, 0), s.get("rate_limited", {}).get(CLINIKO_KEY, 0)

        c0, _ = calls()
        stack.flask("sync", "poll", SLUG)  # cursor = now: the catalogue and one empty page
        c1, _ = calls()
        sync_from = (date.today() - timedelta(days=400)).isoformat()
        stack.sql("UPDATE practices SET settings = coalesce(settings, '{}'::jsonb) || jsonb_build_object("
                  "'sync_from', %s::text), poll_cursors = '{}'::jsonb WHERE id = %s", (sync_from, practice_id),
                  fetch=False)
        log(f"polling {args.invoices} invoices")
        t0 = time.monotonic()
        out = stack.flask("sync", "poll", SLUG, timeout=1800).strip()
        elapsed = time.monotonic() - t0
        c2, limited = calls()
        state = stack.cliniko_state()
        rows = dict(stack.sql("SELECT kind, count(*) FROM sync_jobs WHERE practice_id = %s GROUP BY kind",
                              (practice_id,)))
        live = state["counts"]["invoices"]
    discovered = rows.get("invoice", 0)
    pages = math.ceil(discovered / 100) if discovered else 0
    discovery_calls = c2 - c1
    result.update({
        "sizes": {"invoices_generated": args.invoices, "patients": args.patients,
                  "cliniko_invoice_counts": live},
        "discovered_invoices": discovered, "rows": rows, "poll_output": out,
        "discovery_calls": discovery_calls,
        "catalogue_calls": c1 - c0,
        "calls_per_100_invoices": round(discovery_calls / discovered * 100, 2) if discovered else None,
        "invoice_pages_of_100": pages,
        "target_calls_for_10000": 350,
        "scaled_to_10000": round(discovery_calls * 10_000 / discovered) if discovered else None,
        "target_met": (discovery_calls * 10_000 / discovered) <= 350 if discovered else None,
        "rate_limited": limited, "cliniko_calls_per_minute": "200 (real)" if args.real_limit else "unlimited",
        "elapsed_seconds": round(elapsed, 2),
    })
    harness.emit(result)
    return 0 if result["target_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
