"""Injected failures for /v1: error statuses, latency, 429 storms, malformed JSON, an HTML 500 page."""

import random
import threading
from dataclasses import asdict, dataclass, fields

HTML_500 = """<!DOCTYPE html>
<html>
<head><title>We're sorry, but something went wrong (500)</title></head>
<body>
  <div class="dialog">
    <h1>We're sorry, but something went wrong.</h1>
    <p>If you are the application owner check the logs for more information.</p>
  </div>
</body>
</html>
"""


@dataclass
class FaultSettings:
    """What to inject; rates are probabilities per API call, `count` limits how many calls are affected."""

    error_rate: float = 0.0
    error_status: int = 500
    rate_limit_rate: float = 0.0
    malformed_json_rate: float = 0.0
    html_500_rate: float = 0.0
    latency_ms: int = 0
    latency_jitter_ms: int = 0
    path_prefix: str = ""
    count: int | None = None
    seed: int = 0


class Faults:
    """Thread-safe fault settings and the seeded dice that decide each call's fate."""

    def __init__(self):
        self._lock = threading.Lock()
        self.settings = FaultSettings()
        self._rng = random.Random(0)
        self.injected = 0

    def configure(self, data: dict) -> dict:
        """Replace the settings with `data` (unknown keys raise ValueError); returns the new settings."""
        names = {f.name for f in fields(FaultSettings)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown fault setting(s): {', '.join(sorted(unknown))}")
        settings = FaultSettings(**data)
        for name in ("error_rate", "rate_limit_rate", "malformed_json_rate", "html_500_rate"):
            value = float(getattr(settings, name))
            if not 0 <= value <= 1:
                raise ValueError(f"{name} must be between 0 and 1")
            setattr(settings, name, value)
        with self._lock:
            self.settings = settings
            self._rng = random.Random(settings.seed)
            self.injected = 0
        return self.to_json()

    def clear(self) -> None:
        """Turn every fault off."""
        self.configure({})

    def to_json(self) -> dict:
        """The current settings plus how many faults were injected since they were set."""
        with self._lock:
            return {**asdict(self.settings), "injected": self.injected}

    def decide(self, path: str) -> tuple[str | None, float]:
        """For one API call: the fault to inject (or None) and the latency (seconds) to add."""
        with self._lock:
            s = self.settings
            if s.path_prefix and not path.startswith(s.path_prefix):
                return None, 0.0
            if s.count is not None and s.count <= 0:
                return None, 0.0
            latency = (s.latency_ms + (self._rng.uniform(0, s.latency_jitter_ms) if s.latency_jitter_ms else 0)) / 1000
            fault = None
            for name, rate in (
                ("error", s.error_rate),
                ("rate_limit", s.rate_limit_rate),
                ("html_500", s.html_500_rate),
                ("malformed_json", s.malformed_json_rate),
            ):
                if rate and self._rng.random() < rate:
                    fault = name
                    break
            if (fault is not None or latency) and s.count is not None:
                s.count -= 1
            if fault is not None:
                self.injected += 1
            return fault, latency
