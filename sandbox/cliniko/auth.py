"""Who may call: HTTP Basic by API key (blank password), a User-Agent with an email, 200 calls/min per key."""

import base64
import math
import re
import threading
import time

EMAIL_RE = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
USER_AGENT_MESSAGE = "Requires a user agent"
ACCESS_DENIED = "HTTP Basic: Access denied.\n"


def basic_username(header: str | None) -> str | None:
    """The username (the API key) of an `Authorization: Basic …` header, or None."""
    if not header or header[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    username, _, _password = decoded.partition(":")
    return username or None


def user_agent_ok(value: str | None) -> bool:
    """Whether a User-Agent carries a contact email, as Cliniko requires ("APP_VENDOR_NAME (EMAIL)")."""
    return bool(value) and EMAIL_RE.search(value) is not None


class RateLimiter:
    """Fixed windows aligned to the epoch (like Rack::Attack): `limit` calls per `window` seconds per key."""

    def __init__(self, limit: int = 200, window: float = 60.0):
        self.limit = limit
        self.window = window
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[float, int]] = {}

    def hit(self, key: str, now: float | None = None) -> tuple[bool, int]:
        """Count one call; returns (allowed, reset) where reset is the UNIX time the window ends."""
        now = time.time() if now is None else now
        start = math.floor(now / self.window) * self.window
        reset = math.ceil(start + self.window)
        with self._lock:
            window_start, count = self._windows.get(key, (start, 0))
            if window_start != start:
                count = 0
            if self.limit and count >= self.limit:
                self._windows[key] = (start, count)
                return False, reset
            self._windows[key] = (start, count + 1)
            return True, reset

    def configure(self, limit: int | None = None, window: float | None = None) -> None:
        """Change the limit or window length (and forget the current windows)."""
        with self._lock:
            if limit is not None:
                self.limit = int(limit)
            if window is not None:
                self.window = float(window)
            self._windows.clear()

    def clear(self) -> None:
        """Forget every key's current window."""
        with self._lock:
            self._windows.clear()
