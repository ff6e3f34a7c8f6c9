"""The objects one emulator instance shares between its request handlers."""

from dataclasses import dataclass, field

from flask import current_app

from .auth import RateLimiter
from .clock import Clock
from .faults import Faults
from .state import SandboxState

EXTENSION = "cliniko_sandbox"


@dataclass
class Sandbox:
    """State, clock, rate limiter, faults and the start-up settings of one emulator."""

    state: SandboxState
    clock: Clock
    limiter: RateLimiter
    faults: Faults
    config: dict = field(default_factory=dict)


def sandbox() -> Sandbox:
    """The emulator of the current Flask app."""
    return current_app.extensions[EXTENSION]
