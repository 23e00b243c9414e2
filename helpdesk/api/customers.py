"""Customers: create, look up by identity, timeline; merge, export, erase."""

from __future__ import annotations

from flask import jsonify
from sqlalchemy import select

from helpdesk.api.common import json_body, page_of, paginate, query_args
from helpdesk.api.security import current_agent, requires
from helpdesk.api.v1 import bp
from helpdesk.models import Customer
from helpdesk.schemas.inputs import CustomerCreateSchema, CustomerListSchema, PageSchema
from helpdesk.schemas.privacy import CustomerMergeSchema
from helpdesk.schemas.resources import customer_schema
from helpdesk.services import customers, privacy


@bp.post("/customers")
def create_customer():
    data = json_body(CustomerCreateSchema())
    customer = customers.create(data["name"], data["identities"], data["tier"])
    return jsonify(customer_schema.dump(customer)), 201


@bp.get("/customers")
def list_customers():
    args = query_args(CustomerListSchema())
    spec = args.get("identity")
    if spec is not None:
        found = customer_schema.dump(customers.find_by_identity(spec), many=True)
        return jsonify(page_of(found, args["page"], args["per_page"]))
    query = select(Customer).where(Customer.erased_at.is_(None)).order_by(Customer.id.desc())
    return jsonify(paginate(query, args["page"], args["per_page"], customer_schema))


@bp.get("/customers/<int:customer_id>")
def get_customer(customer_id: int):
    return jsonify(customer_schema.dump(customers.get(customer_id)))


@bp.get("/customers/<int:customer_id>/timeline")
def customer_timeline(customer_id: int):
    args = query_args(PageSchema())
    return jsonify(page_of(customers.timeline(customer_id), args["page"], args["per_page"]))


@bp.post("/customers/<int:customer_id>/merge")
def merge_customer(customer_id: int):
    data = json_body(CustomerMergeSchema())
    survivor = privacy.merge(customer_id, data["other_id"], current_agent())
    return jsonify(customer_schema.dump(survivor))


@bp.get("/customers/<int:customer_id>/export")
def export_customer(customer_id: int):
    return jsonify(privacy.export(customer_id, current_agent()))


@bp.delete("/customers/<int:customer_id>")
@requires("admin")
def erase_customer(customer_id: int):
    privacy.erase(customer_id, current_agent())
    return "", 204
