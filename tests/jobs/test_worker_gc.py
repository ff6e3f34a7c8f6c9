"""The worker process keeps the app it loaded out of garbage collection and collects less often: a push makes
many short-lived objects, and with Python's defaults a 2,000-invoice backfill spent 1.27 s of 15 s collecting."""

import subprocess
import sys

from jobs.worker import GC_THRESHOLDS
from tests.conftest import ROOT, subprocess_env

PROBE = """
import gc
import jobs.worker as worker
worker.AppWorker.work = lambda self, **kwargs: print(gc.get_threshold(), gc.get_freeze_count() > 10_000)
worker.main(["--burst"])
"""


def test_a_worker_collects_with_its_own_thresholds_and_the_app_frozen(redis_conn):
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=subprocess_env(), capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == f"{GC_THRESHOLDS} True"  # as the worker is about to take jobs
