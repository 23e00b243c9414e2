"""Liveness and readiness probes."""

from __future__ import annotations

from flask import Blueprint, jsonify
from sqlalchemy import text

from helpdesk import startup
from helpdesk.errors import error_body
from helpdesk.extensions import db
from helpdesk.queues import redis_probe

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    down = []
    try:
        db.session.execute(text("SELECT 1"))
        if startup.database_revision(db.session.connection()) != startup.migration_heads():
            down.append("migrations")  # serving would answer 500s: `helpdesk db upgrade`
        db.session.rollback()
    except Exception:
        db.session.rollback()
        down.append("database")
    try:
        redis_probe().ping()
    except Exception:
        down.append("redis")
    if down:
        return jsonify({"status": "unavailable", "down": down,
                        **error_body("unavailable", f"{', '.join(down)} not answering")}), 503
    return jsonify({"status": "ok"})
