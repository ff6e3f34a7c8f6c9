"""Rate budgets shared by every worker process through Redis (atomic Lua scripts).

A budget answers `acquire(key)` at once with a `Decision`: go (with a lease to release after the
call) or "not before T" naming the budget that is short, so a job can re-schedule itself instead
of sleeping. Windows are sliding logs (a sorted set of call times), which keeps the number of calls
in *any* window-length interval under the limit, and so under the limit of every fixed window the
provider may use, whatever its phase. Concurrency slots are leases with an expiry, so a process
that dies mid-call frees its slot when the lease runs out.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from .errors import BudgetExhaustedError
from .rate_limit_scripts import ACQUIRE, OBSERVE, PARK

log = logging.getLogger(__name__)

MINUTE, DAY, CONCURRENT, APP_MINUTE = "minute", "day", "concurrent", "appminute"


@dataclass(frozen=True)
class BudgetSettings:
    """Limits for one budget family; 0 switches a limit off."""

    window_seconds: float = 60.0
    calls_per_window: int = 60
    max_concurrent: int = 5
    daily_calls: int = 5000
    app_calls_per_window: int = 10000
    #: A concurrency slot held longer than this is presumed abandoned (its process died).
    lease_seconds: float = 120.0
    #: Length of the daily window (UTC-aligned); corrected by `X-DayLimit-Remaining`.
    day_seconds: int = 86400
    #: How soon to look again when all concurrency slots are taken.
    concurrency_retry_seconds: float = 0.5
    #: Extra length given to our sliding window: we count a call when it is admitted here, Xero when
    #: it arrives there, and the gap between the two (network, a busy machine) could otherwise put a
    #: 61st call into one of Xero's windows. None = 5% of the window, at most 0.25 s.
    guard_seconds: float | None = None

    @property
    def effective_window(self) -> float:
        """The window length actually enforced (window + guard)."""
        guard = self.guard_seconds if self.guard_seconds is not None else min(0.25, self.window_seconds * 0.05)
        return self.window_seconds + guard


@dataclass(frozen=True)
class Decision:
    """The answer of `acquire`: go (release `lease` after the call) or wait until `not_before`."""

    go: bool
    key: str
    now: float
    lease: str | None = None
    not_before: float | None = None
    budget: str | None = None

    @property
    def wait_seconds(self) -> float:
        """Seconds to wait before asking again (0 when the decision is go)."""
        return 0.0 if self.go or self.not_before is None else max(0.0, self.not_before - self.now)

    @property
    def not_before_datetime(self) -> datetime | None:
        """`not_before` as an aware UTC datetime (None when go)."""
        return None if self.not_before is None else datetime.fromtimestamp(self.not_before, UTC)


@dataclass(frozen=True)
class BudgetSnapshot:
    """Read-only view of one key's budgets, for the System screen."""

    key: str
    at: float
    window_seconds: float
    window_used: int
    window_limit: int
    window_floor: int
    concurrent_in_use: int
    max_concurrent: int
    day_used: int
    daily_limit: int
    day_resets_at: float
    app_used: int
    app_limit: int
    parked_until: float | None
    parked_problem: str | None
    app_parked_until: float | None
    last_headers: dict

    def as_dict(self) -> dict:
        """Plain dict (for JSON or templates)."""
        return asdict(self)


def _num(value) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


