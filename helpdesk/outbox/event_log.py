"""The recent agents' events, numbered, so a reconnecting client can catch up.

Redis keeps the last KEEP events; a client that is further behind is told to refetch.
Nothing here is the source of truth: losing it only means a refetch.
"""

from __future__ import annotations

import json
from typing import Any

from redis import Redis
from redis.client import Pipeline

from helpdesk.queues import redis_connection

SEQ = "helpdesk:events:seq"
LOG = "helpdesk:events:log"
KEEP = 5000


def number(client: Redis, events: list[tuple[str, dict[str, Any], list[str]]]) -> None:
    """Give each event (type, message, rooms) the next sequence number, as `message["seq"]`
    (one round trip for all of them)."""
    last = client.incrby(SEQ, len(events))
    for offset, (_kind, message, _rooms) in enumerate(events):
        message["seq"] = last - len(events) + 1 + offset


def keep(pipe: Pipeline, events: list[tuple[str, dict[str, Any], list[str]]]) -> None:
    """Queue on `pipe` the commands that keep these numbered events (and forget old ones)."""
    records = {json.dumps({"seq": message["seq"], "event": kind, "rooms": rooms,
                           "message": message}, default=str): message["seq"]
               for kind, message, rooms in events}
    pipe.zadd(LOG, records)
    pipe.zremrangebyrank(LOG, 0, -KEEP - 1)


def since(seq: int, rooms: set[str]) -> dict[str, Any]:
    """Events after `seq` addressed to any of `rooms`, or `{"refetch": true}` if too old."""
    client = redis_connection()
    current = int(client.get(SEQ) or 0)
    oldest = client.zrange(LOG, 0, 0, withscores=True)
    if seq > current or (oldest and seq < int(oldest[0][1]) - 1) or (not oldest and seq < current):
        return {"refetch": True, "seq": current}
    events = []
    for raw in client.zrangebyscore(LOG, f"({seq}", "+inf"):
        record = json.loads(raw)
        if rooms.intersection(record["rooms"]):
            events.append({"event": record["event"], "data": record["message"]})
    return {"refetch": False, "seq": current, "events": events}
