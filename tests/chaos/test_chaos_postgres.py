"""SPEC §12 (d): Postgres restarted mid-run (`pg_ctl restart -m fast`): every process loses its
connections at once; workers' jobs fail, claimed rows are left `running` and come back through the
reaper; the run completes with nothing lost and nothing doubled.

The shared Postgres is never touched: this module starts a throwaway cluster (initdb as the
`postgres` OS user into a temporary directory under .run/, `pg_ctl start` on a free port with
`-c fsync=off`), migrates it with Alembic, and points the app, the workers and the clock at it
(the `app` fixture is overridden here). The cluster is stopped and deleted at the end."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

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
    truncate_all,
)
from tests.conftest import ROOT, IsolatedClient, app_overrides, subprocess_env

DB_NAME = "cliniko_xero_chaos_restart"


def pg_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")


def as_postgres(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a server binary as the `postgres` OS user (initdb and postgres refuse root)."""
    if os.geteuid() == 0:
        args = ["runuser", "-u", "postgres", "--", *args]
    return subprocess.run(args, capture_output=True, text=True, check=True, timeout=120, **kwargs)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Cluster:
    bin: Path
    data: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DB_NAME}"

    def ctl(self, *args: str) -> None:
        # Always with -l: a postmaster writing to our pipes would keep subprocess.run waiting.
        as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.data.parent / "log"),
                     "-w", "-t", "60", *args])

    def restart(self) -> None:
        self.ctl("restart", "-m", "fast")


@pytest.fixture(scope="module")
def throwaway_postgres():
    bin_dir = pg_bin()
    run = ROOT / ".run"
    run.mkdir(exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="chaos-pg-", dir=run))
    if os.geteuid() == 0:
        shutil.chown(home, "postgres")
    cluster = Cluster(bin_dir, home / "data", free_port())
    as_postgres([str(bin_dir / "initdb"), "-D", str(cluster.data), "-U", "postgres", "-A", "trust", "-E", "UTF8"])
    options = f"-p {cluster.port} -k {home} -c listen_addresses=127.0.0.1 -c fsync=off"
    try:
        cluster.ctl("-o", options, "start")
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{cluster.port}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{DB_NAME}"')
        migrated = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"], cwd=ROOT,
                                  env=subprocess_env(DATABASE_URL=cluster.url), capture_output=True, text=True,
                                  timeout=120)
        assert migrated.returncode == 0, migrated.stderr
        yield cluster
    finally:
        subprocess.run(["runuser", "-u", "postgres", "--"] * (os.geteuid() == 0)
                       + [str(bin_dir / "pg_ctl"), "-D", str(cluster.data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def app(throwaway_postgres, redis_conn):
    """The app on the throwaway cluster (overrides the suite's `app`; everything else builds on it)."""
    from webapp import create_app
    from webapp.extensions import db

    app = create_app(app_overrides(DATABASE_URL=throwaway_postgres.url))
    app.test_client_class = IsolatedClient
    with app.app_context():
        yield app
        truncate_all()
        db.engine.dispose()


def test_postgres_restarted_mid_run_loses_nothing_and_doubles_nothing(app, clinic, make_fleet, rng,
                                                                     throwaway_postgres):
    backfill_id = start_backfill(clinic)
    fleet = make_fleet(DATABASE_URL=throwaway_postgres.url)
    marks = sorted(rng.uniform(0.1, 0.7) for _ in range(SIZE.restarts))
    restarted = []
    deadline = time.monotonic() + SIZE.chaos_seconds
    while marks and time.monotonic() < deadline and not finished(clinic.practice.id, backfill_id):
        counts = status_counts(clinic.practice.id)
        if counts["synced"] / max(sum(counts.values()), 1) >= marks[0]:
            started = time.monotonic()
            throwaway_postgres.restart()
            restarted.append((dict(counts), round(time.monotonic() - started, 1)))
            marks.pop(0)
        reap(QUICK_STALE)
        revive_backfills(QUICK_STALE)
        hurry_retries()
        time.sleep(0.2)
    assert restarted, "the run ended before Postgres was restarted"
    alive = [p.poll() is None for p in fleet.workers]

    calm = run_until_finished(clinic, backfill_id, fleet, SIZE.finish_seconds, stale=QUICK_STALE)
    fleet.stop()
    counts = audit(clinic)
    print(f"\nrestarted at {restarted}; workers alive after: {alive}; finished {calm:.1f} s after, audit: {counts}")
