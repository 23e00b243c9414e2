"""The recent agents' events, numbered, so a reconnecting client can catch up.

Redis keeps the last KEEP events; a client that is further behind is told to refetch.
Nothing here is the source of truth: losing it only means a refetch.
"""

from __future__ import annotations

import json
from typing import Any

from helpdesk.queues import redis_connection

SEQ = "helpdesk:events:seq"
LOG = "helpdesk:events:log"
KEEP = 5000


def append(event_type: str, message: dict[str, Any], rooms: list[str]) -> int:
    """Number an event and keep it; returns its sequence number."""
    client = redis_connection()
    seq = client.incr(SEQ)
    record = json.dumps({"seq": seq, "event": event_type, "rooms": rooms,
                         "message": {**message, "seq": seq}}, default=str)
    pipe = client.pipeline(transaction=False)
    pipe.zadd(LOG, {record: seq})
    pipe.zremrangebyrank(LOG, 0, -KEEP - 1)
    pipe.execute()
    return seq


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
