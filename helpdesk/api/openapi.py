"""`GET /api/v1/openapi.json`: every route described from the URL map and the marshmallow
schemas the handlers load and dump with (docs/errors.md).

Paths, path parameters, methods, roles and public routes come from the app's URL map and the
views' decorators; `OPERATIONS` names, per endpoint, the same schema classes its handler uses
for the body, the query string and the response, and the statuses only it can give. A route
missing from `OPERATIONS` is still described (with the statuses every route can give), and
tests/api/test_openapi.py fails until it is named here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import current_app, jsonify
from marshmallow import Schema, fields
from werkzeug.routing import IntegerConverter, Rule

from helpdesk.api.v1 import _PUBLIC, bp, public
from helpdesk.errors import HTTP_CODES
from helpdesk.schemas import inputs, metrics, privacy, resources, surveys

JSON, CSV, HTML, TEXT = "application/json", "text/csv", "text/html", "text/plain"
WEBHOOK_TYPES = (JSON, "application/x-www-form-urlencoded", "multipart/form-data",
                 "message/rfc822", "application/octet-stream", TEXT)


class LoginResultSchema(Schema):
    token = fields.String(required=True)
    agent = fields.Nested(resources.AgentRefSchema, required=True)


class ChatSessionSchema(Schema):
    session_id = fields.String(required=True)
    visitor_token = fields.String(required=True)


class ContactReasonSchema(Schema):
    reason = fields.String()
    count = fields.Integer()
    share = fields.Float()
    cumulative_share = fields.Float()
    vital_few = fields.Boolean()


class WorkloadSchema(Schema):
    agent_id = fields.Integer(required=True)
    tickets = fields.Integer(required=True)
    load = fields.Float(required=True)
    capacity = fields.Float(required=True)


class ContactReasonsSchema(Schema):
    items = fields.List(fields.Nested(ContactReasonSchema), required=True)


class TicketWithMessagesSchema(resources.TicketSchema):
    messages = fields.List(fields.Nested(resources.MessageSchema))


@dataclass(frozen=True)
class Op:
    """What one endpoint reads and answers, beyond what its route already says."""

    body: type[Schema] | None = None
    query: type[Schema] | None = None
    response: type[Schema] | dict | None = None  # None: a JSON object of no fixed shape
    status: int = 200
    collection: bool = False               # {"items": [response], "page", "per_page", "total"}
    also: tuple[int, ...] = ()             # further statuses (409 conflicts, 422 rules, …)
    content: str = JSON                    # the success response's media type
    body_types: tuple[str, ...] = (JSON,)


OPERATIONS: dict[str, Op] = {
    "v1.login": Op(body=inputs.LoginSchema, response=LoginResultSchema, also=(401, 429)),
    "v1.logout": Op(status=204),
    "v1.me": Op(response=resources.AgentSchema),
    "v1.create_channel": Op(body=inputs.ChannelCreateSchema, response=resources.ChannelSchema,
                            status=201),
    "v1.list_channels": Op(query=inputs.PageSchema, response=resources.ChannelSchema,
                           collection=True),
    "v1.get_channel": Op(response=resources.ChannelSchema),
    "v1.update_channel": Op(body=inputs.ChannelUpdateSchema, response=resources.ChannelSchema),
    "v1.delete_channel": Op(status=204),
    "v1.start_chat_session": Op(body=inputs.ChatSessionCreateSchema, response=ChatSessionSchema,
                                status=201, also=(429,)),
    "v1.post_chat_message": Op(body=inputs.ChatMessageCreateSchema,
                               response=resources.MessageSchema, status=201, also=(200, 429)),
    "v1.list_chat_messages": Op(query=inputs.PageSchema, response=resources.MessageSchema,
                                collection=True),
    "v1.create_customer": Op(body=inputs.CustomerCreateSchema, response=resources.CustomerSchema,
                             status=201, also=(409,)),
    "v1.list_customers": Op(query=inputs.CustomerListSchema, response=resources.CustomerSchema,
                            collection=True),
    "v1.get_customer": Op(response=resources.CustomerSchema),
    "v1.erase_customer": Op(status=204),
    "v1.export_customer": Op(also=(422,)),
    "v1.merge_customer": Op(body=privacy.CustomerMergeSchema, response=resources.CustomerSchema,
                            also=(422,)),
    "v1.customer_timeline": Op(query=inputs.PageSchema, collection=True),
    "v1.list_deliveries": Op(query=inputs.DeliveryListSchema, response=resources.DeliverySchema,
                             collection=True),
    "v1.replay_delivery": Op(response=resources.DeliverySchema, also=(422,)),
    "v1.metrics_summary": Op(query=metrics.SummaryQuerySchema, response=metrics.SummarySchema),
    "v1.metrics_summary_csv": Op(query=metrics.SummaryQuerySchema, content=CSV),
    "v1.metrics_contact_reasons": Op(query=metrics.PeriodSchema, response=ContactReasonsSchema),
    "v1.metrics_contact_reasons_csv": Op(query=metrics.PeriodSchema, content=CSV),
    "v1.openapi_document": Op(),
    "v1.list_queue": Op(query=inputs.PageSchema, response=resources.TicketSchema,
                        collection=True),
    "v1.claim_next": Op(response=resources.TicketSchema, also=(204, 409)),
    "v1.get_settings": Op(),
    "v1.list_contact_reasons": Op(query=inputs.WholeListSchema, response={"type": "string"},
                                  collection=True),
    "v1.patch_settings": Op(body=inputs.SettingsUpdateSchema),
    "v1.list_sla_policies": Op(query=inputs.WholeListSchema,
                               response=resources.SlaPolicyOutSchema, collection=True),
    "v1.put_sla_policy": Op(body=inputs.SlaPolicySchema, response=resources.SlaPolicyOutSchema),
    "v1.delete_sla_policy": Op(status=204, also=(409,)),
    "v1.list_surveys": Op(query=surveys.SurveyListSchema, response=surveys.SurveySchema,
                          collection=True),
    "v1.list_teams": Op(query=inputs.WholeListSchema, response=metrics.TeamSchema,
                        collection=True),
    "v1.create_team": Op(body=metrics.TeamCreateSchema, response=metrics.TeamSchema,
                         status=201, also=(409,)),
    "v1.list_tickets": Op(query=inputs.TicketListSchema, response=resources.TicketSchema,
                          collection=True),
    "v1.get_ticket": Op(response=TicketWithMessagesSchema),
    "v1.update_ticket": Op(body=inputs.TicketUpdateSchema, response=resources.TicketSchema,
                           also=(409, 422)),
    "v1.escalate_ticket": Op(body=inputs.EscalateSchema, response=resources.TicketSchema,
                             also=(422,)),
    "v1.add_message": Op(body=inputs.MessageCreateSchema, response=resources.MessageSchema,
                         status=201, also=(409, 422)),
    "v1.list_messages": Op(query=inputs.PageSchema, response=resources.MessageSchema,
                           collection=True),
    "v1.resend_message": Op(response=resources.MessageSchema, also=(409, 422)),
    "v1.start_work": Op(response=resources.WorkSessionSchema, also=(409,)),
    "v1.stop_work": Op(response=resources.WorkSessionSchema, also=(422,)),
    "v1.list_agents": Op(query=inputs.PageSchema, response=resources.AgentSchema,
                         collection=True),
    "v1.agents_workload": Op(query=inputs.PageSchema, response=WorkloadSchema,
                             collection=True),
    "v1.create_agent": Op(body=inputs.AgentCreateSchema, response=resources.AgentSchema,
                          status=201, also=(409, 422)),
    "v1.update_agent": Op(body=inputs.AgentUpdateSchema, response=resources.AgentSchema,
                          also=(409, 422)),
    "v1.list_audit": Op(query=privacy.AuditListSchema, response=privacy.AuditEntrySchema,
                        collection=True),
    "v1.download_attachment": Op(content="application/octet-stream"),
    "console.agent_console": Op(content=HTML),
    "console.ticket_deep_link": Op(content=HTML),
    "console.supervisor_dashboard": Op(content=HTML),
    "console.administration": Op(content=HTML),
    "health.healthz": Op(),
    "health.readyz": Op(also=(503,)),
    "surveys.survey_page": Op(content=HTML),
    "surveys.answer_survey": Op(body=surveys.SurveyAnswerSchema,
                                response=surveys.SurveyAnswerOutSchema, also=(409,),
                                body_types=(JSON, "application/x-www-form-urlencoded")),
    "webhooks.handshake": Op(content=TEXT, also=(400, 403, 429)),
    "webhooks.receive": Op(content=TEXT, also=(400, 401, 409, 413, 415, 429),
                           body_types=WEBHOOK_TYPES),
}
# Routes no client calls through the API: Flask's static files.
UNDESCRIBED = {"static", "console.static"}
_CONVERTER = re.compile(r"<(?:[a-z]+(?:\([^)]*\))?:)?([a-z_]+)>")
ERROR_SCHEMA = {
    "type": "object", "required": ["error"],
    "properties": {"error": {
        "type": "object", "required": ["code", "message", "fields"],
        "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                       "fields": {"type": "object"}}}}}
VISITOR_ENDPOINTS = {"v1.post_chat_message", "v1.list_chat_messages"}


def _path_parameters(rule: Rule) -> list[dict]:
    params = []
    for name, converter in rule._converters.items():
        schema: dict = {"type": "string", "minLength": 1}
        if isinstance(converter, IntegerConverter):
            schema = {"type": "integer", "minimum": 1, "maximum": converter.max or inputs.MAX_ID}
        params.append({"in": "path", "name": name, "required": True, "schema": schema})
    return params


def _success(op: Op, status: int) -> dict:
    if status == 204:
        return {"description": "no content"}
    if op.content != JSON:
        return {"description": "OK", "content": {op.content: {"schema": {"type": "string"}}}}
    schema: type[Schema] | dict = op.response or {"type": "object"}
    if op.collection:
        schema = {"type": "object", "required": ["items", "page", "per_page", "total"],
                  "properties": {"items": {"type": "array", "items": schema},
                                 "page": {"type": "integer"}, "per_page": {"type": "integer"},
                                 "total": {"type": "integer"}}}
    return {"description": "OK", "content": {JSON: {"schema": schema}}}


def _error_statuses(endpoint: str, op: Op, rule: Rule, method: str, role: str | None) -> set:
    statuses = {503} | {s for s in op.also if s >= 400}
    if op.body or op.query or rule.arguments:
        statuses.add(400)
    if op.body:
        statuses |= {413, 415}
    if endpoint.startswith("v1.") and (endpoint not in _PUBLIC or endpoint in VISITOR_ENDPOINTS):
        statuses.add(401)
    if role and role != "agent":
        statuses.add(403)
    if rule.arguments:
        statuses |= {404, 405}  # a malformed parameter may name another route's path
    if method != "get":
        statuses.add(413)  # any body past the cap, even where none is read
    return statuses


def _operation(endpoint: str, rule: Rule, method: str, view) -> dict:
    op = OPERATIONS.get(endpoint, Op())
    name = endpoint.split(".", 1)[1]
    summary = (view.__doc__ or name.replace("_", " ")).strip().splitlines()[0]
    role = getattr(view, "required_role", None)
    if endpoint.startswith("v1.") and endpoint not in _PUBLIC:
        role = role or "agent"
    operation: dict = {"operationId": name, "summary": summary, "responses": {}}
    for status in sorted({op.status} | {s for s in op.also if s < 300}):
        operation["responses"][str(status)] = _success(op, status)
    for status in sorted(_error_statuses(endpoint, op, rule, method, role)):
        operation["responses"][str(status)] = {
            "description": HTTP_CODES.get(status, "error"),
            "content": {JSON: {"schema": {"$ref": "#/components/schemas/Error"}}}}
    parameters = _path_parameters(rule)
    if op.query is not None:
        parameters.append({"in": "query", "schema": op.query})
    if parameters:
        operation["parameters"] = parameters
    if op.body is not None and method != "get":
        operation["requestBody"] = {"required": True, "content": {
            media: {"schema": op.body} for media in op.body_types}}
    elif endpoint == "webhooks.receive":
        operation["requestBody"] = {"required": True, "content": {
            media: {"schema": {}} for media in op.body_types}}
    if endpoint in VISITOR_ENDPOINTS:
        operation["security"] = [{"visitor": []}]
    elif role:
        operation["security"] = [{"bearer": []}]
        operation["description"] = f"Requires the {role} role."
    else:
        operation["security"] = []
    return operation


def build_spec() -> dict:
    spec = APISpec(title="helpdesk", version="1", openapi_version="3.0.3",
                   plugins=[MarshmallowPlugin()])
    spec.components.security_scheme("bearer", {
        "type": "http", "scheme": "bearer", "description": "an agent's API token"})
    spec.components.security_scheme("visitor", {
        "type": "http", "scheme": "bearer",
        "description": "a chat session's visitor_token (POST /api/v1/chat/<key>/sessions)"})
    spec.components.schema("Error", ERROR_SCHEMA)
    by_path: dict[str, dict] = {}
    for rule in current_app.url_map.iter_rules():
        if rule.endpoint in UNDESCRIBED:
            continue
        view = current_app.view_functions[rule.endpoint]
        path = _CONVERTER.sub(r"{\1}", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            by_path.setdefault(path, {})[method.lower()] = _operation(
                rule.endpoint, rule, method.lower(), view)
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
