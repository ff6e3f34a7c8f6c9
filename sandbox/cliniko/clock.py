"""The emulator's clock (settable, freezable) and Cliniko's UTC timestamp format."""

import threading
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache


def iso(dt: datetime) -> str:
    """Format an aware datetime as Cliniko does: UTC, whole seconds, `Z` suffix."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@lru_cache(maxsize=200_000)
def parse_iso(value: str) -> datetime:
    """Parse an ISO-8601 timestamp (or a bare date, taken as midnight UTC) to an aware UTC datetime."""
    text = value.strip()
    if len(text) == 10:
        return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
    dt = datetime.fromisoformat(text.replace("z", "Z"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


class Clock:
    """Wall-clock time shifted by an offset, or frozen at a fixed instant; thread-safe."""

    def __init__(self, now: datetime | str | None = None, frozen: bool = False):
        self._lock = threading.Lock()
        self._offset = timedelta(0)
        self._frozen_at: datetime | None = None
        if now is not None:
            self.set(now, frozen=frozen)
        elif frozen:
            self._frozen_at = self._real_now()

    @staticmethod
    def _real_now() -> datetime:
        return datetime.now(UTC).replace(microsecond=0)

    def now(self) -> datetime:
        """The emulator's current time (aware, UTC, whole seconds)."""
        with self._lock:
            if self._frozen_at is not None:
                return self._frozen_at
            return (self._real_now() + self._offset).replace(microsecond=0)

    @property
    def frozen(self) -> bool:
        """Whether the clock stands still."""
        return self._frozen_at is not None

    def set(self, now: datetime | str, frozen: bool | None = None) -> None:
        """Move the clock to `now`; keep it running unless frozen (None keeps the current mode)."""
        target = parse_iso(now) if isinstance(now, str) else now.astimezone(UTC).replace(microsecond=0)
        with self._lock:
            keep_frozen = self._frozen_at is not None if frozen is None else frozen
            if keep_frozen:
                self._frozen_at = target
            else:
                self._frozen_at = None
                self._offset = target - self._real_now()

    def advance(self, seconds: float) -> None:
        """Move the clock forward (or back, if negative) by `seconds`."""
        with self._lock:
            if self._frozen_at is not None:
                self._frozen_at = self._frozen_at + timedelta(seconds=seconds)
            else:
                self._offset += timedelta(seconds=seconds)

    def freeze(self, frozen: bool) -> None:
        """Stop the clock at the current instant, or let it run on from there."""
        current = self.now()
        self.set(current, frozen=frozen)

    def to_json(self) -> dict:
        """The clock as JSON: current time and mode."""
        return {"now": iso(self.now()), "frozen": self.frozen}
