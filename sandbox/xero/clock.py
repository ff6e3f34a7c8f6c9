"""The emulator's clock: real time plus an offset, which tests can move or freeze."""

import datetime as dt
import threading
import time

# Organisations in the fixtures are Australian; "today" is taken at UTC+10 (AEST).
ORG_UTC_OFFSET = dt.timedelta(hours=10)


class Clock:
    """A settable, freezable wall clock (seconds since the epoch)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offset = 0.0
        self._frozen_at: float | None = None

    def now(self) -> float:
        """Current emulated time as epoch seconds."""
        with self._lock:
            if self._frozen_at is not None:
                return self._frozen_at
            return time.time() + self._offset

    def now_ms(self) -> int:
        """Current emulated time as epoch milliseconds."""
        return int(self.now() * 1000)

    def utcnow(self) -> dt.datetime:
        """Current emulated time as an aware UTC datetime."""
        return dt.datetime.fromtimestamp(self.now(), tz=dt.UTC)

    def org_today(self) -> dt.date:
        """The organisation's local date (AEST)."""
        return (self.utcnow() + ORG_UTC_OFFSET).date()

    def advance(self, seconds: float) -> None:
        """Move the clock forward (or back, if negative)."""
        with self._lock:
            if self._frozen_at is not None:
                self._frozen_at += seconds
            else:
                self._offset += seconds

    def set(self, epoch: float) -> None:
        """Jump to an absolute time, keeping the frozen/running mode."""
        with self._lock:
            if self._frozen_at is not None:
                self._frozen_at = epoch
            else:
                self._offset = epoch - time.time()

    def freeze(self, frozen: bool) -> None:
        """Stop (or restart) the clock at the current emulated time."""
        with self._lock:
            current = self._frozen_at if self._frozen_at is not None else time.time() + self._offset
            if frozen:
                self._frozen_at = current
            else:
                self._frozen_at = None
                self._offset = current - time.time()

    def reset(self) -> None:
        """Back to real time, running."""
        with self._lock:
            self._offset = 0.0
            self._frozen_at = None

    def describe(self) -> dict:
        """JSON view of the clock for the control endpoints."""
        now = self.now()
        with self._lock:
            frozen = self._frozen_at is not None
        return {
            "now": dt.datetime.fromtimestamp(now, tz=dt.UTC).isoformat(),
            "epoch": now,
            "offset_seconds": round(now - time.time(), 3),
            "frozen": frozen,
        }
