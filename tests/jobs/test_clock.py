"""The clock: periodic jobs enqueued once per slot, even with two clock processes running."""

import subprocess
import sys
import time

from rq import Queue

from jobs import clock
from tests.conftest import ROOT, subprocess_env


def test_tick_claims_each_slot_once(redis_conn):
    jobs = [clock.Periodic("heartbeat", "jobs.maintenance.heartbeat", 10)]
    now = 1_000_000.0
    assert clock.tick(redis_conn, jobs, now) == ["heartbeat"]
    assert clock.tick(redis_conn, jobs, now + 5) == []  # same 10 s slot
    assert clock.tick(redis_conn, jobs, now + 10) == ["heartbeat"]
    assert Queue("maintenance", connection=redis_conn).count == 2


def test_two_clock_processes_do_not_duplicate_runs(redis_conn):
    env = subprocess_env(HEARTBEAT_SECONDS="1", CLOCK_STOP_AFTER="3.2")
    start = time.time()
    procs = [
        subprocess.Popen([sys.executable, "-m", "jobs.clock"], cwd=ROOT, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    for proc in procs:
        assert proc.wait(timeout=60) == 0, proc.stderr.read().decode()[-2000:]
    elapsed = time.time() - start
    queue = Queue("maintenance", connection=redis_conn)
    heartbeats = [j for j in queue.get_jobs() if j.func_name == "jobs.maintenance.heartbeat"]
    slots = redis_conn.keys("clock:slot:heartbeat:*")
    # One run per one-second slot the clocks were alive in, never two.
    assert len(heartbeats) == len(slots)
    assert 2 <= len(heartbeats) <= int(elapsed) + 1
    winners = {redis_conn.get(k) for k in slots}
    assert len(winners) >= 1
