"""Surveys: the answer a customer posts, the supervisors' list filters, the resource."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from helpdesk.models import SURVEY_KINDS
from helpdesk.schemas.inputs import PageSchema, RowId, WholeNumber

SURVEY_STATUSES = ("scheduled", "sent", "answered", "skipped", "failed")


class SurveyAnswerSchema(Schema):
    """`{"score", "comment"?}` from the public form (form fields or JSON); range per kind."""

    score = WholeNumber(required=True, validate=validate.Range(-1000, 1000))
    comment = fields.String(load_default=None, allow_none=True,
                            validate=validate.Length(max=5000))


class SurveyFormSchema(SurveyAnswerSchema):
    """The survey page's form: its score is text (ASCII digits)."""

    score = WholeNumber(required=True, form=True, validate=validate.Range(-1000, 1000))


class SurveyListSchema(PageSchema):
    ticket = RowId()
    agent = RowId()
    customer = RowId()
    kind = fields.String(validate=validate.OneOf(tuple(SURVEY_KINDS)))
    status = fields.String(validate=validate.OneOf(SURVEY_STATUSES))


class SurveySchema(Schema):
    """A survey as supervisors see it (never its token: that is the customer's key)."""

    id = fields.Integer()
    ticket_id = fields.Integer()
    customer_id = fields.Integer()
    agent_id = fields.Integer(allow_none=True)
    channel_id = fields.Integer()
    kind = fields.String()
    status = fields.String()
    score = fields.Integer(allow_none=True)
    comment = fields.String(allow_none=True)
    answered_via = fields.String(allow_none=True)
    created_at = fields.DateTime()
    sent_at = fields.DateTime(allow_none=True)
    answered_at = fields.DateTime(allow_none=True)


class SurveyAnswerOutSchema(Schema):
    """What the customer gets back after answering."""

    kind = fields.String()
    status = fields.String()
    score = fields.Integer()
    comment = fields.String(allow_none=True)
    answered_at = fields.DateTime()
    message = fields.Constant("Thank you for your feedback.")


survey_schema = SurveySchema()
survey_answer_out_schema = SurveyAnswerOutSchema()
