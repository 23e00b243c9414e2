"""The one queue: unassigned new/open tickets by priority, SLA deadline, age."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Select, TextClause, or_, select, text

from helpdesk.errors import Conflict
from helpdesk.extensions import db
from helpdesk.models import KINDS, QUEUED_STATUSES, Agent, Channel, Ticket
from helpdesk.outbox import emit_many, events, rooms
from helpdesk.schemas.resources import TICKET_ROW_COLUMNS, ticket_json
from helpdesk.services import settings
from helpdesk.services.metrics import rollup as metrics_rollup
from helpdesk.services.routing import assignment, queue_updates, scoring
from helpdesk.transaction import commit

if TYPE_CHECKING:
    from helpdesk.services.auth import AgentColumns

# A claim that finds only tickets other transactions hold (a routing batch scores up to 500 at
# once, for up to about a second on a busy machine) waits for them this long, looking again
# every LOCKED_POLL_SECONDS, rather than telling the agent the queue is empty.
LOCKED_WAIT_SECONDS = 3.0
LOCKED_POLL_SECONDS = 0.05

QUEUE_ORDER = (Ticket.priority_rank.desc(), Ticket.sla_due_at.asc(),
               Ticket.created_at.asc(), Ticket.id.asc())


_QUEUED = (Ticket.assignee_id.is_(None), Ticket.status.in_(QUEUED_STATUSES))


def queued() -> Select:
    """Unassigned tickets waiting for an agent, in queue order."""
    return select(Ticket).where(*_QUEUED).order_by(*QUEUE_ORDER)


def eligible_for(query: Select, agent: Agent, kinds: list[str] | None = None) -> Select:
    """Only tickets this agent may take: level, languages and channels when set, and (when
    `kinds` is given) channel kinds that fit the agent's free capacity."""
    allowed = allowed_kinds(agent, kinds)
    return _eligible(query, agent.level, agent.languages or None,
                     sorted(allowed) if allowed is not None else None)


def allowed_kinds(agent: Agent, kinds: list[str] | None) -> set[str] | None:
    """The channel kinds the agent may take now; None when any will do."""
    allowed = set(agent.channels or []) or None
    # When every kind fits (capacity to spare: the usual case) the kinds filter is a no-op,
    # since a channel's kind is always one of KINDS; leaving it out saves a subquery.
    if kinds is not None and not set(KINDS) <= set(kinds):
        allowed = set(kinds) if allowed is None else allowed & set(kinds)
    return allowed


def _eligible(query: Select, level: int, languages: list[str] | None,
              kinds: list[str] | None) -> Select:
    """The eligibility filters (languages and kinds: None for no filter)."""
    query = query.where(Ticket.level <= level)
    if languages is not None:
        query = query.where(or_(Ticket.language.is_(None), Ticket.language.in_(languages)))
    if kinds is not None:
        query = query.where(Ticket.channel_id.in_(
            select(Channel.id).where(Channel.kind.in_(kinds))))
    return query


def fitting_kinds(free: float, weights: dict) -> list[str]:
    return [kind for kind in KINDS if assignment.fits(free, kind, weights)]


def _lock(query: Select) -> Select:
    if db.session.get_bind().dialect.name == "postgresql":
        return query.with_for_update(skip_locked=True, of=Ticket)
    return query


def claim_next_ticket(agent: Agent | AgentColumns) -> dict | None:
    """Assign the first eligible queued ticket to `agent` (its columns are enough); never the
    same one to two agents. The ticket's JSON (its REST resource, as `ticket.updated`
    announced it), None when nothing is eligible.

    409 when the agent has no room left for any kind of ticket.
    """
    if db.engine.dialect.name == "postgresql":  # (without opening the request's session)
        return _claim_in_one_statement(agent)
    weights = settings.get("capacity_weights")
    kinds = fitting_kinds(assignment.free_capacity(agent, weights), weights)
    if not kinds or (agent.channels and not set(agent.channels) & set(kinds)):
        db.session.rollback()
        raise Conflict("you are at capacity", "at_capacity")
    ticket = db.session.execute(eligible_for(queued(), agent, kinds).limit(1)).scalars().first()
    if ticket is None:  # SQLite: the write transaction (BEGIN IMMEDIATE) keeps others out
        db.session.rollback()
        return None
    assignment.give(ticket, db.session.get(Agent, agent.id), "queue.next")
    commit()
    return events.as_announced(ticket)


