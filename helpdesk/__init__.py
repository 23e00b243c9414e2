"""helpdesk: one customer, one timeline, one queue."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask

from helpdesk import config as config_module


def create_app(config: dict[str, Any] | None = None, *, socket_server: bool = True) -> Flask:
    """Build the app; `socket_server=False` binds Socket.IO write-only (workers, CLI)."""
    from helpdesk import (
        api,
        console,
        errors,
        logs,
        outbox,
        queues,
        realtime,
        redaction,
        transaction,
    )
    from helpdesk.extensions import db, migrate
    from helpdesk.services import auth, metrics

    app = Flask(__name__, instance_path=config_module.default_instance_dir().as_posix())
    app.config.from_mapping(config_module.from_environment(config))
    app.json.sort_keys = False  # resources keep their documented field order
    Path(app.config["INSTANCE_DIR"]).mkdir(parents=True, exist_ok=True)
    Path(app.config["DATA_DIR"]).mkdir(parents=True, exist_ok=True)
    logs.configure()
    redaction.install()

    db.init_app(app)
    migrate.init_app(app, db, directory=str(config_module.MIGRATIONS_DIR))
    queues.init_app(app)
    # Session hooks, in the order they run: work waiting for a commit is dropped on rollback;
    # every flush moves the metric roll-ups; before a commit, its events are serialized,
    # then the facts of the tickets it touched are recomputed.
    transaction.init_app(app)
    outbox.init_app(app)
    metrics.init_app(app)
    auth.init_app(app)  # a commit changing an agent or a token empties the token caches
    realtime.init_app(app, server=socket_server)
    errors.init_app(app)
    logs.init_app(app)
    api.init_app(app)
    console.init_app(app)
    if app.config["TRUSTED_PROXIES"] > 0:
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)
    return app
