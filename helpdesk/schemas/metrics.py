"""Metrics: the query (period and grouping), the response, and its CSV rendering."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from marshmallow import (
    Schema,
    ValidationError,
    fields,
    post_load,
    pre_load,
    validate,
)

from helpdesk.services.metrics.summary import EMPTY, GROUPS

MAX_PERIOD_YEARS = 10  # by the calendar: 2017-01-01 to 2027-01-01, not a day more
MAX_DAY_GROUPS = 400
DEFAULT_DAYS = 7


class Moment(fields.Field):
    """An ISO 8601 date (midnight UTC) or datetime (UTC when it names no offset)."""

    def _deserialize(self, value: Any, attr, data, **kwargs) -> datetime:
        text = str(value).strip()
        try:
            moment = datetime.fromisoformat(text)
            moment = (moment.replace(tzinfo=UTC) if moment.tzinfo is None
                      else moment.astimezone(UTC))
        except (ValueError, OverflowError) as exc:
            raise ValidationError("an ISO 8601 date or datetime") from exc
        return moment


def _is_date(value: Any) -> bool:
    try:
        date.fromisoformat(str(value).strip())
    except ValueError:
        return False
    return True


class PeriodSchema(Schema):
    """`from` inclusive, `to` exclusive. Neither: the last 7 UTC days including today;
    `from` alone: until the end of today; `to` alone: the 7 days before it; a date `to`
    equal to a date `from`: that whole day."""

    from_ = Moment(load_default=None, data_key="from")
    to = Moment(load_default=None)

    @pre_load
    def _whole_day(self, data: Any, **_kwargs) -> Any:
        if hasattr(data, "items"):  # `?from=&to=&group_by=` (a form's empty fields): absent
            data = {key: value for key, value in data.items()
                    if not (key in ("from", "to", "group_by") and isinstance(value, str)
                            and not value.strip())}
        if (hasattr(data, "get") and data.get("from") is not None
                and data.get("from") == data.get("to") and _is_date(data["to"])):
            try:
                following = date.fromisoformat(data["to"].strip()) + timedelta(days=1)
            except OverflowError:  # the last day there is: refused as out of range
                return data
            data = {**data, "to": following.isoformat()}
        return data

    @post_load
    def _complete(self, data: dict, **_kwargs) -> dict:
        """The period as given; what is missing from the default: `to` the end of today,
        `from` the DEFAULT_DAYS before `to` (neither: the last 7 UTC days, today included;
        `from` alone: from then until the end of today; `to` alone: the 7 days before it)."""
        start, end = data["from_"], data["to"]
        if end is None:
            end = datetime.combine(datetime.now(UTC).date() + timedelta(days=1), time(),
                                   tzinfo=UTC)
            if start is not None and start >= end:
                raise ValidationError("is after today: give to as well", "from")
        if start is None:
            try:
                start = end - timedelta(days=DEFAULT_DAYS)
            except OverflowError:
                raise ValidationError("out of range", "to") from None
        if end <= start:
            raise ValidationError("must be after from", "to")
        if end > _years_after(start, MAX_PERIOD_YEARS):
            raise ValidationError("a period is at most 10 years", "to")
        data["from_"], data["to"] = start, end
        self.check_period(data)
        return data

    def check_period(self, data: dict) -> None:
        """Further limits on the complete period (subclasses)."""


class SummaryQuerySchema(PeriodSchema):
    group_by = fields.String(load_default=None, validate=validate.OneOf(GROUPS))

    def check_period(self, data: dict) -> None:
        if data["group_by"] != "day":
            return
        # The UTC days the period touches, as the groups are made (`Period.days`): 400
        # days from noon to noon are 401 groups.
        first = data["from_"].date()
        last = (data["to"] - timedelta(microseconds=1)).date()
        if (last - first).days + 1 > MAX_DAY_GROUPS:
            raise ValidationError(f"grouped by day, a period is at most {MAX_DAY_GROUPS} days "
                                  f"({MAX_DAY_GROUPS} groups)", "group_by")


class _Spread(Schema):
    mean = fields.Float(allow_none=True)
    p50 = fields.Float(allow_none=True)
    p90 = fields.Float(allow_none=True)


class _Mean(Schema):
    mean = fields.Float(allow_none=True)


class _Csat(Schema):
    score = fields.Float(allow_none=True)
    mean = fields.Float(allow_none=True)
    responses = fields.Integer()


class _Ces(Schema):
    mean = fields.Float(allow_none=True)
    responses = fields.Integer()


class _Nps(Schema):
    score = fields.Float(allow_none=True)
    responses = fields.Integer()


class FiguresSchema(Schema):
    """M: every figure of API.md "Metrics", in the contract's order."""

    class Meta:
        ordered = True

    tickets_created = fields.Integer()
    tickets_solved = fields.Integer()
    aht_seconds = fields.Float(allow_none=True)
    flr_rate = fields.Float(allow_none=True)
    fcr_rate = fields.Float(allow_none=True)
    frt_seconds = fields.Nested(_Spread)
    resolution_seconds = fields.Nested(_Spread)
    pending_seconds = fields.Nested(_Mean)
    sla_compliance = fields.Float(allow_none=True)
    abandoned_call_rate = fields.Float(allow_none=True)
    csat = fields.Nested(_Csat)
    ces = fields.Nested(_Ces)
    nps = fields.Nested(_Nps)
    backlog = fields.Integer()


class GroupSchema(FiguresSchema):
    key = fields.Raw(allow_none=True)   # an id, or a date as YYYY-MM-DD
    label = fields.String(allow_none=True)

    class Meta:
        ordered = True
        fields = ("key", "label", *FiguresSchema._declared_fields)


class SummarySchema(Schema):
    class Meta:
        ordered = True

    from_ = fields.DateTime(data_key="from")
    to = fields.DateTime()
    group_by = fields.String(allow_none=True)
    totals = fields.Nested(FiguresSchema)
    groups = fields.List(fields.Nested(GroupSchema))


summary_schema = SummarySchema()


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


FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    return neutralised(str(value))


def neutralised(text: str) -> str:
    """Text a spreadsheet would run as a formula (`=HYPERLINK(…)`, `+`, `-`, `@`, tab, CR)
    gets a leading apostrophe (OWASP "CSV injection")."""
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


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


def _years_after(start: datetime, years: int) -> datetime:
    """The same moment `years` later by the calendar (a 29 February ends on 1 March)."""
    try:
        return start.replace(year=start.year + years)
    except ValueError:
        if start.year + years > datetime.max.year:
            return datetime.max.replace(tzinfo=start.tzinfo)
        return start.replace(year=start.year + years, month=3, day=1)
