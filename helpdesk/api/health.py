"""Liveness and readiness probes."""

from __future__ import annotations

from flask import Blueprint, jsonify
from sqlalchemy import text

from helpdesk.extensions import db
from helpdesk.queues import redis_connection

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    down = []
    try:
        db.session.execute(text("SELECT 1"))
        db.session.rollback()
    except Exception:
        down.append("database")
    try:
        redis_connection().ping()
    except Exception:
        down.append("redis")
    if down:
        return jsonify({"status": "unavailable", "down": down,
                        "error": {"code": "unavailable",
                                  "message": f"{', '.join(down)} not answering"}}), 503
    return jsonify({"status": "ok"})
