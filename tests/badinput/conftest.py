"""A clinic wired to both sandboxes with an empty invoice list, ready for exact bad records."""

from __future__ import annotations

import pytest

from tests.badinput.support import Stage
from tests.support.engine import wire_clinic


@pytest.fixture
def stage(app, web, make_user, make_practice, xero_app, xero_sandbox):
    from sandbox.cliniko.app import create_app

    cliniko = create_app(api_key="sandbox-key-au1", seed=1, patients=4, invoices=0)
    with wire_clinic(app, web, make_user, make_practice, cliniko, xero_sandbox) as clinic:
        yield Stage(clinic, web)
