"""Login, users and roles."""

from webapp.auth.routes import bp

__all__ = ["bp"]
