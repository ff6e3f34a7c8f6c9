"""The Users screen (admins only)."""

from flask_admin.contrib.sqla import ModelView
from flask_wtf import FlaskForm

from webapp.admin.access import SecuredView


class UserListView(SecuredView, ModelView):
    """List of users with role, scope and state; read-only until invitations exist."""

    admin_only = True
    form_base_class = FlaskForm
    can_create = False
    can_edit = False
    can_delete = False
    column_list = ("email", "role", "practice", "active", "last_login_at", "failed_login_count")
    column_labels = {"practice": "Practice scope", "last_login_at": "Last login"}
    column_searchable_list = ("email",)
    column_filters = ("role", "active")
    column_default_sort = "email"
