"""Stored webhook deliveries (admin): inspect and replay."""

from __future__ import annotations

from flask import jsonify

from helpdesk.api.common import paginate, query_args
from helpdesk.api.security import requires
from helpdesk.api.v1 import bp
from helpdesk.schemas.inputs import DeliveryListSchema
from helpdesk.schemas.resources import delivery_schema
from helpdesk.services.ingest import deliveries


@bp.get("/deliveries")
@requires("admin")
def list_deliveries():
    args = query_args(DeliveryListSchema())
    query = deliveries.search(args.get("status"), args.get("channel"))
    return jsonify(paginate(query, args["page"], args["per_page"], delivery_schema))


@bp.post("/deliveries/<int:delivery_id>/replay")
@requires("admin")
def replay_delivery(delivery_id: int):
    return jsonify(delivery_schema.dump(deliveries.replay(delivery_id)))
