"""Admin routes: SLA policies, settings, agents."""

from __future__ import annotations

from flask import jsonify
from sqlalchemy import select

from helpdesk.api.common import json_body, page_of, paginate, query_args
from helpdesk.api.security import current_agent, requires
from helpdesk.api.v1 import bp
from helpdesk.models import Agent
from helpdesk.schemas.inputs import (
    AgentCreateSchema,
    AgentUpdateSchema,
    PageSchema,
    SettingsUpdateSchema,
    SlaPolicySchema,
    WholeListSchema,
)
from helpdesk.schemas.resources import agent_schema, sla_policy_schema
from helpdesk.services import auth, settings
from helpdesk.services.routing import assignment
from helpdesk.services.sla import policies as sla_policies


@bp.get("/sla-policies")
@requires("supervisor")
def list_sla_policies():
    args = query_args(WholeListSchema())
    return jsonify(page_of(sla_policy_schema.dump(sla_policies.all_policies(), many=True),
                           args["page"], args["per_page"]))


@bp.put("/sla-policies/<priority>")
@requires("admin")
def put_sla_policy(priority: str):
    policy = sla_policies.put(priority, json_body(SlaPolicySchema()), current_agent())
    return jsonify(sla_policy_schema.dump(policy))


@bp.delete("/sla-policies/<priority>")
@requires("admin")
def delete_sla_policy(priority: str):
    sla_policies.delete(priority, current_agent())
    return "", 204


@bp.get("/settings")
@requires("admin")
def get_settings():
    return jsonify(settings.get_all())


@bp.patch("/settings")
@requires("admin")
def patch_settings():
    return jsonify(settings.update(json_body(SettingsUpdateSchema()), current_agent()))


@bp.get("/agents")
@requires("supervisor")
def list_agents():
    args = query_args(PageSchema())
    query = select(Agent).order_by(Agent.id)
    return jsonify(paginate(query, args["page"], args["per_page"], agent_schema))


@bp.get("/agents/workload")
@requires("supervisor")
def agents_workload():
    args = query_args(PageSchema())
    return jsonify(page_of(assignment.workloads(), args["page"], args["per_page"]))


@bp.post("/agents")
@requires("admin")
def create_agent():
    agent = auth.create_agent(**json_body(AgentCreateSchema()), actor=current_agent())
    return jsonify(agent_schema.dump(agent)), 201


@bp.patch("/agents/<int:agent_id>")
@requires("admin")
def update_agent(agent_id: int):
    agent = auth.update_agent(agent_id, json_body(AgentUpdateSchema()), actor=current_agent())
    return jsonify(agent_schema.dump(agent))
