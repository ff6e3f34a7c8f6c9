"""Helpers for the multi-process budget tests and the Cliniko scale tests (no tests in here).

* `xero_sandbox_process` runs `python -m sandbox.xero` as a real subprocess on a free 127.0.0.1 port,
  so the worker processes forked by the tests never inherit a running server thread.
* `connect_orgs` walks the sandbox's sign-in + consent pages once per organisation (one user, two
  consents) and returns a bearer token and tenant id for each.
* `hammer` is the body of one worker process: a job loop around a real `XeroClient` with a real
  `RateBudget` in Redis; a refusal ("not before T") makes it sleep until T, or stop ("re-schedule")
  when T is after the end of the run. It reports what it saw through a multiprocessing queue.
"""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import redis as redis_lib
import requests

from tests.support.xero import consent_at_sandbox
from webapp.clients.errors import BudgetExhaustedError, ClientError, RateLimitedError
from webapp.clients.rate_limit import BudgetSettings, xero_budget
from webapp.clients.xero import XeroClient

from .conftest import REDIS_URL

ROOT = Path(__file__).resolve().parents[2]
REDIRECT = "http://localhost/callback"
SCOPES = "offline_access accounting.invoices accounting.payments accounting.contacts accounting.settings.read"
DEMO = "Demo Clinic Pty Ltd"
HARBOURSIDE = "Harbourside Physio Pty Ltd"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def xero_sandbox_process(window_seconds: float, startup_timeout: float = 15.0) -> Iterator[str]:
    """`python -m sandbox.xero --port P --window-seconds W` as a subprocess; yields its base URL."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("XERO_SANDBOX_AUTO_CONSENT", None)  # the consent page is needed to pick each organisation
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox.xero", "--port", str(port), "--window-seconds", str(window_seconds)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout
        for _ in range(1000):
            if proc.poll() is not None:
                raise RuntimeError(f"sandbox xero exited with {proc.returncode}")
            try:
                if requests.get(f"{base}/_sandbox/state?summary=1", timeout=1).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("sandbox xero did not start in time")
            time.sleep(0.05)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def connect_orgs(base: str, names=(DEMO, HARBOURSIDE)) -> dict[str, dict]:
    """One user consents once per organisation; returns {name: {"token", "tenant_id"}}."""
    out = {}
    for name in names:
        authorize = f"{base}/identity/connect/authorize?" + urlencode({
            "response_type": "code", "client_id": "sandbox-client", "redirect_uri": REDIRECT,
            "scope": SCOPES, "state": "scale"})
        callback = consent_at_sandbox(authorize, org_name=name)
        code = parse_qs(urlsplit(callback).query)["code"][0]
        tokens = requests.post(f"{base}/connect/token", auth=("sandbox-client", "sandbox-secret"), timeout=10,
                               data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT})
        tokens.raise_for_status()
        token = tokens.json()["access_token"]
        connections = requests.get(f"{base}/connections", timeout=10,
                                   headers={"Authorization": f"Bearer {token}"}).json()
        tenant = next(c["tenantId"] for c in connections if c["tenantName"] == name)
        out[name] = {"token": token, "tenant_id": tenant}
    return out


def sandbox_post(base: str, path: str, body: dict) -> dict:
    response = requests.post(f"{base}/_sandbox/{path}", json=body, timeout=10)
    response.raise_for_status()
    return response.json()


def org_calls(base: str) -> dict[str, dict]:
    """{tenant_id: calls} from the sandbox's /_sandbox/state."""
    body = requests.get(f"{base}/_sandbox/state", params={"summary": 1}, timeout=10).json()
    return {org["tenant_id"]: org["calls"] for org in body["organisations"]}


