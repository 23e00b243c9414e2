"""Metrics for supervisors (API.md "Metrics"): JSON and CSV."""

from __future__ import annotations

from flask import Response, jsonify

from helpdesk.api.common import query_args
from helpdesk.api.security import requires
from helpdesk.api.v1 import bp
from helpdesk.schemas.metrics import (
    PeriodSchema,
    SummaryQuerySchema,
    contact_reasons_csv,
    summary_csv,
    summary_schema,
)
from helpdesk.services.metrics import pareto as metrics_pareto
from helpdesk.services.metrics import summary as metrics


def _summary() -> dict:
    args = query_args(SummaryQuerySchema())
    return summary_schema.dump(metrics.summary(args["from_"], args["to"], args["group_by"]))


def _reasons() -> list[dict]:
    args = query_args(PeriodSchema())
    return metrics_pareto.contact_reasons(args["from_"], args["to"])


def _csv(body: str, name: str) -> Response:
    return Response(body, mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})


@bp.get("/metrics/summary")
@requires("supervisor")
def metrics_summary():
    return jsonify(_summary())


@bp.get("/metrics/summary.csv")
@requires("supervisor")
def metrics_summary_csv():
    return _csv(summary_csv(_summary()), "summary")


@bp.get("/metrics/contact-reasons")
@requires("supervisor")
def metrics_contact_reasons():
    return jsonify({"items": _reasons()})


@bp.get("/metrics/contact-reasons.csv")
@requires("supervisor")
def metrics_contact_reasons_csv():
    return _csv(contact_reasons_csv(_reasons()), "contact-reasons")
