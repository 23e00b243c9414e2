"""Teams (admin creates them; supervisors read them to understand grouped metrics)."""

from __future__ import annotations

from flask import jsonify

from helpdesk.api.common import json_body
from helpdesk.api.security import requires
from helpdesk.api.v1 import bp
from helpdesk.schemas.metrics import TeamCreateSchema, TeamSchema
from helpdesk.services import teams

team_schema = TeamSchema()


@bp.get("/teams")
@requires("supervisor")
def list_teams():
    items = team_schema.dump(teams.all_teams(), many=True)
    return jsonify({"items": items, "page": 1, "per_page": len(items), "total": len(items)})


@bp.post("/teams")
@requires("admin")
def create_team():
    team = teams.create(json_body(TeamCreateSchema())["name"])
    return jsonify(team_schema.dump(team)), 201
