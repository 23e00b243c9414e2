"""The browser console: one HTML shell and static ES modules, built only on the public API.

Every console route answers the same shell; the modules read the path and draw the view.
The page is served with a strict Content-Security-Policy: scripts, styles and connections
from this origin only, no inline code, nothing remote.
"""

from __future__ import annotations

from flask import Blueprint, Flask, render_template

bp = Blueprint("console", __name__, template_folder="templates", static_folder="static",
               static_url_path="/console/static")

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'; object-src 'none'")


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


def _shell():
    return render_template("console.html"), 200, {
        "Content-Type": "text/html; charset=utf-8", "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store"}


@bp.get("/")
def agent_console():
    return _shell()


@bp.get("/tickets/<int:ticket_id>")
def ticket_deep_link(ticket_id: int):
    return _shell()


@bp.get("/supervisor")
def supervisor_dashboard():
    return _shell()


@bp.get("/admin")
def administration():
    return _shell()
