"""Output schemas: the JSON of every REST resource (API.md "Resources")."""

from __future__ import annotations

from flask import current_app, has_request_context, request
from marshmallow import Schema, fields, post_dump


def public_base_url() -> str:
    configured = current_app.config.get("PUBLIC_URL")
    if configured:
        return configured
    return request.host_url.rstrip("/") if has_request_context() else ""


class ChannelRefSchema(Schema):
    id = fields.Integer()
    kind = fields.String()
    provider = fields.String()
    name = fields.String()


class ChannelSchema(ChannelRefSchema):
    key = fields.String()
    webhook_url = fields.Method("get_webhook_url")
    settings = fields.Dict()
    created_at = fields.DateTime()

    def get_webhook_url(self, channel) -> str:
        return f"{public_base_url()}/webhooks/{channel.provider}/{channel.key}"


class AgentSchema(Schema):
    id = fields.Integer()
    email = fields.String()
    name = fields.String()
    role = fields.String()
    level = fields.Integer()
    languages = fields.List(fields.String())
    channels = fields.List(fields.String())
    capacity = fields.Float()
    presence = fields.String()
    team_id = fields.Integer(allow_none=True)
    active = fields.Boolean()


class AgentRefSchema(Schema):
    id = fields.Integer()
    email = fields.String()
    name = fields.String()
    role = fields.String()
    level = fields.Integer()


class IdentitySchema(Schema):
    kind = fields.String()
    value = fields.String()
    verified = fields.Boolean()


class CustomerSchema(Schema):
    id = fields.Integer()
    name = fields.String(allow_none=True)
    tier = fields.String()
    identities = fields.List(fields.Nested(IdentitySchema))
    merged_into = fields.Integer(attribute="merged_into_id", allow_none=True)
    created_at = fields.DateTime()

    @post_dump
    def _drop_unmerged(self, data: dict, **_kwargs) -> dict:
        if data.get("merged_into") is None:
            data.pop("merged_into", None)
        return data


class UrgencyReasonSchema(Schema):
    factor = fields.String()
    points = fields.Integer()
    detail = fields.String()


class SlaSchema(Schema):
    first_response_due_at = fields.DateTime(allow_none=True)
    resolution_due_at = fields.DateTime(allow_none=True)
    breached = fields.Boolean(attribute="sla_breached")


_sla_schema = SlaSchema()


class TicketSchema(Schema):
    id = fields.Integer()
    subject = fields.String(allow_none=True)
    status = fields.String()
    priority = fields.String()
    level = fields.Integer()
    urgency = fields.Integer()
    urgency_reasons = fields.List(fields.Nested(UrgencyReasonSchema))
    language = fields.String(allow_none=True)
    assignee_id = fields.Integer(allow_none=True)
    customer_id = fields.Integer()
    customer = fields.Nested(CustomerSchema)
    channel = fields.Nested(ChannelRefSchema)
    contact_reason = fields.String(allow_none=True)
    tags = fields.List(fields.String())
    identity_verified = fields.Boolean()
    sla = fields.Function(lambda ticket: _sla_schema.dump(ticket))
    previous_ticket_id = fields.Integer(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    first_response_at = fields.DateTime(allow_none=True)
    solved_at = fields.DateTime(allow_none=True)


class AttachmentSchema(Schema):
    id = fields.Integer()
    filename = fields.String()
    content_type = fields.String()
    size = fields.Integer()
    url = fields.Method("get_url")

    def get_url(self, attachment) -> str:
        if attachment.storage_path:
            return f"{public_base_url()}/api/v1/attachments/{attachment.id}"
        return attachment.url or ""


class MessageSchema(Schema):
    id = fields.Integer()
    ticket_id = fields.Integer()
    direction = fields.String()
    internal = fields.Boolean()
    author = fields.Method("get_author")
    channel = fields.Nested(ChannelRefSchema)
    subject = fields.String(allow_none=True)
    text = fields.String()
    html = fields.String(allow_none=True)
    attachments = fields.List(fields.Nested(AttachmentSchema))
    delivery_status = fields.String()
    delivery_error = fields.String(allow_none=True)
    flags = fields.List(fields.String())
    created_at = fields.DateTime()

    def get_author(self, message) -> dict:
        return {"type": message.author_type, "id": message.author_id,
                "name": message.author_name}


class DeliverySchema(Schema):
    id = fields.Integer()
    channel_id = fields.Integer()
    provider = fields.String()
    dedupe_key = fields.String()
    status = fields.String()
    error = fields.String(allow_none=True)
    attempts = fields.Integer()
    content_type = fields.String()
    size = fields.Function(lambda delivery: len(delivery.body or b""))
    received_at = fields.DateTime()
    processed_at = fields.DateTime(allow_none=True)


class TicketEventSchema(Schema):
    name = fields.String()
    actor = fields.Method("get_actor")
    data = fields.Dict()

    def get_actor(self, event) -> dict:
        return {"type": event.actor_type, "id": event.actor_id}


class WorkSessionSchema(Schema):
    id = fields.Integer()
    agent_id = fields.Integer()
    ticket_id = fields.Integer()
    source = fields.String()
    started_at = fields.DateTime()
    ended_at = fields.DateTime(allow_none=True)
    end_reason = fields.String(allow_none=True)
    seconds = fields.Method("get_seconds")

    def get_seconds(self, session) -> float | None:
        if session.ended_at is None:
            return None
        return (session.ended_at - session.started_at).total_seconds()


ticket_schema = TicketSchema()
message_schema = MessageSchema()
customer_schema = CustomerSchema()
channel_schema = ChannelSchema()
agent_schema = AgentSchema()
agent_ref_schema = AgentRefSchema()
delivery_schema = DeliverySchema()
work_session_schema = WorkSessionSchema()


class SlaPolicyOutSchema(Schema):
    priority = fields.String()
    first_response_seconds = fields.Integer(allow_none=True)
    resolution_seconds = fields.Integer(allow_none=True)
    warning_ratio = fields.Float()
    calendar = fields.Dict(allow_none=True)


sla_policy_schema = SlaPolicyOutSchema()


class CallSchema(Schema):
    """The `call` of a timeline item (API.md "Resources")."""

    id = fields.Integer()
    external_id = fields.String()
    direction = fields.String()
    status = fields.String(allow_none=True)
    outcome = fields.String(allow_none=True)
    wait_seconds = fields.Float(allow_none=True)
    talk_seconds = fields.Float(allow_none=True)
    recording_url = fields.String(allow_none=True)
    transcript = fields.String(allow_none=True)
    started_at = fields.DateTime()
    ended_at = fields.DateTime(allow_none=True)


call_schema = CallSchema()
