"""Xero connection management in the app: OAuth connect/disconnect, tokens, reference data."""

from webapp.xero.routes import bp

__all__ = ["bp"]
