"""The Idempotency-Key cache: first response replayed for ~6 minutes, a different request refused."""

import dataclasses
import hashlib
import threading

MAX_KEY_LENGTH = 128


@dataclasses.dataclass
class Stored:
    """A cached response for one key."""

    fingerprint: str
    status: int
    body: bytes
    content_type: str
    expires: float


def fingerprint(method: str, path: str, query: str, body: bytes) -> str:
    """A digest of everything that makes two requests "the same request"."""
    digest = hashlib.sha256()
    for part in (method.upper(), path, query):
        digest.update(part.encode())
        digest.update(b"\0")
    digest.update(body)
    return digest.hexdigest()


class IdempotencyCache:
    """Responses by (client, tenant, key); concurrent duplicates wait for the first to finish."""

    def __init__(self, settings, clock) -> None:
        self.settings = settings
        self.clock = clock
        self.lock = threading.Lock()
        self.entries: dict[tuple, Stored] = {}
        self.pending: dict[tuple, threading.Event] = {}

    def reset(self) -> None:
        """Forget every key."""
        with self.lock:
            self.entries.clear()

    def begin(self, scope: tuple, print_: str) -> tuple[str, Stored | None]:
        """Return ("replay", entry), ("conflict", None) or ("new", None); "new" must be finished."""
        while True:
            with self.lock:
                now = self.clock.now()
                entry = self.entries.get(scope)
                if entry is not None and entry.expires <= now:
                    del self.entries[scope]
                    entry = None
                if entry is not None:
                    return ("replay", entry) if entry.fingerprint == print_ else ("conflict", None)
                waiter = self.pending.get(scope)
                if waiter is None:
                    self.pending[scope] = threading.Event()
                    return "new", None
            waiter.wait(60)

    def finish(
        self,
        scope: tuple,
        print_: str,
        status: int | None,
        body: bytes = b"",
        content_type: str = "application/json",
    ) -> None:
        """Store the response of a "new" request (status None: nothing to store) and wake waiters."""
        with self.lock:
            if status is not None:
                self.entries[scope] = Stored(
                    print_,
                    status,
                    body,
                    content_type,
                    self.clock.now() + self.settings.idempotency_ttl_seconds,
                )
            waiter = self.pending.pop(scope, None)
            if len(self.entries) > 5000:
                now = self.clock.now()
                for key in [k for k, e in self.entries.items() if e.expires <= now]:
                    del self.entries[key]
        if waiter is not None:
            waiter.set()
