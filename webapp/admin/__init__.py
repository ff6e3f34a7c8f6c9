"""The admin screens (Flask-Admin 2.x, Bootstrap 4 theme)."""

import importlib

from flask_admin import Admin
from flask_admin.theme import Bootstrap4Theme

from webapp.admin.dashboard import DashboardView
from webapp.admin.practices import PracticesView

# Screen modules that add their views with a `register(admin)` function, in menu order.
SCREEN_MODULES = (
    "webapp.admin.jobs_views",
    "webapp.admin.overview_views",
    "webapp.admin.settings_views",
    "webapp.admin.routing_views",
    "webapp.admin.people_views",
)


def init_app(app) -> Admin:
    """Mount the admin at / with the dashboard as its home page."""
    admin = Admin(
        app,
        name="Cliniko → Xero Sync",
        url="/",
        index_view=DashboardView(name="Dashboard", url="/", endpoint="admin"),
        theme=Bootstrap4Theme(swatch="default", fluid=True),
    )
    admin.add_view(PracticesView(name="Practices", endpoint="practices", url="/practices"))
    for name in SCREEN_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(admin)
    return admin
