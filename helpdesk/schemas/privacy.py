"""Merging customers and the audit log: inputs and resources."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from helpdesk.schemas.inputs import PageSchema, RowId


class CustomerMergeSchema(Schema):
    other_id = RowId(required=True, strict=True)


class AuditListSchema(PageSchema):
    action = fields.String(validate=validate.Length(min=1, max=50))
    subject_type = fields.String(validate=validate.Length(min=1, max=30))
    subject_id = RowId()
    actor_id = RowId()


class AuditEntrySchema(Schema):
    id = fields.Integer()
    actor_id = fields.Integer(allow_none=True)
    action = fields.String()
    subject_type = fields.String()
    subject_id = fields.Integer(allow_none=True)
    data = fields.Dict()
    created_at = fields.DateTime()


audit_entry_schema = AuditEntrySchema()
