"""Fixtures of the chaos suite (SPEC §12): sandbox Xero with 2-second windows, a wired clinic of
`SIZE.invoices` invoices, and a fleet of real worker processes plus a clock that is always stopped.

Scenario (e) of SPEC §12, four workers racing an expiring token, lives in
tests/xero/test_token_processes.py and is not repeated here; `make chaos` runs it with this suite."""

import random

import pytest

from tests.chaos.harness import SEED, SIZE, Fleet, process_env
from tests.support.engine import wire_clinic


@pytest.fixture
def xero_sandbox():
    """Sandbox Xero with 2-second windows (the service is given the same window)."""
    from sandbox.xero.app import create_app
    from tests.support.servers import serve

    with serve(create_app(window_seconds=2)) as url:
        yield url


@pytest.fixture
def clinic(app, web, make_user, make_practice, xero_app, xero_sandbox):
    from sandbox.cliniko.app import create_app

    app.config["XERO_RATE_WINDOW_SECONDS"] = 2
    cliniko = create_app(api_key="sandbox-key-au1", seed=SEED, patients=SIZE.patients, invoices=SIZE.invoices)
    with wire_clinic(app, web, make_user, make_practice, cliniko, xero_sandbox) as clinic:
        yield clinic


@pytest.fixture
def rng(request):
    return random.Random(f"{SEED}-{request.node.name}")


@pytest.fixture
def make_fleet(app, tmp_path, rng):
    """make_fleet(**env) → a started Fleet; every process is stopped at the end, pass or fail."""
    fleets = []

    def _make(workers: int = SIZE.workers, **extra_env) -> Fleet:
        fleet = Fleet(process_env(app, **extra_env), tmp_path, rng).start(workers)
        fleets.append(fleet)
        return fleet

    yield _make
    for fleet in fleets:
        fleet.stop()