class RateBudget:
    """Budgets for many keys (Xero tenants, Cliniko API keys) plus one app-wide window, in Redis."""

    def __init__(
        self,
        redis,
        settings: BudgetSettings | None = None,
        *,
        namespace: str = "xero",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = redis
        self.settings = settings or BudgetSettings()
        self.namespace = namespace
        self.clock = clock
        self._acquire = redis.register_script(ACQUIRE)
        self._observe = redis.register_script(OBSERVE)
        self._park = redis.register_script(PARK)

    # -- keys -----------------------------------------------------------------------------------
    def _k(self, *parts: str) -> str:
        return ":".join(("rl", self.namespace, *parts))

    def _day(self, now: float) -> tuple[str, float]:
        index = int(now // self.settings.day_seconds)
        return str(index), float((index + 1) * self.settings.day_seconds)

    def _keys(self, key: str, now: float) -> list[str]:
        day_index, _ = self._day(now)
        return [
            self._k("park", key),
            self._k("app", "park"),
            self._k("day", key, day_index),
            self._k("win", key),
            self._k("floor", key),
            self._k("app", "win"),
            self._k("app", "floor"),
            self._k("lease", key),
        ]

    # -- public API -----------------------------------------------------------------------------
    def acquire(self, key: str) -> Decision:
        """Take one call from every budget of `key` at once, or say when to ask again; never blocks."""
        s = self.settings
        now = self.clock()
        _, day_end = self._day(now)
        member = f"{now:.6f}:{uuid.uuid4().hex}"
        go, at, problem = self._acquire(
            keys=self._keys(key, now),
            args=[
                repr(now), s.effective_window, s.calls_per_window, s.app_calls_per_window, s.daily_calls,
                day_end, s.max_concurrent, repr(now + s.lease_seconds), member, s.concurrency_retry_seconds,
            ],
        )
        if int(go) == 1:
            return Decision(True, key, now, lease=member if s.max_concurrent > 0 else None)
        budget = problem.decode() if isinstance(problem, bytes) else str(problem)
        not_before = float(at)
        log.debug("budget %s/%s short on %s until %.3f", self.namespace, key, budget, not_before)
        return Decision(False, key, now, not_before=not_before, budget=budget)

    def acquire_blocking(
        self, key: str, max_wait: float, sleep: Callable[[float], None] = time.sleep
    ) -> Decision:
        """Acquire, sleeping while the budget refills, for at most `max_wait` seconds.

        For callers that must wait in place (a Cliniko poll); raises BudgetExhaustedError when the
        budget will not return within `max_wait`.
        """
        deadline = self.clock() + max_wait
        for _ in range(10_000):
            decision = self.acquire(key)
            if decision.go:
                return decision
            if decision.not_before is None or decision.not_before > deadline:
                break
            sleep(max(0.005, min(decision.wait_seconds, deadline - self.clock())))
        raise BudgetExhaustedError(
            f"{self.namespace} {decision.budget} budget exhausted",
            retry_after=decision.wait_seconds,
            problem=decision.budget,
            reset_at=decision.not_before,
        )

    def release(self, decision: Decision | None) -> bool:
        """Give back the concurrency slot of a go decision (no-op for others); True if it was held."""
        if decision is None or not decision.lease:
            return False
        return bool(self.redis.zrem(self._k("lease", decision.key), decision.lease))

    def observe(self, key: str, headers: Mapping[str, str], status: int | None = None) -> None:
        """Correct the budgets from a response's rate headers; a 429 parks the key (or the app)."""
        s = self.settings
        now = self.clock()
        day_index, day_end = self._day(now)
        minute = _num(_header(headers, "X-MinLimit-Remaining"))
        day = _num(_header(headers, "X-DayLimit-Remaining"))
        app = _num(_header(headers, "X-AppMinLimit-Remaining"))
        # Park before correcting the counters: a concurrent acquire between the two must see the
        # time Xero gave, not our own day boundary.
        if status == 429:
            problem = (_header(headers, "X-Rate-Limit-Problem") or MINUTE).strip().lower()
            retry_after = _retry_after_seconds(_header(headers, "Retry-After"), now)
            if retry_after is None:
                defaults = {DAY: day_end - now, CONCURRENT: s.concurrency_retry_seconds}
                retry_after = defaults.get(problem, s.window_seconds)
            self.park(None if problem == APP_MINUTE else key, now + retry_after, problem)
        if minute is not None or day is not None or app is not None:
            self._observe(
                keys=[
                    self._k("win", key), self._k("floor", key), self._k("app", "win"),
                    self._k("app", "floor"), self._k("day", key, day_index),
                ],
                args=[
                    repr(now), s.effective_window, s.calls_per_window, s.app_calls_per_window, s.daily_calls,
                    "" if minute is None else minute, "" if app is None else app, "" if day is None else day,
                    day_end,
                ],
            )
            seen = {"at": repr(now)}
            for name, value in (("minute_remaining", minute), ("day_remaining", day), ("app_remaining", app)):
                if value is not None:
                    seen[name] = str(value)
            pipe = self.redis.pipeline(transaction=False)
            pipe.hset(self._k("seen", key), mapping=seen)
            pipe.expire(self._k("seen", key), 2 * 86400)
            pipe.execute()

    def park(self, key: str | None, until: float, problem: str) -> None:
        """Refuse calls for `key` (None = the whole app) until epoch `until`; a longer park wins."""
        target = self._k("app", "park") if key is None else self._k("park", key)
        self._park(keys=[target], args=[repr(float(until)), problem, repr(self.clock())])
        log.info("budget %s/%s parked for %.1fs (%s)", self.namespace, key or "*app*", until - self.clock(),
                 problem)

    def snapshot(self, key: str) -> BudgetSnapshot:
        """Current usage of every budget of `key`, without changing anything."""
        s = self.settings
        now = self.clock()
        day_index, day_end = self._day(now)
        since = f"({now - s.effective_window!r}"
        pipe = self.redis.pipeline(transaction=False)
        pipe.zcount(self._k("win", key), since, "+inf")
        pipe.hgetall(self._k("floor", key))
        pipe.zcount(self._k("lease", key), f"({now!r}", "+inf")
        pipe.get(self._k("day", key, day_index))
        pipe.zcount(self._k("app", "win"), since, "+inf")
        pipe.hgetall(self._k("park", key))
        pipe.hgetall(self._k("app", "park"))
        pipe.hgetall(self._k("seen", key))
        used, floor, leases, day_used, app_used, park, app_park, seen = pipe.execute()

        park, app_park, seen, floor = _text_map(park), _text_map(app_park), _text_map(seen), _text_map(floor)

        def _until(h):
            value = h.get("until")
            return float(value) if value is not None and float(value) > now else None

        parked_until = _until(park)
        return BudgetSnapshot(
            key=key, at=now, window_seconds=s.window_seconds,
            window_used=int(used), window_limit=s.calls_per_window,
            window_floor=int(floor["used"]) if _until(floor) else 0,
            concurrent_in_use=int(leases), max_concurrent=s.max_concurrent,
            day_used=int(day_used or 0), daily_limit=s.daily_calls, day_resets_at=day_end,
            app_used=int(app_used), app_limit=s.app_calls_per_window,
            parked_until=parked_until,
            parked_problem=(park.get("problem") or None) if parked_until else None,
            app_parked_until=_until(app_park),
            last_headers=seen,
        )


def _text_map(raw: Mapping) -> dict[str, str]:
    """A Redis hash as str -> str, whether or not the client decodes responses."""
    return {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in raw.items()}


def _retry_after_seconds(value: str | None, now: float) -> float | None:
    """`Retry-After` as seconds from now (Xero sends seconds; an HTTP date is accepted too)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            seconds = parsedate_to_datetime(value).timestamp() - now
        except (TypeError, ValueError):
            return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


def xero_budget(redis, settings: BudgetSettings | None = None, **kw) -> RateBudget:
    """The Xero budget: per tenant window, concurrency and day, plus the app-wide window."""
    return RateBudget(redis, settings or BudgetSettings(), namespace="xero", **kw)


def cliniko_budget(redis, calls_per_minute: int = 200, window_seconds: float = 60.0, **kw) -> RateBudget:
    """The Cliniko budget: a calls-per-minute window per API key, nothing else."""
    settings = BudgetSettings(
        window_seconds=window_seconds, calls_per_window=calls_per_minute,
        max_concurrent=0, daily_calls=0, app_calls_per_window=0,
    )
    return RateBudget(redis, settings, namespace="cliniko", **kw)


def key_fingerprint(secret: str) -> str:
    """A stable, non-reversible name for a secret (an API key) to use in Redis keys and logs."""
    return hashlib.sha256(secret.encode()).hexdigest()[:16]
