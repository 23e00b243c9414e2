"""The recent agents' events, numbered, so a reconnecting client can catch up.

Redis keeps the last KEEP events; a client that is further behind is told to refetch.
Nothing here is the source of truth: losing it only means a refetch (numbering goes on
upwards after Redis restarts empty: `first_number`).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Sequence
from typing import Any

from redis import Redis
from redis.commands.core import Script

from helpdesk.queues import PENDING_TTL, redis_connection

SEQ = "helpdesk:events:seq"
LOG = "helpdesk:events:log"
KEEP = 5000


# Numbering, keeping and publishing a batch of events in one round trip: the events are
# serialized (log records and pub/sub messages) with MARKER where their number goes, and the
# script takes the numbers (INCRBY), puts them in, keeps the records, forgets old ones,
# publishes the messages and sets the flags, atomically: no other emitter's events can get
# numbers between two of this batch, or be published between a number and its message (the
# numbers are published in order). MARKER is a random string per process, so no event's
# content can contain it (as a JSON string it is written between quotes; a quote inside
# content is escaped, so `"<marker>"` never occurs in content, whatever the text).
MARKER = "hdseq" + secrets.token_hex(16)  # letters and digits: no Lua pattern magic
QUOTED_MARKER = json.dumps(MARKER)
_EMIT = """
local marker, channel, keep = ARGV[1], ARGV[2], tonumber(ARGV[3])
local count, flags, ttl = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local last = redis.call('INCRBY', KEYS[1], count)
local floor = tonumber(ARGV[7]) + count
if last < floor then
    redis.call('SET', KEYS[1], string.format('%d', floor))
    last = floor
end
local at = 8
for n = 1, count do
    local seq = string.format('%d', last - count + n)
    local record = string.gsub(ARGV[at], marker, seq)
    redis.call('ZADD', KEYS[2], seq, record)
    at = at + 1
end
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -keep - 1)
local first = last - count + 1
for n = 1, count do
    local seq = string.format('%d', first + n - 1)
    local messages = tonumber(ARGV[at])
    for m = 1, messages do
        local message = string.gsub(ARGV[at + m], marker, seq)
        redis.call('PUBLISH', channel, message)
    end
    at = at + messages + 1
end
for k = 3, 2 + flags do redis.call('SET', KEYS[k], '1') end
local flagged = {}
for k = 3 + flags, #KEYS do
    flagged[#flagged + 1] = redis.call('SET', KEYS[k], '1', 'NX', 'EX', ttl) and 1 or 0
end
return flagged
"""
_script: Script | None = None


def record(kind: str, message: dict[str, Any], rooms: list[str]) -> str:
    """The log record of a numbered event (its number is `message["seq"]`)."""
    return json.dumps({"seq": message["seq"], "event": kind, "rooms": rooms,
                       "message": message}, default=str)


def emit_numbered(client: Redis, channel: str, events: list[tuple[str, dict[str, Any],
                  list[str], list[str]]], flags: tuple[str, ...] = (),
                  pending: Sequence[str] = ()) -> list[bool]:
    """Number, keep and publish these events (kind, message with `seq` = MARKER, rooms, the
    pub/sub messages that carry it), set `flags`, and set each of the `pending` keys unless
    it is set (`SET NX` with `queues.PENDING_TTL`), in one round trip (see MARKER); which
    `pending` keys this call set."""
    global _script
    if _script is None:  # the script's SHA; each call runs it on the caller's client
        _script = client.register_script(_EMIT)
    records = [record(kind, message, rooms) for kind, message, rooms, _ in events]
    published: list[Any] = []
    for _kind, _message, _rooms, messages in events:
        published.append(len(messages))
        published.extend(messages)
    flagged = _script([SEQ, LOG, *flags, *pending],
                      [QUOTED_MARKER, channel, KEEP, len(events), len(flags), PENDING_TTL,
                       first_number(), *records, *published], client=client)
    return [bool(answer) for answer in flagged]


def first_number() -> int:
    """The least number the next event may get: the time in microseconds. Numbers never go
    back, whatever Redis kept: a Redis restarted empty (or from an append-only file a second
    behind) gave out numbers from 0 (or again): the console dropped newer events as older
    ones, and a client whose last number the new count passed caught up with a gap it was
    not told about. A thousand events a millisecond, sustained, would be needed to outrun
    the clock; below 2**53, so exact in JavaScript (and Lua) until the year 2255."""
    return int(time.time() * 1_000_000)


def since(seq: int, rooms: set[str]) -> dict[str, Any]:
    """`events.since`: the envelopes (as they were sent, each with its `seq`) of the events
    after `seq` addressed to any of `rooms`, oldest first; `refetch` true, and no events,
    when `seq` is older than what is kept (or beyond the last number). `seq` is the last
    number given out, so a client can start counting from there."""
    client = redis_connection()
    current = int(client.get(SEQ) or 0)
    oldest = client.zrange(LOG, 0, 0, withscores=True)
    if seq > current or (oldest and seq < int(oldest[0][1]) - 1) or (not oldest and seq < current):
        return {"refetch": True, "seq": current, "events": []}
    events = []
    for raw in client.zrangebyscore(LOG, f"({seq}", "+inf"):
        record = json.loads(raw)
        if rooms.intersection(record["rooms"]):
            events.append(record["message"])
    return {"refetch": False, "seq": current, "events": events}


def forget() -> None:
    """Drop the kept events (they carry messages' texts and customers' identities): an
    erasure calls it after its commit. Clients further behind than now refetch."""
    redis_connection().delete(LOG)
