"""Tickets: reading, changing, replying, escalating (one commit per use case)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import current_app
from sqlalchemy import Select, and_, func, or_, select

from helpdesk import jobs
from helpdesk.errors import Forbidden, NotFound, Unprocessable
from helpdesk.extensions import db
from helpdesk.models import QUEUED_STATUSES, Agent, Message, Ticket
from helpdesk.outbox import events
from helpdesk.schemas.resources import SURVEY_PATH
from helpdesk.services import settings
from helpdesk.services.metrics import facts as ticket_facts
from helpdesk.services.outbound import surveys
from helpdesk.services.routing import corrections as urgency_corrections
from helpdesk.services.routing import queue_updates
from helpdesk.services.routing import scoring as routing
from helpdesk.services.sla import clocks as sla
from helpdesk.services.tickets import (
    contact_reasons,
    history,
    lifecycle,
    reply_rules,
    work_sessions,
)
from helpdesk.transaction import after_commit, commit


def get(ticket_id: int) -> Ticket:
    ticket = db.session.get(Ticket, ticket_id)
    if ticket is None:
        raise NotFound("ticket")
    return ticket


def get_for_change(ticket_id: int) -> Ticket:
    """The ticket, its row locked until the change commits (PostgreSQL): two changes of one
    ticket (a PATCH and a claim, an escalation, another PATCH) run one after the other, each
    deciding on what the other wrote, not both on what they read before either wrote. A
    claim skips a ticket held here (`FOR UPDATE SKIP LOCKED`) and takes the next one."""
    ticket = db.session.execute(
        select(Ticket).where(Ticket.id == ticket_id).with_for_update(of=Ticket)
        .execution_options(populate_existing=True)).unique().scalar_one_or_none()
    if ticket is None:
        raise NotFound("ticket")
    return ticket


def messages_query(ticket: Ticket) -> Select:
    """A ticket's messages, oldest first."""
    return (select(Message).where(Message.ticket_id == ticket.id)
            .order_by(Message.created_at, Message.id))


def messages_of(ticket: Ticket) -> list[Message]:
    return list(db.session.execute(messages_query(ticket)).scalars())


def search(filters: dict[str, Any], agent: Agent) -> Select:
    """The ticket list query for API filters (newest first)."""
    query = select(Ticket)
    if filters.get("status"):
        query = query.where(Ticket.status == filters["status"])
    if filters.get("priority"):
        query = query.where(Ticket.priority == filters["priority"])
    assignee = filters.get("assignee")
    if assignee == "me":
        query = query.where(Ticket.assignee_id == agent.id)
    elif assignee == "none":
        query = query.where(Ticket.assignee_id.is_(None))
    elif assignee:
        query = query.where(Ticket.assignee_id == int(assignee))
    if filters.get("channel"):
        query = query.where(Ticket.channel_id == filters["channel"])
    if filters.get("customer"):
        query = query.where(Ticket.customer_id == filters["customer"])
    if filters.get("q"):  # the words as written: `%`, `_` and a backslash are no wildcards
        words = filters["q"].lower()
        # (not a message holding a survey link, the customer's key, cut from what agents
        # see: the survey itself, or a customer's quote of it, could be guessed a character
        # at a time)
        query = query.where(or_(and_(~_holds_survey_link(Ticket.subject),
                                     func.lower(Ticket.subject).contains(words,
                                                                         autoescape=True)),
                                Ticket.id.in_(select(Message.ticket_id).where(
                                    ~_holds_survey_link(Message.text),
                                    func.lower(Message.text).contains(words,
                                                                      autoescape=True)))))
    return query.order_by(Ticket.created_at.desc(), Ticket.id.desc())


def _holds_survey_link(column):
    """A survey link, as written or percent-encoded (a mail client's link-checking wrapper)."""
    return or_(column.contains(SURVEY_PATH),
               func.lower(column).contains("%2fsurveys%2f", autoescape=True))


