"""Input schemas, one per use case: syntax only (lookups and permissions are services')."""

from __future__ import annotations

import re
from typing import Any

from marshmallow import Schema, ValidationError, fields, pre_load, validate, validates_schema

from helpdesk.models import IDENTITY_KINDS, KINDS, PRIORITIES, ROLES, STATUSES

NonEmpty = validate.Length(min=1)
MAX_REASONS = 200           # configured contact reasons: one page of GET /contact-reasons
MAX_ID = 2**31 - 1           # what an id column holds on every database we run on
MAX_PAGE = 1_000_000
MAX_SECONDS = 3653 * 86400   # ten years: any duration setting


class RowId(fields.Integer):
    """A row id: an integer an id column can hold (beyond it: 400, not a database error)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("validate", validate.Range(min=1, max=MAX_ID))
        super().__init__(**kwargs)


class WholeNumber(fields.Integer):
    """A JSON number that is whole (`4` or `4.0`; `5.9` is refused, not read as 5), or a
    form's ASCII digits (`-` allowed): `"4"` in JSON, `+4`, `４` or `٤` are refused too
    (Python's int() reads them all)."""

    _DIGITS = re.compile(r"-?[0-9]+")

    def __init__(self, *args, form: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.form = form  # a form's field: digits as text are its only way to say a number

    def _validated(self, value):
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise self.make_error("invalid", input=value)
        if isinstance(value, str) and not (self.form and self._DIGITS.fullmatch(value)):
            raise self.make_error("invalid", input=value)
        return super()._validated(value)


class JsonBoolean(fields.Boolean):
    """JSON's true or false only (marshmallow also reads "no", "off", 0 and 1)."""

    def _deserialize(self, value, attr, data, **kwargs) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class LanguageTag(fields.String):
    """An agent's language, as tickets' languages are detected: the lower-case ISO 639 code
    ("ES", "es-ES" and "es_ES" are all "es"); anything else is a 400."""

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        tag = super()._deserialize(value, attr, data, **kwargs)
        primary = tag.strip().lower().replace("_", "-").split("-")[0]
        if not (2 <= len(primary) <= 3 and primary.isascii() and primary.isalpha()):
            raise ValidationError("a language code, such as 'en' or 'pt-BR'")
        return primary


class ReasonName(fields.String):
    """A contact reason or keyword: non-blank, at most 200 characters."""

    def __init__(self, **kwargs):
        super().__init__(validate=[validate.Length(max=200), validate.Regexp(r".*\S")],
                         **kwargs)


def _not_blank(value: str) -> None:
    if not value.strip():
        raise ValidationError("must not be blank")


class LoginSchema(Schema):
    email = fields.String(required=True, validate=[NonEmpty, _not_blank])
    password = fields.String(required=True, validate=NonEmpty)


class ChannelCreateSchema(Schema):
    name = fields.String(required=True, validate=[validate.Length(min=1, max=200), _not_blank])
    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    provider = fields.String(required=True, validate=NonEmpty)
    settings = fields.Dict(keys=fields.String(), load_default=dict)
    secrets = fields.Dict(keys=fields.String(), load_default=dict)


class ChannelUpdateSchema(Schema):
    name = fields.String(validate=[validate.Length(min=1, max=200), _not_blank])
    settings = fields.Dict(keys=fields.String())
    secrets = fields.Dict(keys=fields.String())


class TicketUpdateSchema(Schema):
    status = fields.String(validate=validate.OneOf(STATUSES))
    priority = fields.String(validate=validate.OneOf(PRIORITIES))
    assignee_id = RowId(allow_none=True, strict=True)
    tags = fields.List(fields.String(validate=validate.Length(min=1, max=100)))
    contact_reason = ReasonName(allow_none=True)


class MessageCreateSchema(Schema):
    text = fields.String(required=True,
                         validate=[validate.Length(min=1, max=100_000), _not_blank])
    internal = JsonBoolean(load_default=False)  # "no" or 0 must not send a note out
    status = fields.String(validate=validate.OneOf(STATUSES))


class EscalateSchema(Schema):
    level = WholeNumber(required=True, strict=True, validate=validate.Range(min=2, max=10))
    reason = fields.String(required=True, validate=[validate.Length(min=1, max=2000), _not_blank])


class IdentityInputSchema(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(IDENTITY_KINDS))
    value = fields.String(required=True, validate=validate.Length(min=1, max=320))


class CustomerCreateSchema(Schema):
    name = fields.String(required=True, validate=[validate.Length(min=1, max=200), _not_blank])
    identities = fields.List(fields.Nested(IdentityInputSchema), required=True)
    tier = fields.String(load_default="standard", validate=validate.OneOf(("standard", "vip")))


class AgentCreateSchema(Schema):
    email = fields.Email(required=True, validate=validate.Length(max=320))
    name = fields.String(required=True, validate=[validate.Length(min=1, max=200), _not_blank])
    role = fields.String(load_default="agent", validate=validate.OneOf(ROLES))
    level = WholeNumber(load_default=1, strict=True, validate=validate.Range(min=1, max=10))
    password = fields.String(load_default=None, validate=validate.Length(min=8))
    languages = fields.List(LanguageTag(), load_default=list)
    channels = fields.List(fields.String(validate=validate.OneOf(KINDS)), load_default=list)
    capacity = fields.Float(load_default=1.0, validate=validate.Range(min=0.1, max=100))
    team_id = RowId(load_default=None, allow_none=True, strict=True)
    active = JsonBoolean(load_default=True)


class PageSchema(Schema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=MAX_PAGE))
    per_page = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


class WholeListSchema(PageSchema):
    """A short list's pages: all of it on the first unless asked otherwise."""

    per_page = fields.Integer(load_default=200, validate=validate.Range(min=1, max=200))


FILTERS = ("status", "priority", "assignee", "channel", "customer", "q")


class TicketListSchema(PageSchema):
    status = fields.String(validate=validate.OneOf(STATUSES))
    priority = fields.String(validate=validate.OneOf(PRIORITIES))
    assignee = fields.String()  # an id, "me" or "none"
    channel = RowId()
    customer = RowId()
    q = fields.String(validate=validate.Length(max=200))

    @pre_load
    def _blank_is_no_filter(self, data: Any, **_kwargs) -> Any:
        """`?status=&priority=` (a form's empty fields): no filter, as API.md writes it."""
        if not hasattr(data, "items"):
            return data
        return {key: value for key, value in data.items()
                if not (key in FILTERS and isinstance(value, str) and not value.strip())}

    @validates_schema
    def _assignee(self, data: dict, **_kwargs) -> None:
        value = data.get("assignee")
        if value is not None and value not in ("me", "none") and not (
                value.isascii() and value.isdigit() and len(value) <= len(str(MAX_ID))
                and 0 < int(value) <= MAX_ID):
            raise ValidationError("an agent id, 'me' or 'none'", "assignee")


class CustomerListSchema(PageSchema):
    identity = fields.String(validate=validate.Length(min=3, max=400))


class DeliveryListSchema(PageSchema):
    status = fields.String(validate=validate.OneOf(("received", "processed", "duplicate",
                                                    "failed")))
    channel = RowId()


class SlaPolicySchema(Schema):
    # (strict: 1.7 was taken as 1 and "3600" as a number)
    first_response_seconds = fields.Integer(allow_none=True, load_default=None, strict=True,
                                            validate=validate.Range(min=1, max=MAX_SECONDS))
    resolution_seconds = fields.Integer(allow_none=True, load_default=None, strict=True,
                                        validate=validate.Range(min=1, max=MAX_SECONDS))
    warning_ratio = fields.Float(load_default=0.8, validate=validate.Range(min=0.05, max=0.99))
    calendar = fields.Dict(allow_none=True, load_default=None)


class SurveySettingsSchema(Schema):
    """Which satisfaction surveys follow a solved ticket, after how long, how often at most."""

    csat = JsonBoolean()
    ces = JsonBoolean()
    nps = JsonBoolean()
    delay_seconds = fields.Integer(strict=True, validate=validate.Range(0, 30 * 24 * 3600))
    min_days_between = fields.Integer(strict=True, validate=validate.Range(0, 3650))


class SettingsUpdateSchema(Schema):
    routing_mode = fields.String(validate=validate.OneOf(("pull", "push")))
    # a partial change keeps the other kinds' weights; null drops a kind's own weight
    capacity_weights = fields.Dict(
        keys=fields.String(validate=validate.OneOf((*KINDS, "default"))),
        values=fields.Float(allow_none=True, validate=validate.Range(0, 1, min_inclusive=False)))
    surveys = fields.Nested(SurveySettingsSchema)  # a partial change keeps the other options
    contact_reasons = fields.List(ReasonName(), validate=validate.Length(max=MAX_REASONS))
    contact_reason_rules = fields.Dict(keys=ReasonName(), values=fields.List(
        ReasonName(), validate=NonEmpty))


class AgentUpdateSchema(Schema):
    email = fields.Email(validate=validate.Length(max=320))
    name = fields.String(validate=[validate.Length(min=1, max=200), _not_blank])
    role = fields.String(validate=validate.OneOf(ROLES))
    level = WholeNumber(strict=True, validate=validate.Range(min=1, max=10))
    languages = fields.List(LanguageTag())
    channels = fields.List(fields.String(validate=validate.OneOf(KINDS)))
    capacity = fields.Float(validate=validate.Range(min=0.1, max=100))
    # JSON's true or false only: "no", "off" or 0 deactivated an agent (and their tokens).
    active = JsonBoolean()
    password = fields.String(validate=validate.Length(min=8))
    team_id = RowId(allow_none=True, strict=True)


class ChatSessionCreateSchema(Schema):
    name = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=200))
    email = fields.Email(load_default=None, allow_none=True, validate=validate.Length(max=320))
    email_hmac = fields.String(load_default=None, allow_none=True,
                               validate=validate.Length(min=1, max=128))

    @validates_schema
    def _hmac_signs_an_email(self, data: dict, **_kwargs) -> None:
        if data.get("email_hmac") and not data.get("email"):
            raise ValidationError("signs the email: send the email too", "email_hmac")


class ChatMessageCreateSchema(Schema):
    text = fields.String(required=True,
                         validate=[validate.Length(min=1, max=100_000), _not_blank])
    client_message_id = fields.String(required=True,
                                      validate=[validate.Length(min=1, max=200), _not_blank])
