"""Fault injection for accounting endpoints: errors, latency, hangs, 429 storms, commit-then-drop."""

import dataclasses
import logging
import random
import socket
import threading
from collections import Counter

logger = logging.getLogger(__name__)

KINDS = ("error", "timeout", "rate_limit", "drop")

DEFAULTS = {
    "seed": 0,
    "error_rate": 0.0,
    "error_status": 503,
    "latency_ms": 0,
    "latency_jitter_ms": 0,
    "timeout_rate": 0.0,
    "hang_seconds": None,
    "rate_limit_rate": 0.0,
    "storm_calls": 0,
    "retry_after": 1,
    "drop_rate": 0.0,
    "script": [],
    "methods": None,
    "path_contains": None,
    "tenant_id": None,
}


@dataclasses.dataclass
class Decision:
    """What to do to one request: a fault kind (or None) and a delay in seconds."""

    kind: str | None
    delay: float = 0.0


class FaultInjector:
    """Holds the fault settings and decides, deterministically from a seed, which calls fail."""

    def __init__(self, settings) -> None:
        self.settings = settings
        self.lock = threading.Lock()
        self.cancel = threading.Event()
        self.injected: Counter = Counter()
        self.configure({"seed": settings.seed})

    def configure(self, payload: dict) -> dict:
        """Replace the fault settings (unspecified keys take their defaults); returns them."""
        unknown = sorted(set(payload) - set(DEFAULTS))
        if unknown:
            raise ValueError(f"unknown fault setting(s): {', '.join(unknown)}")
        config = dict(DEFAULTS)
        config.update(payload)
        for key in ("error_rate", "timeout_rate", "rate_limit_rate", "drop_rate"):
            config[key] = float(config[key])
            if not 0.0 <= config[key] <= 1.0:
                raise ValueError(f"{key} must be between 0 and 1")
        if int(config["error_status"]) not in (500, 502, 503, 504):
            raise ValueError("error_status must be 500, 502, 503 or 504")
        config["error_status"] = int(config["error_status"])
        bad = [k for k in config["script"] if k not in (*KINDS, "ok")]
        if bad:
            raise ValueError(f"script entries must be one of {', '.join((*KINDS, 'ok'))}")
        if config["methods"]:
            config["methods"] = [m.upper() for m in config["methods"]]
        with self.lock:
            # Wake any request hanging under the old settings so it does not outlive them.
            self.cancel.set()
            self.cancel = threading.Event()
            self.config = config
            self.script = list(config["script"])
            self.storm_left = int(config["storm_calls"])
            self.rng = random.Random(config["seed"])
            self.injected = Counter()
        return self.describe()

    def describe(self) -> dict:
        """Current settings plus what is left of the script/storm and what was injected."""
        with self.lock:
            view = dict(self.config)
            view["script_left"] = list(self.script)
            view["storm_left"] = self.storm_left
            view["injected"] = dict(self.injected)
        return view

    def _matches(self, method: str, path: str, tenant_id: str | None) -> bool:
        c = self.config
        if c["methods"] and method.upper() not in c["methods"]:
            return False
        if c["path_contains"] and c["path_contains"] not in path:
            return False
        return not (c["tenant_id"] and (tenant_id or "").lower() != str(c["tenant_id"]).lower())

    def decide(self, method: str, path: str, tenant_id: str | None) -> Decision:
        """Pick this request's fault: scripted first, then a storm, then the seeded random draw."""
        with self.lock:
            if not self._matches(method, path, tenant_id):
                return Decision(None)
            c = self.config
            delay = c["latency_ms"] / 1000.0
            if c["latency_jitter_ms"]:
                delay += self.rng.uniform(0, c["latency_jitter_ms"]) / 1000.0
            kind = None
            if self.script:
                step = self.script.pop(0)
                kind = None if step == "ok" else step
            elif self.storm_left > 0:
                self.storm_left -= 1
                kind = "rate_limit"
            else:
                draw = self.rng.random()
                edge = 0.0
                for name, rate in (
                    ("error", c["error_rate"]),
                    ("timeout", c["timeout_rate"]),
                    ("rate_limit", c["rate_limit_rate"]),
                    ("drop", c["drop_rate"]),
                ):
                    edge += rate
                    if rate and draw < edge:
                        kind = name
                        break
            if kind:
                self.injected[kind] += 1
        return Decision(kind, delay)

    def hang(self) -> None:
        """Block like a stuck upstream (longer than any sane client timeout), unless faults change."""
        seconds = self.config["hang_seconds"] or self.settings.hang_seconds
        self.cancel.wait(float(seconds))

    def wait(self, seconds: float) -> None:
        """Sleep for injected latency (cut short if faults are reconfigured)."""
        if seconds > 0:
            self.cancel.wait(seconds)

    @property
    def retry_after(self) -> int:
        """Retry-After for storm 429s."""
        return int(self.config["retry_after"])

    @property
    def error_status(self) -> int:
        """Status used for injected errors."""
        return self.config["error_status"]


class DroppedConnection:
    """A WSGI body that closes the client's socket instead of sending anything (commit-then-drop)."""

    def __init__(self, environ: dict) -> None:
        self.environ = environ

    def __iter__(self):
        return self

    def __next__(self):
        sock = self.environ.get("werkzeug.socket")
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                logger.debug("socket already closed")
        raise ConnectionAbortedError("sandbox fault: connection dropped after commit")