def set_status(ticket: Ticket, status: str, actor: Agent | None) -> None:
    if status == ticket.status:
        return
    now = datetime.now(UTC)
    if ticket.status == "closed":
        raise Unprocessable("a closed ticket cannot change status", "ticket_closed")
    if status == "new":
        raise Unprocessable("a ticket is new only until it is first opened", "not_new")
    if status != "closed" and not lifecycle.can_reopen(ticket, now):
        raise Unprocessable("this ticket was solved longer ago than the reopen window: it "
                            "can only be closed (the customer's next message opens a new "
                            "ticket linked to it)", "reopen_window_passed")
    previous = ticket.status
    for clock in (sla.CLOCKS if status in ("solved", "closed") else
                  ("resolution",) if status == "pending" else ()):
        sla.stopping(ticket, clock, now)  # a deadline passed whose timer has not fired yet
    ticket.status = status
    if status == "solved":
        ticket.solved_at = now
        # the threading window counts from here: a customer answering the solve within it
        # reopens this ticket (within the reopen window) instead of starting another
        ticket.last_activity_at = now
    elif status == "closed":
        ticket.closed_at = now
        ticket.solved_at = ticket.solved_at or now
    elif previous == "solved":
        solved_at, ticket.solved_at = ticket.solved_at, None
        history.record(ticket, "ticket.reopened", actor, at=now)
        sla.reopened(ticket, solved_at, now)
        let_go_unless_able(ticket, actor)
    if status == "pending":
        sla.pause(ticket, now)
    elif previous == "pending":
        sla.resume(ticket, now)
    sla.refresh(ticket)
    # (at the solve's own moment: a cycle's solve is read from this event once the ticket
    # is reopened, and from `solved_at` before; a few milliseconds apart could move it
    # across midnight or the end of a period)
    history.record(ticket, "status.changed", actor, at=now, **{"from": previous, "to": status})
    if status == "solved":
        surveys.schedule_for(ticket)
    if previous in QUEUED_STATUSES and status not in QUEUED_STATUSES and ticket.assignee_id:
        free_capacity_of(ticket.assignee_id)
    ticket_facts.changed(ticket)


def close_solved_past_window(limit: int = 500) -> int:
    """The sweeper's pass: close solved tickets whose reopen window has passed (each
    announced, its history saying so); how many. Tickets another transaction holds are left
    for the next pass."""
    query = lifecycle.closing_due(datetime.now(UTC), limit)
    if db.session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    ids = list(db.session.execute(query).scalars())
    if not ids:
        db.session.rollback()
        return 0
    for ticket in db.session.execute(select(Ticket).where(Ticket.id.in_(ids))
                                     .order_by(Ticket.id)).unique().scalars():
        set_status(ticket, "closed", None)
        events.ticket_changed(ticket)
    commit()
    return len(ids)


def free_capacity_of(agent_id: int) -> None:
    """An agent's load went down: in push mode, give them what waits (after commit)."""
    after_commit(lambda: jobs.FILL_AGENT.enqueue(agent_id))


def release_tickets_of(agent: Agent, actor: Agent | None) -> int:
    """An agent deactivated, or moved below some of their tickets' levels: those tickets
    not yet solved let go of them and are routed again (a pending one waits for its customer,
    unassigned), as when an escalation passes its assignee; how many. In the caller's
    transaction, their rows locked (`get_for_change`)."""
    query = (select(Ticket).where(Ticket.assignee_id == agent.id,
                                  Ticket.status.in_(("new", "open", "pending")))
             .order_by(Ticket.id).with_for_update(of=Ticket)
             .execution_options(populate_existing=True))
    if agent.active:
        query = query.where(Ticket.level > agent.level)
    tickets = list(db.session.execute(query).unique().scalars())
    now = datetime.now(UTC)
    for ticket in tickets:
        assign(ticket, None, actor)
        ticket.updated_at = now
        events.ticket_changed(ticket)
    if tickets:
        queue_updates.queue_changed()
    return len(tickets)


