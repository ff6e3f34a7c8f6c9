"""The admin screens (Flask-Admin 2.x, Bootstrap 4 theme)."""

from flask_admin import Admin
from flask_admin.theme import Bootstrap4Theme

from webapp.admin.dashboard import DashboardView
from webapp.admin.practices import PracticesView
from webapp.admin.users import UserListView
from webapp.extensions import db
from webapp.models import User


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
    admin.add_view(UserListView(User, db, name="Users", endpoint="users", url="/users"))
    return admin