def _claim_in_one_statement(agent: Agent | AgentColumns) -> dict | None:
    """PostgreSQL: weigh the agent's free capacity, lock the first eligible ticket of a kind
    that fits that nobody else holds (SKIP LOCKED), assign it, log the assignment, note the
    agent's last assignment, move the metric roll-ups and read back what the ticket's JSON
    needs, in one statement, sent alone on a connection in autocommit mode: one round trip
    (no BEGIN, no COMMIT: a single statement is its own transaction, and every write of the
    claim is in it). What `claim_next_ticket` does on SQLite in four, without loading
    anything, as objects or otherwise, first or after."""
    languages = list(agent.languages or [])
    channels = sorted(agent.channels or [])
    shape = bool(languages), bool(channels)
    # Only what the statement's shape uses: psycopg converts every parameter it is given.
    params = {"agent_id": agent.id, "level": agent.level, "capacity": agent.capacity}
    if languages:
        params["languages"] = languages
    if channels:
        params["kinds"] = channels
    logged = json.dumps({"from": None, "to": agent.id, "via": "queue.next"})
    give_up_at = time.monotonic() + LOCKED_WAIT_SECONDS
    with _autocommit_connection() as claim:
        while True:
            row = _run_claim(claim, shape, {**params, "now": datetime.now(UTC),
                                            "data": logged})
            if row["id"] is not None:
                break
            if not row["has_room"]:
                raise Conflict("you are at capacity", "at_capacity")
            # SKIP LOCKED passed over what others hold: a colleague's claim (gone once it
            # commits) or a routing batch scoring the ticket (it stays queued). Only an empty
            # queue answers "nothing for you".
            held = _run(claim, _peek_driver_sql(*shape), params)[0]
            if not held or time.monotonic() >= give_up_at:
                return None
            time.sleep(LOCKED_POLL_SECONDS)
    ticket = ticket_json(
        row, (row["channel_id"], row["channel_kind"], row["channel_provider"],
              row["channel_name"]),
        (row["customer_id"], row["customer_name"], row["customer_tier"],
         row["customer_merged_into"], row["customer_created_at"]), row["identities"] or [])
    # Committed: announced as a flush of the change would have been (events.ticket_changed),
    # then the queue's count.
    emit_many([("ticket.updated", ticket, rooms.for_ticket_assigned_to(agent.id))],
              flags=(events.METRICS_DIRTY,))
    queue_updates.queue_changed_committed()
    return ticket


class _autocommit_connection:  # noqa: N801 (used as a context manager, like a function)
    """A cursor on a connection of the engine's pool in autocommit mode, for the claim's
    statements, run on the driver: SQLAlchemy's `Connection` around them (its checkout, the
    isolation level set and reset through execution options, its result handling) cost about
    a third of a claim's CPU in the web process (callgrind). The connection goes back to the
    pool as it came (autocommit off, no transaction open: the pool's reset is then a no-op,
    no ROLLBACK, which psycopg 3 would follow with DEALLOCATE ALL). A driver error is raised
    as SQLAlchemy raises it."""

    __slots__ = ("pooled", "cursor", "sql", "params")

    def __enter__(self):
        self.pooled = db.engine.raw_connection()
        try:
            driver = self.pooled.driver_connection
            driver.autocommit = True
            self.cursor = driver.cursor()
        except BaseException:
            self.pooled.close()
            raise
        return self

    def __exit__(self, _kind, exc, _traceback) -> None:
        pooled = self.pooled
        try:
            self.cursor.close()
            driver = pooled.driver_connection
            if not (driver.closed or driver.broken):  # (an autocommit error leaves it idle)
                driver.autocommit = False
            if exc is not None and isinstance(exc, db.engine.dialect.loaded_dbapi.Error):
                # SQLAlchemy's own handling of a driver error (private, but the only way to
                # get all of it): wrapped in DBAPIError, `handle_error` listeners run, and on
                # a lost connection the whole pool invalidated (its other connections died
                # with it), as for any other statement.
                Connection(db.engine, pooled)._handle_dbapi_exception(
                    exc, self.sql, self.params, None, None)
        finally:
            pooled.close()


def _run(claim: _autocommit_connection, sql: str, params: dict) -> tuple:
    claim.sql, claim.params = sql, params
    claim.cursor.execute(sql, params)
    return claim.cursor.fetchone()


def _run_claim(claim: _autocommit_connection, shape: tuple[bool, bool], params: dict) -> dict:
    """The claim statement's one row, by name, read by position on the driver's cursor:
    SQLAlchemy's execution of this statement (its 32 columns' result metadata, the
    parameters' handling) cost about a fifth of a claim's CPU in the web process
    (callgrind)."""
    return dict(zip(_RETURNED_NAMES, _run(claim, _claim_driver_sql(*shape), params),
                    strict=True))