def assign(ticket: Ticket, agent_id: int | None, actor: Agent | None) -> None:
    if agent_id == ticket.assignee_id:
        return
    if agent_id is not None:
        assignee = db.session.get(Agent, agent_id)
        if assignee is None or not assignee.active:
            raise Unprocessable("no such active agent", "unknown_agent")
        if assignee.level < ticket.level:
            raise Unprocessable(f"agent level {assignee.level} is below ticket level "
                                f"{ticket.level}", "level_too_low")
        assignee.last_assigned_at = datetime.now(UTC)
    history.record(ticket, "assigned", actor, **{"from": ticket.assignee_id,
                                                 "to": agent_id})
    if ticket.assignee_id is not None:
        free_capacity_of(ticket.assignee_id)
    ticket.assignee_id = agent_id
    if agent_id is None:
        ticket_id = ticket.id
        after_commit(lambda: jobs.ROUTE_TICKET.enqueue(ticket_id))
    if agent_id is not None and ticket.status == "new":
        ticket.status = "open"


def let_go_unless_able(ticket: Ticket, actor: Agent | None) -> None:
    """A solved ticket coming back to work keeps its assignee only while they can still work
    it: one deactivated, or moved below its level, since the solve (`release_tickets_of` let
    go of their unsolved tickets only) lets it go to the queue; it sat assigned to nobody
    who could see it."""
    if ticket.assignee_id is None:
        return
    with db.session.no_autoflush:  # (an ingest batch writes its rows once, at its end)
        assignee = db.session.get(Agent, ticket.assignee_id)
    if assignee is None or not assignee.active or assignee.level < ticket.level:
        assign(ticket, None, actor)


def update(ticket_id: int, changes: dict[str, Any], actor: Agent) -> Ticket:
    """PATCH a ticket; assigning to someone else, or taking a ticket away from another
    agent, takes a supervisor."""
    ticket = get_for_change(ticket_id)
    if "assignee_id" in changes:
        target = changes["assignee_id"]
        if target not in (None, actor.id) and not actor.has_role("supervisor"):
            raise Forbidden("assigning tickets to others takes a supervisor")
        if (ticket.assignee_id not in (None, actor.id, target)
                and not actor.has_role("supervisor")):
            raise Forbidden("unassigning another agent's ticket takes a supervisor")
        assign(ticket, target, actor)
    if "status" in changes:
        set_status(ticket, changes["status"], actor)
    if "priority" in changes and (changes["priority"] != ticket.priority
                                  or not ticket.priority_manual):
        urgency_corrections.record(ticket, changes["priority"], actor,
                                   routing.urgency_config(current_app.config.get(
                                       "URGENCY_CONFIG")))
        history.record(ticket, "priority.changed", actor,
                       **{"from": ticket.priority, "to": changes["priority"],
                          "manual": True})
        ticket.set_priority(changes["priority"])
        ticket.priority_manual = True
        sla.apply_policy(ticket)
        ticket_facts.changed(ticket)  # its deadlines moved: SLA compliance with them
    if "tags" in changes:
        ticket.tags = sorted(set(changes["tags"]))
    if "contact_reason" in changes:
        contact_reasons.check(changes["contact_reason"], settings.get("contact_reasons"))
        ticket.contact_reason = changes["contact_reason"]
        ticket_facts.changed(ticket)
    ticket.updated_at = datetime.now(UTC)
    work_sessions.worked_on(actor.id, ticket.id)
    events.ticket_changed(ticket)
    queue_updates.queue_changed()
    commit()
    return ticket


