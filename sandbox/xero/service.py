"""The emulator's components wired together (settings, clock, state, identity, limits, faults, idempotency)."""

import dataclasses

from sandbox.xero.clock import Clock
from sandbox.xero.faults import FaultInjector
from sandbox.xero.idempotency import IdempotencyCache
from sandbox.xero.limits import RateLimiter
from sandbox.xero.state import Store
from sandbox.xero.tokens import Identity


class Sandbox:
    """One emulator instance; stored on the Flask app as `app.extensions["xero_sandbox"]`."""

    def __init__(self, settings) -> None:
        self.settings = settings
        self._initial = dataclasses.replace(settings)
        self.clock = Clock()
        self.store = Store(settings, self.clock)
        self.identity = Identity(self.store, settings, self.clock)
        self.limiter = RateLimiter(settings, self.clock)
        self.faults = FaultInjector(settings)
        self.idempotency = IdempotencyCache(settings, self.clock)

    def reset(self) -> None:
        """Back to the fixtures and starting settings, with no tokens, counts, keys, faults or clock offset."""
        for field in dataclasses.fields(self._initial):
            setattr(self.settings, field.name, getattr(self._initial, field.name))
        self.clock.reset()
        self.store.reset()
        self.limiter.reset()
        self.idempotency.reset()
        self.faults.configure({"seed": self.settings.seed})


def current_sandbox() -> Sandbox:
    """The Sandbox of the current Flask app."""
    from flask import current_app

    return current_app.extensions["xero_sandbox"]