_DEFAULT_WEIGHTS = json.dumps(settings.DEFAULT_WEIGHTS)

# The agent's room is weighed by `helpdesk_claim_room` (migration 0018), the same sum as
# `assignment.free_capacity`, after waiting for the agent's other claims and push
# assignments to commit (`assignment.AGENT_LOCK_SPACE`) and on a fresh snapshot: two claims
# of one agent at once take one ticket each only while both fit.
# The queue order and eligibility of `queued`/`eligible_for`, in the order of the partial
# index `ix_tickets_queue_order`, and the capacity check of `assignment` (a kind's weight:
# its own, else the `default` one, else 0.1; the setting, else the defaults; every channel's
# kind is one of KINDS). Plain SQL:
# one statement of data-modifying CTEs, written once per filter shape and sent with
# parameters only (the default weights and the kinds, constants, are written into it). The
# kinds that fit are an array computed once (an InitPlan), so the scan of the queue's index
# stays a scan in queue order that stops at the first match.
_CANDIDATE_SQL = """
WITH weights AS (
    SELECT COALESCE((SELECT value FROM settings WHERE key = 'capacity_weights'),
                    CAST({default_weights} AS JSON)) AS w),
weight AS (
    SELECT kind, COALESCE(CAST(w ->> kind AS FLOAT), CAST(w ->> 'default' AS FLOAT),
                          0.1) AS weight
    FROM unnest({all_kinds}) AS k(kind) CROSS JOIN weights),
free AS (
    SELECT helpdesk_claim_room(:agent_id, :capacity, (SELECT w FROM weights)) AS room),
fitting AS (
    SELECT kind FROM weight CROSS JOIN free WHERE weight <= room + 1e-9),
candidate AS (
    SELECT id FROM tickets
    WHERE assignee_id IS NULL AND status IN ('new', 'open') AND level <= :level{filters}
      AND channel_id = ANY(ARRAY(SELECT id FROM channels
                                 WHERE kind IN (SELECT kind FROM fitting){by_kind}))
    ORDER BY priority_rank DESC, sla_due_at ASC, created_at ASC, id ASC
    LIMIT 1{lock})"""
_CLAIM_SQL = _CANDIDATE_SQL + """,
claimed AS (
    UPDATE tickets SET assignee_id = :agent_id, status = 'open', updated_at = :now
    FROM candidate WHERE tickets.id = candidate.id RETURNING tickets.*),{rolled}
logged AS (
    INSERT INTO ticket_events (ticket_id, name, actor_type, data, created_at)
    SELECT id, 'assigned', 'system', CAST(:data AS JSON), :now FROM claimed),
noted AS (
    UPDATE agents SET last_assigned_at = :now
    WHERE id = :agent_id AND EXISTS (SELECT 1 FROM claimed))
SELECT {returned}
FROM (SELECT 1) AS one LEFT JOIN claimed ON true
     LEFT JOIN channels ch ON ch.id = claimed.channel_id
     LEFT JOIN customers cu ON cu.id = claimed.customer_id
"""
# What the claim returns, in order (name, SQL): the claimed ticket's columns (NULL when none
# was claimed), its channel's and customer's, the customer's identities, and whether any kind
# of ticket fits the agent's free capacity.
_RETURNED = (
    *((name, f"claimed.{name}") for name in (*TICKET_ROW_COLUMNS, "channel_id")),
    ("channel_kind", "ch.kind"), ("channel_provider", "ch.provider"), ("channel_name", "ch.name"),
    ("customer_name", "cu.name"), ("customer_tier", "cu.tier"),
    ("customer_merged_into", "cu.merged_into_id"), ("customer_created_at", "cu.created_at"),
    ("identities", "(SELECT json_agg(json_build_array(i.kind, i.value, i.verified) "
                   "ORDER BY i.id) FROM identities i WHERE i.customer_id = claimed.customer_id)"))
# Last: whether any kind of ticket the agent takes fits their free capacity (`_has_room`).
_RETURNED_NAMES = (*(name for name, _sql in _RETURNED), "has_room")


def _has_room(by_kind: bool) -> str:
    """An agent who takes some channels only has room when one of those fits (one kept to
    calls, 0.9 free, was told 204 "nothing for you" instead of 409 "at capacity")."""
    return "EXISTS (SELECT 1 FROM fitting" + (" WHERE kind = ANY(:kinds)" if by_kind else "") + ")"
