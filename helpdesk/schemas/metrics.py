"""Metrics: the query (period and grouping) and the CSV rendering of the results."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from helpdesk.services.metrics import EMPTY, GROUPS


class Moment(fields.Field):
    """An ISO 8601 date (midnight UTC) or datetime (UTC when it names no offset)."""

    def _deserialize(self, value: Any, attr, data, **kwargs) -> datetime:
        try:
            moment = datetime.fromisoformat(str(value).strip())
        except ValueError as exc:
            raise ValidationError("an ISO 8601 date or datetime") from exc
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class PeriodSchema(Schema):
    from_ = Moment(required=True, data_key="from")
    to = Moment(required=True)

    @validates_schema
    def _ordered(self, data: dict, **_kwargs) -> None:
        if data.get("from_") and data.get("to") and data["to"] <= data["from_"]:
            raise ValidationError("must be after from", "to")


class SummaryQuerySchema(PeriodSchema):
    group_by = fields.String(load_default=None, validate=validate.OneOf(GROUPS))


class TeamCreateSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))


class TeamSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    created_at = fields.DateTime()


def flat_names(template: dict = EMPTY, prefix: str = "") -> list[str]:
    """`frt_seconds` → `frt_seconds_mean`, `frt_seconds_p50`, … in the contract's order."""
    names = []
    for name, value in template.items():
        if isinstance(value, dict):
            names += flat_names(value, f"{prefix}{name}_")
        else:
            names.append(prefix + name)
    return names


def _flat(values: dict, prefix: str = "") -> dict[str, Any]:
    flat = {}
    for name, value in values.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{name}_"))
        else:
            flat[prefix + name] = value
    return flat


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def to_csv(columns: list[str], rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(name)) for name in columns])
    return out.getvalue()


def summary_csv(summary: dict) -> str:
    """One row per group, or one `totals` row; nested figures flattened; null → empty."""
    rows = summary["groups"] if summary["group_by"] else [
        {"key": "totals", "label": "totals", **summary["totals"]}]
    flat = [{"key": row["key"], "label": row["label"], **_flat(
        {name: row[name] for name in EMPTY})} for row in rows]
    return to_csv(["key", "label", *flat_names()], flat)


def contact_reasons_csv(items: list[dict]) -> str:
    return to_csv(["reason", "count", "share", "cumulative_share", "vital_few"], items)