def add_message(ticket_id: int, text: str, internal: bool, actor: Agent,
                status: str | None = None) -> Message:
    """An agent's internal note, or a public reply queued for its channel."""
    ticket = get_for_change(ticket_id)
    reply_rules.check_reply(ticket, text, internal)
    now = datetime.now(UTC)
    message = Message(ticket_id=ticket.id, channel_id=ticket.channel_id, direction="outbound",
                      internal=internal, author_type="agent", author_id=actor.id,
                      author_name=actor.name, text=text,
                      delivery_status="skipped" if internal else "queued", created_at=now)
    message.channel = ticket.channel
    db.session.add(message)
    if not internal:
        if ticket.assignee_id is None and actor.level >= ticket.level:
            # (below the ticket's level the reply still goes out: any agent may work any
            # ticket; the ticket stays in the queue for an agent of its level)
            assign(ticket, actor.id, actor)
        if ticket.first_response_at is None:
            sla.responded(ticket, now)
        if ticket.status in ("solved", "closed"):  # answered after its solve: its FRT, FCR
            ticket_facts.changed(ticket)
        if ticket.status == "new":
            ticket.status = "open"
        ticket.last_activity_at = now
    if status:
        set_status(ticket, status, actor)
    ticket.updated_at = now
    db.session.flush()
    history.record(ticket, "note.added" if internal else "reply.added", actor,
                   message_id=message.id)
    work_sessions.worked_on(actor.id, ticket.id)
    events.message_created(message, ticket)
    events.ticket_changed(ticket)
    queue_updates.queue_changed()
    if not internal:
        message_id = message.id
        after_commit(lambda: jobs.SEND_MESSAGE.enqueue(message_id))
    commit()
    return message


def resend(ticket_id: int, message_id: int, actor: Agent) -> Message:
    """Send a public reply that ended `failed` once more (its retries spent, or refused for
    good by the provider): queued again, with a fresh schedule of attempts."""
    ticket = get_for_change(ticket_id)
    message = db.session.execute(select(Message).where(
        Message.id == message_id, Message.ticket_id == ticket.id).with_for_update(
        of=Message)).scalar_one_or_none()
    if message is None:
        raise NotFound("message")
    if message.direction != "outbound" or message.internal:
        raise Unprocessable("only a public reply can be sent again", "not_a_reply")
    if message.delivery_status != "failed":
        raise Unprocessable(f"the reply is {message.delivery_status}, not failed",
                            "not_failed")
    reply_rules.check_reply(ticket, message.text, internal=False)
    # A new send: the provider's id of the failed one goes, so a late status callback for
    # that send (its `sent` or `delivered`) cannot pass for this one's.
    message.delivery_status, message.delivery_error = "queued", None
    message.external_id = None
    surveys.follow_message(message)
    history.record(ticket, "reply.resent", actor, message_id=message.id)
    work_sessions.worked_on(actor.id, ticket.id)
    events.message_created(message, ticket, updated=True)
    after_commit(lambda: jobs.SEND_MESSAGE.enqueue(message_id))
    commit()
    return message


def escalate(ticket_id: int, level: int, reason: str, actor: Agent) -> Ticket:
    """Raise the ticket's level; an assignee below it lets go and the ticket is re-routed."""
    ticket = get_for_change(ticket_id)
    if level <= ticket.level:
        raise Unprocessable(f"the ticket is already at level {ticket.level}", "not_higher")
    if ticket.status in ("solved", "closed"):
        raise Unprocessable(f"a {ticket.status} ticket cannot be escalated", "ticket_done")
    history.record(ticket, "escalated", actor, note=reason,
                   **{"from": ticket.level, "to": level, "reason": reason})
    ticket.level = level
    ticket.max_level = max(ticket.max_level, level)
    if ticket.assignee_id is not None:
        assignee = db.session.get(Agent, ticket.assignee_id)
        if assignee is None or assignee.level < level:
            history.record(ticket, "assigned", actor,
                           **{"from": ticket.assignee_id, "to": None, "why": "below_level"})
            free_capacity_of(ticket.assignee_id)
            ticket.assignee_id = None
    ticket.updated_at = datetime.now(UTC)
    work_sessions.worked_on(actor.id, ticket.id)
    events.ticket_changed(ticket)
    queue_updates.queue_changed()
    ticket_id = ticket.id
    after_commit(lambda: jobs.ROUTE_TICKET.enqueue(ticket_id))
    commit()
    return ticket
