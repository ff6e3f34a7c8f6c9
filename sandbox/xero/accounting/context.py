"""The per-request context handed to accounting handlers (organisation, client, clock, options)."""

import dataclasses


@dataclasses.dataclass
class Ctx:
    """Who is calling which organisation, and the request's options."""

    sandbox: object
    org: object
    client_id: str
    unitdp: int = 2

    @property
    def clock(self):
        """The emulator clock."""
        return self.sandbox.clock

    @property
    def store(self):
        """The emulator state."""
        return self.sandbox.store

    def now_ms(self) -> int:
        """Now, in epoch ms."""
        return self.sandbox.clock.now_ms()
