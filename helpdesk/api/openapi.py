"""`GET /api/v1/openapi.json`: the REST API described from its marshmallow schemas."""

from __future__ import annotations

from functools import lru_cache

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import jsonify

from helpdesk.api.v1 import bp, public
from helpdesk.schemas import inputs, resources

# (method, path, summary, request schema, response schema, role; None = public)
OPERATIONS = [
    ("post", "/auth/login", "Log in; returns a bearer token", inputs.LoginSchema, None, None),
    ("post", "/auth/logout", "Revoke the caller's token", None, None, "agent"),
    ("post", "/channels", "Create a channel", inputs.ChannelCreateSchema,
     resources.ChannelSchema, "admin"),
    ("get", "/channels", "List channels", None, resources.ChannelSchema, "admin"),
    ("get", "/channels/{id}", "Get a channel", None, resources.ChannelSchema, "admin"),
    ("patch", "/channels/{id}", "Change a channel", inputs.ChannelUpdateSchema,
     resources.ChannelSchema, "admin"),
    ("delete", "/channels/{id}", "Retire a channel", None, None, "admin"),
    ("get", "/deliveries", "List stored webhook deliveries", None, resources.DeliverySchema,
     "admin"),
    ("post", "/deliveries/{id}/replay", "Process a delivery again", None,
     resources.DeliverySchema, "admin"),
    ("get", "/tickets", "List tickets", None, resources.TicketSchema, "agent"),
    ("get", "/tickets/{id}", "Get a ticket with its messages", None, resources.TicketSchema,
     "agent"),
    ("patch", "/tickets/{id}", "Change a ticket", inputs.TicketUpdateSchema,
     resources.TicketSchema, "agent"),
    ("post", "/tickets/{id}/messages", "Reply or add an internal note",
     inputs.MessageCreateSchema, resources.MessageSchema, "agent"),
    ("post", "/tickets/{id}/escalate", "Escalate to a higher level", inputs.EscalateSchema,
     resources.TicketSchema, "agent"),
    ("get", "/queue", "Unassigned tickets in queue order", None, resources.TicketSchema,
     "agent"),
    ("post", "/queue/next", "Claim the next eligible ticket", None, resources.TicketSchema,
     "agent"),
    ("post", "/customers", "Create a customer", inputs.CustomerCreateSchema,
     resources.CustomerSchema, "agent"),
    ("get", "/customers", "Find customers (?identity=kind:value)", None,
     resources.CustomerSchema, "agent"),
    ("get", "/customers/{id}", "Get a customer", None, resources.CustomerSchema, "agent"),
    ("get", "/customers/{id}/timeline", "A customer's timeline, oldest first", None, None,
     "agent"),
]


def _operation(summary, request_schema, response_schema, role) -> dict:
    operation: dict = {"summary": summary, "responses": {"200": {"description": "OK"}}}
    if response_schema is not None:
        operation["responses"]["200"]["content"] = {
            "application/json": {"schema": response_schema}}
    if request_schema is not None:
        operation["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": request_schema}}}
    if role is not None:
        operation["security"] = [{"bearer": []}]
        operation["description"] = f"Requires the {role} role."
        operation["responses"]["401"] = {"description": "no or bad token"}
    return operation


@lru_cache(maxsize=1)
def build_spec() -> dict:
    spec = APISpec(title="helpdesk", version="1", openapi_version="3.0.3",
                   plugins=[MarshmallowPlugin()])
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    by_path: dict[str, dict] = {}
    for method, path, summary, request_schema, response_schema, role in OPERATIONS:
        by_path.setdefault(path, {})[method] = _operation(summary, request_schema,
                                                          response_schema, role)
    for path, operations in by_path.items():
        spec.path(path=f"/api/v1{path}", operations=operations)
    return spec.to_dict()


@bp.get("/openapi.json")
@public
def openapi_document():
    return jsonify(build_spec())