def hammer(name: str, api: str, token: str, tenant_id: str, settings: dict, start_at: float, stop_at: float,
           out) -> None:
    """One worker process: call GET /Accounts through the budget as fast as the budget allows."""
    conn = redis_lib.Redis.from_url(REDIS_URL)
    budget = xero_budget(conn, BudgetSettings(**settings))
    client = XeroClient(api, lambda: token, tenant_id, budget=budget, read_retries=0, connect_timeout=2.0,
                        read_timeout=10.0)
    stats = {
        "name": name, "tenant_id": tenant_id, "ok": 0, "ok_times": [], "refused": Counter(),
        "min_wait": None, "zero_waits": Counter(), "slept": 0.0, "too_early": 0, "rate_limited": [],
        "errors": Counter(),
        "rescheduled": None, "pid": os.getpid(),
    }
    time.sleep(max(0.0, start_at - time.time()))
    try:
        for _ in range(20_000):  # bounded; the clock below ends it long before
            if time.time() >= stop_at:
                break
            try:
                client.accounts()
                stats["ok"] += 1
                stats["ok_times"].append(client.last_call.started_at)
            except BudgetExhaustedError as exc:
                stats["refused"][exc.problem] += 1
                asked = time.time()
                wait = exc.retry_after  # not_before - the decision's own now
                if wait <= 0:
                    stats["zero_waits"][exc.problem] += 1
                stats["min_wait"] = wait if stats["min_wait"] is None else min(stats["min_wait"], wait)
                if exc.reset_at >= stop_at:
                    # In production the job re-schedules itself for `reset_at`; here the run is over.
                    stats["rescheduled"] = {"problem": exc.problem, "at": exc.reset_at, "asked": asked}
                    break
                time.sleep(max(0.0, exc.reset_at - time.time()))
                stats["slept"] += time.time() - asked
                if time.time() < exc.reset_at:
                    stats["too_early"] += 1
            except RateLimitedError as exc:
                call = exc.call
                stats["rate_limited"].append({
                    "problem": exc.problem, "retry_after": exc.retry_after,
                    "at": call.started_at if call else time.time(), "ended": time.time(),
                })
            except ClientError as exc:
                stats["errors"][f"{type(exc).__name__}: {exc.message}"] += 1
                time.sleep(0.05)
    finally:
        stats["refused"] = dict(stats["refused"])
        stats["errors"] = dict(stats["errors"])
        stats["zero_waits"] = dict(stats["zero_waits"])
        out.put(stats)
        conn.close()


def run_workers(ctx, jobs: list[tuple], seconds: float, warmup: float = 0.8,
                during=None) -> tuple[list[dict], float, float]:
    """Fork one process per job (name, api, token, tenant, settings); all start together for `seconds`.

    `during=(offset, fn)` calls `fn()` in this process `offset` seconds after the start.
    """
    out = ctx.Queue()
    # Other test sessions may share (and FLUSHDB) the same Redis database: detect it, do not misread it.
    sentinel = redis_lib.Redis.from_url(REDIS_URL)
    sentinel.set("scale-test:sentinel", "1", ex=600)
    start_at = time.time() + warmup
    stop_at = start_at + seconds
    procs = [ctx.Process(target=hammer, args=(*job, start_at, stop_at, out), daemon=True) for job in jobs]
    for proc in procs:
        proc.start()
    if during is not None:
        offset, action = during
        time.sleep(max(0.0, start_at + offset - time.time()))
        action()
    results = []
    deadline = time.monotonic() + warmup + seconds + 20
    while len(results) < len(procs) and time.monotonic() < deadline:
        try:
            results.append(out.get(timeout=0.2))
        except queue.Empty:
            if not any(p.is_alive() for p in procs) and out.empty():
                break
    for proc in procs:
        proc.join(timeout=5)
        if proc.is_alive():
            proc.terminate()
            proc.join(timeout=5)
    flushed = not sentinel.exists("scale-test:sentinel")
    sentinel.close()
    if flushed:
        raise AssertionError(f"Redis {REDIS_URL} was flushed by another process during the run; the budget's "
                             "state was lost. Run these tests with a TEST_REDIS_URL database of their own.")
    assert len(results) == len(procs), f"only {len(results)} of {len(procs)} workers reported"
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
    return results, start_at, stop_at
