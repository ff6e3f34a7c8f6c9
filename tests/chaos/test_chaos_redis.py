"""SPEC §12 (c): Redis emptied mid-run. Queued and scheduled pushes, the backfill's discovery job,
rate budgets, locks and the clock's slots all vanish; Postgres is the truth, so the clock's reaper
re-enqueues pushes for every practice with due rows: nothing lost, nothing doubled.

SPEC says FLUSHALL; this uses FLUSHDB on the suite's own Redis index (TEST_REDIS_URL) so that other
users of the same Redis server lose nothing. For the service, which uses one index, it is the same."""

import time

import redis

from tests.chaos.harness import (
    QUICK_STALE,
    SIZE,
    audit,
    finished,
    hurry_retries,
    reap,
    revive_backfills,
    run_until_finished,
    start_backfill,
    status_counts,
)
from tests.conftest import TEST_REDIS_URL


def test_redis_flushed_mid_run_loses_nothing_and_doubles_nothing(app, clinic, make_fleet, rng):
    backfill_id = start_backfill(clinic)
    fleet = make_fleet()
    conn = redis.Redis.from_url(TEST_REDIS_URL)
    # Flush at random points of the run: after a random share of the rows are synced.
    marks = sorted(rng.uniform(0.1, 0.7) for _ in range(SIZE.flushes))
    flushed = []
    deadline = time.monotonic() + SIZE.chaos_seconds
    while marks and time.monotonic() < deadline and not finished(clinic.practice.id, backfill_id):
        counts = status_counts(clinic.practice.id)
        total = max(sum(counts.values()), 1)
        if counts["synced"] / total >= marks[0]:
            conn.flushdb()
            flushed.append(dict(counts))
            marks.pop(0)
        reap(QUICK_STALE)
        revive_backfills(QUICK_STALE)
        hurry_retries()
        time.sleep(0.2)
    conn.close()
    assert flushed, "the run ended before Redis was flushed"
    alive = [p.poll() is None for p in fleet.workers]

    calm = run_until_finished(clinic, backfill_id, fleet, SIZE.finish_seconds, stale=QUICK_STALE)
    fleet.stop()
    counts = audit(clinic)
    print(f"\nflushed at {flushed}; workers alive after: {alive}; finished {calm:.1f} s after, audit: {counts}")
