"""Teams (admin creates them; supervisors read them to understand grouped metrics)."""

from __future__ import annotations

from flask import jsonify

from helpdesk.api.common import json_body, paginate, query_args
from helpdesk.api.security import requires
from helpdesk.api.v1 import bp
from helpdesk.schemas.inputs import WholeListSchema
from helpdesk.schemas.metrics import TeamCreateSchema, TeamSchema
from helpdesk.services import teams

team_schema = TeamSchema()


@bp.get("/teams")
@requires("supervisor")
def list_teams():
    args = query_args(WholeListSchema())
    return jsonify(paginate(teams.all_teams_query(), args["page"], args["per_page"],
                            team_schema))


@bp.post("/teams")
@requires("admin")
def create_team():
    team = teams.create(json_body(TeamCreateSchema())["name"])
    return jsonify(team_schema.dump(team)), 201
