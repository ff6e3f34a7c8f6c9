"""Role and login checks shared by every admin view."""

from flask import abort, redirect, request, url_for
from flask_login import current_user


class SecuredView:
    """Mixin for Flask-Admin views: login required; `admin_only` views refuse support users (403)."""

    admin_only = False

    def is_accessible(self) -> bool:
        if not current_user.is_authenticated:
            return False
        return current_user.is_admin or not self.admin_only

    def inaccessible_callback(self, name, **kwargs):
        if not current_user.is_authenticated:
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        abort(403)

    def is_visible(self) -> bool:
        return self.is_accessible()
