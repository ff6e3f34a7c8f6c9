"""Error pages: plain words, never a stack trace or a secret."""

from flask import jsonify, render_template, request
from flask_wtf.csrf import CSRFError

TITLES = {
    400: ("Bad request", "The request could not be understood."),
    403: ("Forbidden", "Your role does not allow this page or action."),
    404: ("Not found", "There is nothing here."),
    429: ("Too many requests", "Too many attempts. Wait a few minutes and try again."),
    500: ("Server error", "Something went wrong on our side; it has been logged."),
}


def _page(code: int, message: str | None = None):
    title, default = TITLES.get(code, ("Error", "Something went wrong."))
    if request.accept_mimetypes.best == "application/json":
        return jsonify(error=title, message=message or default), code
    return render_template("errors/error.html", code=code, title=title, message=message or default,
                           error_page=True), code


def init_app(app) -> None:
    """Register handlers for the codes users can meet."""
    for code in (403, 404, 500):
        app.register_error_handler(code, lambda exc, code=code: _page(code))

    @app.errorhandler(400)
    def _bad_request(exc):
        return _page(400, getattr(exc, "description", None))

    @app.errorhandler(CSRFError)
    def _csrf(exc):
        return _page(400, "The form's security token is missing or expired. Reload the page and try again.")

    @app.errorhandler(429)
    def _throttled(exc):
        return _page(429, getattr(exc, "description", None) or TITLES[429][1])
