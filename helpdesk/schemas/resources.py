"""Output schemas: the JSON of every REST resource (API.md "Resources")."""

from __future__ import annotations

import re
from datetime import UTC

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
    active = fields.Boolean()  # API.md lists it; the console needs it to deactivate


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
    subject = fields.Function(lambda ticket: without_survey_tokens(ticket.subject))
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


SURVEY_PATH = "/surveys/"  # a survey link's path, before the customer's token
# What secrets.token_urlsafe makes, after the path as written or percent-encoded (a mail
# client's link-checking wrapper, Outlook's SafeLinks, quotes the link so).
SURVEY_TOKEN = re.compile(r"(/|%2F)surveys(/|%2F)[A-Za-z0-9_-]+", re.IGNORECASE)


class MessageSchema(Schema):
    id = fields.Integer()
    ticket_id = fields.Integer()
    direction = fields.String()
    internal = fields.Boolean()
    author = fields.Method("get_author")
    channel = fields.Nested(ChannelRefSchema)
    subject = fields.Function(lambda message: without_survey_tokens(message.subject))
    text = fields.Method("get_text")
    html = fields.Method("get_html")
    attachments = fields.List(fields.Nested(AttachmentSchema))
    delivery_status = fields.String()
    delivery_error = fields.String(allow_none=True)
    flags = fields.List(fields.String())
    created_at = fields.DateTime()

    def get_author(self, message) -> dict:
        return {"type": message.author_type, "id": message.author_id,
                "name": message.author_name}

    # A survey's link is the customer's key to answer it: agents (whom it rates) see every
    # message with survey links cut to `/surveys/…`, the survey itself and a customer's
    # reply quoting it alike. What goes to customers (CustomerMessageSchema) keeps them.
    def get_text(self, message) -> str | None:
        return without_survey_tokens(message.text)

    def get_html(self, message) -> str | None:
        return without_survey_tokens(message.html)


class CustomerMessageSchema(MessageSchema):
    """A message as its customer gets it (the chat widget, an `api` channel's callback):
    survey links whole."""

    subject = fields.String(allow_none=True)

    def get_text(self, message) -> str | None:
        return message.text

    def get_html(self, message) -> str | None:
        return message.html


def without_survey_tokens(text: str | None) -> str | None:
    """A text agents read, without survey links' tokens (a customer's reply quotes the
    survey: an agent could answer the survey that rates them)."""
    if not text or "surveys" not in text.lower():
        return text
    return SURVEY_TOKEN.sub(SURVEY_PATH + "…", text)


class DeliverySchema(Schema):
    id = fields.Integer()
    channel_id = fields.Integer()
    provider = fields.String()
    dedupe_key = fields.String()
    status = fields.String()
    error = fields.String(allow_none=True)
    attempts = fields.Integer()
    content_type = fields.String()
    size = fields.Integer()  # (a deferred column: the listing reads it, not the body)
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
customer_message_schema = CustomerMessageSchema()
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
    wait_seconds = fields.Float(allow_none=True, attribute="waited_seconds")
    talk_seconds = fields.Float(allow_none=True)
    recording_url = fields.String(allow_none=True)
    transcript = fields.String(allow_none=True)
    started_at = fields.DateTime()
    ended_at = fields.DateTime(allow_none=True)


call_schema = CallSchema()


# -- a ticket's JSON from plain values -------------------------------------------------------
#
# The claim (`POST /queue/next`, services/routing/queue) answers with the ticket it just
# assigned, read by its own statement as plain columns: building the same JSON from them costs
# a tenth of loading the ticket, its customer, their identities and its channel as objects and
# dumping them with TicketSchema. `ticket_json` must produce exactly what
# `ticket_schema.dump(ticket)` does (same keys, order and values);
# tests/api/test_queue.py compares the two.

TICKET_ROW_COLUMNS = (
    "id", "subject", "status", "priority", "level", "urgency", "urgency_reasons", "language",
    "assignee_id", "customer_id", "contact_reason", "tags", "identity_verified",
    "first_response_due_at", "resolution_due_at", "sla_breached", "previous_ticket_id",
    "created_at", "updated_at", "first_response_at", "solved_at")


def _iso(value):
    # As UTCDateTime reads them (naive: UTC), then as fields.DateTime writes them.
    if value is None:
        return None
    return (value.replace(tzinfo=UTC) if value.tzinfo is None
            else value.astimezone(UTC)).isoformat()


def _int(value):
    return None if value is None else int(value)


def _str(value):
    return None if value is None else str(value)


def _reason(reason: dict) -> dict:
    # UrgencyReasonSchema: the keys a reason has, in the schema's order.
    out = {}
    if "factor" in reason:
        out["factor"] = _str(reason["factor"])
    if "points" in reason:
        out["points"] = _int(reason["points"])
    if "detail" in reason:
        out["detail"] = _str(reason["detail"])
    return out


def ticket_json(ticket: dict, channel: tuple, customer: tuple, identities: list) -> dict:
    """What `ticket_schema.dump` gives for this ticket: `ticket` maps TICKET_ROW_COLUMNS to
    their values (datetimes timezone-aware, in UTC; JSON columns decoded), `channel` is (id,
    kind, provider, name), `customer` (id, name, tier, merged_into_id, created_at) and
    `identities` the customer's (kind, value, verified), in id order."""
    customer_id, name, tier, merged_into, customer_created = customer
    customer_json = {
        "id": _int(customer_id), "name": _str(name), "tier": _str(tier),
        "identities": [{"kind": _str(kind), "value": _str(value), "verified": verified}
                       for kind, value, verified in identities],
    }
    if merged_into is not None:
        customer_json["merged_into"] = int(merged_into)
    customer_json["created_at"] = _iso(customer_created)
    reasons = ticket["urgency_reasons"]
    tags = ticket["tags"]
    return {
        "id": _int(ticket["id"]),
        "subject": without_survey_tokens(_str(ticket["subject"])),
        "status": _str(ticket["status"]),
        "priority": _str(ticket["priority"]),
        "level": _int(ticket["level"]),
        "urgency": _int(ticket["urgency"]),
        "urgency_reasons": None if reasons is None else [_reason(r) for r in reasons],
        "language": _str(ticket["language"]),
        "assignee_id": _int(ticket["assignee_id"]),
        "customer_id": _int(ticket["customer_id"]),
        "customer": customer_json,
        "channel": {"id": _int(channel[0]), "kind": _str(channel[1]),
                    "provider": _str(channel[2]), "name": _str(channel[3])},
        "contact_reason": _str(ticket["contact_reason"]),
        "tags": None if tags is None else [_str(tag) for tag in tags],
        "identity_verified": ticket["identity_verified"],
        "sla": {"first_response_due_at": _iso(ticket["first_response_due_at"]),
                "resolution_due_at": _iso(ticket["resolution_due_at"]),
                "breached": ticket["sla_breached"]},
        "previous_ticket_id": _int(ticket["previous_ticket_id"]),
        "created_at": _iso(ticket["created_at"]),
        "updated_at": _iso(ticket["updated_at"]),
        "first_response_at": _iso(ticket["first_response_at"]),
        "solved_at": _iso(ticket["solved_at"]),
    }