# The same candidate, not locked: is there one that another transaction holds right now?
_PEEK_SQL = _CANDIDATE_SQL + "\nSELECT EXISTS (SELECT 1 FROM candidate)"
_BY_LANGUAGE = "\n      AND (language IS NULL OR language = ANY(:languages))"
_BY_KIND = " AND kind = ANY(:kinds)"
_BIND = re.compile(r":\w")


def _literal(value: str) -> str:
    # A constant of ours as an SQL string (no bind-like `:name` in it for text()).
    if _BIND.search(value):
        raise RuntimeError(f"unexpected constant for the claim statement: {value}")
    return "'" + value.replace("'", "''") + "'"


def _candidate_sql(template: str, by_language: bool, by_kind: bool, **more: str) -> str:
    return template.format(
        filters=_BY_LANGUAGE if by_language else "", by_kind=_BY_KIND if by_kind else "",
        default_weights=_literal(_DEFAULT_WEIGHTS),
        all_kinds="ARRAY[" + ", ".join(_literal(kind) for kind in KINDS) + "]", **more)


@cache
def _claim_statement(by_language: bool, by_kind: bool) -> TextClause:
    rolled = "".join(f"\nrolled_{n} AS (\n    {sql}),"
                     for n, sql in enumerate(metrics_rollup.claimed_sql("claimed")))
    returned = ",\n       ".join([*(f"{sql} AS {name}" for name, sql in _RETURNED),
                                    f"{_has_room(by_kind)} AS has_room"])
    return text(_candidate_sql(_CLAIM_SQL, by_language, by_kind, rolled=rolled,
                               lock=" FOR UPDATE SKIP LOCKED", returned=returned))


@cache
def _claim_driver_sql(by_language: bool, by_kind: bool) -> str:
    """The claim statement as the driver takes it (what SQLAlchemy would send), on one line:
    psycopg converts a statement's `%(name)s` placeholders once and caches the result only
    for statements of at most 4,096 characters; over that (the indented text was 4,170) it
    parses the whole text again on every execution (~16 µs a claim)."""
    return _one_line(str(_claim_statement(by_language, by_kind)
                         .compile(dialect=db.engine.dialect)))


def _one_line(sql: str) -> str:
    # Only line breaks and the indentation after them: no string literal of ours has one.
    return _LINE_BREAK.sub(" ", sql).strip()


_LINE_BREAK = re.compile(r"\s*\n\s*")


@cache
def _peek_statement(by_language: bool, by_kind: bool) -> TextClause:
    return text(_candidate_sql(_PEEK_SQL, by_language, by_kind, lock=""))


@cache
def _peek_driver_sql(by_language: bool, by_kind: bool) -> str:
    return _one_line(str(_peek_statement(by_language, by_kind)
                         .compile(dialect=db.engine.dialect)))


def sweep_push() -> int:
    """Push mode's safety net: what an agent's fill job would have given them, for a job
    lost with Redis (they came online or freed capacity while it was down). Every online
    agent is filled while the queue holds tickets; how many tickets were given."""
    if settings.get("routing_mode") != "push":
        return 0
    # Not those whose request is due: the routing batch hands them out by urgency to the
    # agent with most room (one the scorer failed on asks again later: it is the sweep's).
    waiting = db.session.execute(queued().with_only_columns(Ticket.id).where(or_(
        Ticket.route_requested_at.is_(None),
        Ticket.route_requested_at > scoring.due_until())).limit(1)).first()
    online = [] if waiting is None else list(db.session.execute(
        select(Agent.id).where(Agent.presence == "online", Agent.active.is_(True))
        .order_by(Agent.id)).scalars())
    db.session.rollback()
    return sum(fill(agent_id) for agent_id in online)


def fill(agent_id: int, batch: int = 50) -> int:
    """Push mode: give an agent who came online or freed capacity what fits from the queue."""
    if settings.get("routing_mode") != "push":
        return 0
    assignment.lock_agent(agent_id)  # (the agent's claim in flight commits first)
    agent = db.session.execute(select(Agent).where(Agent.id == agent_id)
                               .with_for_update()).scalar_one_or_none()
    if agent is None or agent.presence != "online" or not agent.active:
        db.session.rollback()
        return 0
    weights = settings.get("capacity_weights")
    free = agent.capacity - assignment.loads([agent.id], weights)[agent.id]
    given = 0
    candidates = db.session.execute(_lock(eligible_for(queued(), agent).limit(batch))).scalars()
    for ticket in candidates:
        kind = ticket.channel.kind
        if assignment.fits(free, kind, weights):
            assignment.give(ticket, agent, "push")
            free -= assignment.weight(kind, weights)
            given += 1
    commit()
    return given
