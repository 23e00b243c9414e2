"""The production web server: gunicorn with one gevent worker per port.

gevent because on a 2-core machine it used 2.4-6x less CPU per delivered Socket.IO event
than threading (which needs one OS thread per connected client). Socket.IO needs sticky
sessions, so scale out with more processes on more ports behind a sticky load balancer, all
sharing Redis as the Socket.IO message queue.
"""

from __future__ import annotations

import os
import sys

from gunicorn.app.base import BaseApplication


class _Gunicorn(BaseApplication):
    def __init__(self, options: dict):
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        # Created in the worker, after gevent has patched the standard library.
        from helpdesk import create_app, heap

        check_cooperative_database_driver()
        app = create_app()
        heap.freeze_startup_objects()
        return app


def check_cooperative_database_driver() -> None:
    """psycopg 3 waits for the server cooperatively when it is first imported after gevent
    patched `select` (it then polls through gevent instead of blocking in C); imported
    before, one slow query would stop every request of the process. Say so loudly."""
    from psycopg import waiting

    if waiting.wait is getattr(waiting, "wait_c", None):
        raise RuntimeError("psycopg was imported before gevent patched the standard library: "
                           "its waits would block the whole web process")


# gevent must patch the standard library before anything imports ssl or socket users.
_BOOT = ("from gevent import monkey; monkey.patch_all(); import sys; "
         "from helpdesk.server import serve; serve(sys.argv[1], int(sys.argv[2]))")


def exec_web(host: str, port: int) -> None:
    """Replace this process with a freshly patched interpreter serving the web app."""
    os.execv(sys.executable, [sys.executable, "-c", _BOOT, host, str(port)])


def _write_json_error(sock, status: int, reason: str, message: str) -> None:
    """gunicorn's own refusals (a request line over 4 KiB: 414; headers over 8 KiB or more
    than 100 of them: 431; a malformed request: 400) in the API's one error shape, not its
    HTML page: they come before the application, even under /api/v1."""
    import json

    from gunicorn import util

    from helpdesk.errors import HTTP_CODES, error_body

    code = HTTP_CODES.get(status) or {414: "uri_too_long", 431: "headers_too_large"}.get(
        status, "bad_request" if status < 500 else "internal_error")
    body = json.dumps(error_body(code, message or reason)).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    util.write_nonblock(sock, head.encode("latin-1") + body)


def serve(host: str, port: int) -> None:
    """Serve until stopped (SIGINT/SIGTERM stop gracefully)."""
    from gunicorn import util

    util.write_error = _write_json_error  # (looked up at each call by gunicorn's workers)
    _Gunicorn({"bind": f"{host}:{port}", "workers": 1, "worker_class": "gevent",
               "worker_connections": 2000, "timeout": 60, "graceful_timeout": 5,
               "accesslog": None, "loglevel": "warning"}).run()
