"""`GET /api/v1/openapi.json`: the REST API described from its routes and marshmallow schemas.

Paths, methods, roles and public routes come from the app's URL map and the views'
decorators, so a new route is described without touching this file; `SCHEMAS` adds the body
and response schemas of each endpoint.
"""

from __future__ import annotations

import re

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import current_app, jsonify

from helpdesk.api.v1 import _PUBLIC, bp, public
from helpdesk.schemas import inputs, metrics, privacy, resources, surveys

# endpoint → (request body schema, response schema)
SCHEMAS = {
    "login": (inputs.LoginSchema, None),
    "me": (None, resources.AgentSchema),
    "create_channel": (inputs.ChannelCreateSchema, resources.ChannelSchema),
    "list_channels": (None, resources.ChannelSchema),
    "get_channel": (None, resources.ChannelSchema),
    "update_channel": (inputs.ChannelUpdateSchema, resources.ChannelSchema),
    "list_deliveries": (None, resources.DeliverySchema),
    "replay_delivery": (None, resources.DeliverySchema),
    "list_tickets": (None, resources.TicketSchema),
    "get_ticket": (None, resources.TicketSchema),
    "update_ticket": (inputs.TicketUpdateSchema, resources.TicketSchema),
    "add_message": (inputs.MessageCreateSchema, resources.MessageSchema),
    "list_messages": (None, resources.MessageSchema),
    "escalate_ticket": (inputs.EscalateSchema, resources.TicketSchema),
    "start_work": (None, resources.WorkSessionSchema),
    "stop_work": (None, resources.WorkSessionSchema),
    "list_queue": (None, resources.TicketSchema),
    "claim_next": (None, resources.TicketSchema),
    "create_customer": (inputs.CustomerCreateSchema, resources.CustomerSchema),
    "list_customers": (None, resources.CustomerSchema),
    "get_customer": (None, resources.CustomerSchema),
    "merge_customer": (privacy.CustomerMergeSchema, resources.CustomerSchema),
    "list_agents": (None, resources.AgentSchema),
    "create_agent": (inputs.AgentCreateSchema, resources.AgentSchema),
    "update_agent": (inputs.AgentUpdateSchema, resources.AgentSchema),
    "list_sla_policies": (None, resources.SlaPolicyOutSchema),
    "put_sla_policy": (inputs.SlaPolicySchema, resources.SlaPolicyOutSchema),
    "patch_settings": (inputs.SettingsUpdateSchema, None),
    "list_audit": (None, privacy.AuditEntrySchema),
    "list_surveys": (None, surveys.SurveySchema),
    "list_teams": (None, metrics.TeamSchema),
    "create_team": (metrics.TeamCreateSchema, metrics.TeamSchema),
    "start_chat_session": (inputs.ChatSessionCreateSchema, None),
    "post_chat_message": (inputs.ChatMessageCreateSchema, resources.MessageSchema),
    "list_chat_messages": (None, resources.MessageSchema),
}
_CONVERTER = re.compile(r"<(?:[a-z]+:)?([a-z_]+)>")


def _operation(endpoint: str, view) -> dict:
    name = endpoint.split(".", 1)[1]
    summary = (view.__doc__ or name.replace("_", " ")).strip().splitlines()[0]
    request_schema, response_schema = SCHEMAS.get(name, (None, None))
    operation: dict = {"operationId": name, "summary": summary,
                       "responses": {"200": {"description": "OK"}}}
    if response_schema is not None:
        operation["responses"]["200"]["content"] = {
            "application/json": {"schema": response_schema}}
    if request_schema is not None:
        operation["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": request_schema}}}
    if endpoint not in _PUBLIC:
        role = getattr(view, "required_role", "agent")
        operation["security"] = [{"bearer": []}]
        operation["description"] = f"Requires the {role} role."
        operation["responses"]["401"] = {"description": "no or bad token"}
        if role != "agent":
            operation["responses"]["403"] = {"description": f"not {role}"}
    return operation


def build_spec() -> dict:
    spec = APISpec(title="helpdesk", version="1", openapi_version="3.0.3",
                   plugins=[MarshmallowPlugin()])
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    by_path: dict[str, dict] = {}
    for rule in current_app.url_map.iter_rules():
        if not rule.endpoint.startswith(f"{bp.name}."):
            continue
        view = current_app.view_functions[rule.endpoint]
        path = _CONVERTER.sub(r"{\1}", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            by_path.setdefault(path, {})[method.lower()] = _operation(rule.endpoint, view)
    for path in sorted(by_path):
        spec.path(path=path, operations=by_path[path])
    return spec.to_dict()


@bp.get("/openapi.json")
@public
def openapi_document():
    """This document."""
    cached = current_app.extensions.get("helpdesk.openapi")
    if cached is None:
        cached = current_app.extensions.setdefault("helpdesk.openapi", build_spec())
    return jsonify(cached)
