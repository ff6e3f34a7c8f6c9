"""Xero's API limits: per-tenant fixed windows (phase differs per tenant), concurrency, daily and app-wide caps."""

import dataclasses
import hashlib
import math
import threading
from collections import Counter

MINUTE = "minute"
DAY = "day"
CONCURRENT = "concurrent"
APP_MINUTE = "appminute"


@dataclasses.dataclass
class Admission:
    """The limiter's answer for one call."""

    allowed: bool
    problem: str | None = None
    retry_after: int | None = None
    headers: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class _TenantCounters:
    in_flight: int = 0
    minute_window: int | None = None
    minute_count: int = 0
    day_window: int | None = None
    day_count: int = 0
    admitted: int = 0
    rejected: Counter = dataclasses.field(default_factory=Counter)
    statuses: Counter = dataclasses.field(default_factory=Counter)


def _phase(key: str, length: float) -> float:
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 * length


class RateLimiter:
    """Counts calls per tenant and per client app in fixed windows on the emulator's clock."""

    def __init__(self, settings, clock) -> None:
        self.settings = settings
        self.clock = clock
        self.lock = threading.Lock()
        self.tenants: dict[str, _TenantCounters] = {}
        self.apps: dict[str, list] = {}
        self.tenant_day_limits: dict[str, int] = {}

    def reset(self) -> None:
        """Forget all counts."""
        with self.lock:
            self.tenants.clear()
            self.apps.clear()

    def _window(self, key: str, length: float, now: float) -> tuple[int, float]:
        phase = _phase(key, length)
        index = math.floor((now - phase) / length)
        return index, phase + (index + 1) * length

    def _tenant(self, tenant_id: str) -> _TenantCounters:
        counters = self.tenants.get(tenant_id)
        if counters is None:
            counters = self.tenants[tenant_id] = _TenantCounters()
        return counters

    def day_limit(self, org) -> int:
        """The daily cap for an organisation: explicit, Starter tier, or the default."""
        if org is not None and org.data.get("day_limit"):
            return int(org.data["day_limit"])
        if org is not None and org.data.get("tier") == "starter":
            return self.settings.starter_day_limit
        return self.settings.day_limit

    def admit(self, client_id: str, tenant_id: str, day_limit: int) -> Admission:
        """Count one call (or refuse it with the limit that was hit)."""
        s = self.settings
        now = self.clock.now()
        with self.lock:
            counters = self._tenant(tenant_id)
            minute_index, minute_end = self._window("minute:" + tenant_id, s.window_seconds, now)
            if counters.minute_window != minute_index:
                counters.minute_window, counters.minute_count = minute_index, 0
            day_index, day_end = self._window("day:" + tenant_id, s.day_seconds, now)
            if counters.day_window != day_index:
                counters.day_window, counters.day_count = day_index, 0
            app = self.apps.setdefault(client_id, [None, 0])
            app_index, _ = self._window("app:" + client_id, s.window_seconds, now)
            if app[0] != app_index:
                app[0], app[1] = app_index, 0

            problem, retry = None, None
            if counters.in_flight >= s.concurrent_limit:
                problem = CONCURRENT
            elif counters.day_count >= day_limit:
                problem, retry = DAY, day_end - now
            elif counters.minute_count >= s.minute_limit:
                problem, retry = MINUTE, minute_end - now
            elif app[1] >= s.app_minute_limit:
                problem = APP_MINUTE
            if problem is None:
                counters.in_flight += 1
                counters.minute_count += 1
                counters.day_count += 1
                counters.admitted += 1
                app[1] += 1
            else:
                counters.rejected[problem] += 1
            headers = {
                "X-DayLimit-Remaining": str(max(0, day_limit - counters.day_count)),
                "X-MinLimit-Remaining": str(max(0, s.minute_limit - counters.minute_count)),
                "X-AppMinLimit-Remaining": str(max(0, s.app_minute_limit - app[1])),
            }
        retry_after = None if retry is None else max(1, math.ceil(retry))
        return Admission(problem is None, problem, retry_after, headers)

    def app_call(self, client_id: str) -> dict:
        """Count a tenantless call (e.g. /connections) against the app window; returns its header."""
        now = self.clock.now()
        with self.lock:
            app = self.apps.setdefault(client_id, [None, 0])
            index, _ = self._window("app:" + client_id, self.settings.window_seconds, now)
            if app[0] != index:
                app[0], app[1] = index, 0
            app[1] += 1
            remaining = max(0, self.settings.app_minute_limit - app[1])
        return {"X-AppMinLimit-Remaining": str(remaining)}

    def release(self, tenant_id: str) -> None:
        """A call admitted by `admit` has finished."""
        with self.lock:
            counters = self._tenant(tenant_id)
            counters.in_flight = max(0, counters.in_flight - 1)

    def record_status(self, tenant_id: str, status: int) -> None:
        """Count a response status for /_sandbox/state."""
        with self.lock:
            self._tenant(tenant_id).statuses[str(status)] += 1

    def stats(self, tenant_id: str) -> dict:
        """Per-tenant call counts, 429s included."""
        with self.lock:
            c = self.tenants.get(tenant_id) or _TenantCounters()
            return {
                "admitted": c.admitted,
                "rate_limited": sum(c.rejected.values()),
                "rate_limited_by_problem": dict(c.rejected),
                "by_status": dict(c.statuses),
                "in_flight": c.in_flight,
                "minute_count": c.minute_count,
                "day_count": c.day_count,
            }
