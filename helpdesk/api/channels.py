"""Channels (admin)."""

from __future__ import annotations

from flask import jsonify

from helpdesk.api.common import json_body, paginate, query_args
from helpdesk.api.security import current_agent, requires
from helpdesk.api.v1 import bp
from helpdesk.schemas.inputs import ChannelCreateSchema, ChannelUpdateSchema, PageSchema
from helpdesk.schemas.resources import channel_schema
from helpdesk.services import channels


@bp.post("/channels")
@requires("admin")
def create_channel():
    channel = channels.create(**json_body(ChannelCreateSchema()), actor=current_agent())
    return jsonify(channel_schema.dump(channel)), 201


@bp.get("/channels")
@requires("admin")
def list_channels():
    args = query_args(PageSchema())
    return jsonify(paginate(channels.active(), args["page"], args["per_page"], channel_schema))


@bp.get("/channels/<int:channel_id>")
@requires("admin")
def get_channel(channel_id: int):
    return jsonify(channel_schema.dump(channels.get(channel_id)))


@bp.patch("/channels/<int:channel_id>")
@requires("admin")
def update_channel(channel_id: int):
    changes = json_body(ChannelUpdateSchema())
    return jsonify(channel_schema.dump(channels.update(channel_id, changes, current_agent())))


@bp.delete("/channels/<int:channel_id>")
@requires("admin")
def delete_channel(channel_id: int):
    channels.delete(channel_id, current_agent())
    return "", 204
