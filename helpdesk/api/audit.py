"""The audit log (admins): exports, erasures and merges, newest first."""

from __future__ import annotations

from flask import jsonify

from helpdesk.api.common import paginate, query_args
from helpdesk.api.security import requires
from helpdesk.api.v1 import bp
from helpdesk.schemas.privacy import AuditListSchema, audit_entry_schema
from helpdesk.services import audit


@bp.get("/audit")
@requires("admin")
def list_audit():
    args = query_args(AuditListSchema())
    return jsonify(paginate(audit.search(args), args["page"], args["per_page"],
                            audit_entry_schema))
