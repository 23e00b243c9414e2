"""Voice calls: merge a call's out-of-order callbacks into one timeline item.

Callbacks arrive repeated and out of order. Status moves forward only (by the provider's
sequence number, else by status rank); every other fact (queue result, durations,
recording, transcript) is kept once known, and the outcome is recomputed from all of them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from helpdesk.connectors.base import CallEvent, IdentityRef, MessageEvent
from helpdesk.extensions import db
from helpdesk.models import Agent, Call, Channel, Customer, Delivery, Message, Ticket, WorkSession
from helpdesk.outbox import events
from helpdesk.services.ingest import batch_state, conversations, identity, inbound
from helpdesk.services.ingest.identity import InvalidIdentity
from helpdesk.services.metrics import facts as ticket_facts
from helpdesk.services.routing import queue_updates
from helpdesk.services.sla import clocks as sla

ANSWERED_QUEUE = ("bridged", "redirected-from-bridged")
ANSWERED_DIAL = ("completed", "answered")
FINAL_RANK = 3
SUBJECTS = {"answered": "Call with {who}", "missed": "Missed call from {who}",
            "voicemail": "Voicemail from {who}"}


def receive_call(channel: Channel, delivery: Delivery | None, event: CallEvent) -> bool:
    """Apply one callback to its call; True when it changed anything."""
    if event.kind in ("agent_leg", "child_leg"):
        # An agent's softphone dialling the queue, or a leg a <Dial> placed: not a
        # customer's call (the parent call is the one that is).
        return False
    call = _find_or_create(channel, event)
    before = _snapshot(call)
    _apply(call, event)
    call.outcome = outcome_of(call)
    call.talk_seconds = talk_seconds(call)
    changed = _snapshot(call) != before
    if changed:
        _attach_ticket(channel, call, event)
        _first_response(call)
        _credit_agent(call)
    return changed


def _first_response(call: Call) -> None:
    """An answered call is the ticket's first response (FRT, the first-response SLA)."""
    if call.outcome != "answered" or call.ticket_id is None:
        return
    ticket = db.session.get(Ticket, call.ticket_id)
    if ticket.first_response_at is None:
        answered = call.answered_at or call.started_at + timedelta(seconds=call.wait_seconds or 0)
        # (never before the ticket: a call that opened it answered it as it was made)
        sla.responded(ticket, max(answered, ticket.created_at))


def _taken_by(call: Call, event: CallEvent) -> None:
    """The dequeue callback names the agent whose softphone took the call."""
    if event.kind != "dequeue" or event.agent_id is None:
        return
    if db.session.get(Agent, event.agent_id) is not None:
        call.agent_id = event.agent_id
        call.answered_at = call.answered_at or event.at or datetime.now(UTC)


def _credit_agent(call: Call) -> None:
    """A finished answered call is a work session of the agent who took it (handle time)."""
    if not (call.agent_id and call.ticket_id and call.talk_seconds and call.answered_at):
        return
    exists = db.session.execute(select(WorkSession.id).where(
        WorkSession.agent_id == call.agent_id, WorkSession.ticket_id == call.ticket_id,
        WorkSession.source == "call", WorkSession.started_at == call.answered_at)).first()
    if exists is None:
        ended = call.answered_at + timedelta(seconds=call.talk_seconds)
        db.session.add(WorkSession(agent_id=call.agent_id, ticket_id=call.ticket_id,
                                   source="call", started_at=call.answered_at,
                                   last_seen_at=ended, ended_at=ended, end_reason="call"))
        ticket_facts.changed(call.ticket_id)  # handle time, if the ticket was solved already


def _find_or_create(channel: Channel, event: CallEvent) -> Call:
    query = select(Call).where(Call.channel_id == channel.id,
                               Call.external_id == event.external_id)
    call = db.session.execute(query.with_for_update()).scalar_one_or_none()
    if call is not None:
        return call
    customer = _caller(event.identities, event.sender_name)
    call = Call(channel_id=channel.id, customer_id=customer.id, external_id=event.external_id,
                direction=event.direction or "inbound", started_at=event.at or datetime.now(UTC))
    try:
        with db.session.begin_nested():
            db.session.add(call)
    except IntegrityError:  # another callback of the same call created it concurrently
        call = db.session.execute(query.with_for_update()).scalar_one()
    return call


def _caller(refs: list[IdentityRef], name: str | None) -> Customer:
    try:
        return identity.resolve_customer(refs, name)
    except InvalidIdentity:  # withheld number, SIP client: a customer without identities
        customer = Customer(name=(name or "Unknown caller")[:identity.MAX_NAME])
        db.session.add(customer)
        db.session.flush()
        return customer


def _snapshot(call: Call) -> tuple:
    return (call.status, call.sequence, call.status_rank, call.queue_result, call.dial_status,
            call.agent_id,
            call.reached_us, call.wait_seconds, call.call_duration, call.recording_url,
            call.transcript, call.outcome, call.talk_seconds)


def _apply(call: Call, event: CallEvent) -> None:
    if event.kind == "incoming":
        call.reached_us = True
    if event.direction:  # (a recording's callback, first to arrive, does not say)
        call.direction = event.direction
    _taken_by(call, event)
    newer = bool(event.status) and _is_newer(call, event)
    if newer:
        call.status = event.status
        call.sequence = event.sequence if event.sequence is not None else call.sequence
        call.status_rank = max(call.status_rank, event.rank if event.rank is not None else -1)
    # Only the final status callback carries the duration, and an action callback posted
    # after the hang-up may have said `completed` first (then this one is not newer).
    if event.call_duration is not None and (newer or call.call_duration is None):
        call.call_duration = event.call_duration
    if event.at is not None and event.at < call.started_at:
        call.started_at = event.at
    call.queue_result = event.queue_result or call.queue_result
    call.dial_status = event.dial_status or call.dial_status
    if event.queue_result:
        call.reached_us = True
    if event.wait_seconds is not None:
        call.wait_seconds = float(event.wait_seconds)
    if event.dial_call_duration is not None:
        call.talk_seconds = float(event.dial_call_duration)
    call.recording_url = event.recording_url or call.recording_url
    call.transcript = event.transcript or call.transcript
    if call.status_rank >= FINAL_RANK and call.ended_at is None:
        call.ended_at = event.at or datetime.now(UTC)


def _is_newer(call: Call, event: CallEvent) -> bool:
    if event.sequence is not None and call.sequence >= 0:
        return event.sequence > call.sequence
    return (event.rank if event.rank is not None else -1) > call.status_rank


def outcome_of(call: Call) -> str | None:
    """answered, voicemail, abandoned or missed (API.md "Voice"); None while undecided."""
    if call.direction == "outbound":
        # A call the account placed (another system on the same number; our TwiML places
        # none): the person called picked up or did not. Neither is a customer's missed or
        # abandoned call (it opened a "Missed call" ticket, or counted in the ACR's terms).
        if call.status_rank < FINAL_RANK:
            return None
        return "answered" if call.status == "completed" and call.call_duration else "missed"
    if call.queue_result in ANSWERED_QUEUE or call.dial_status in ANSWERED_DIAL:
        return "answered"
    if call.queue_result == "hangup":  # (a recording then is the account's, of the wait)
        return "abandoned"
    if call.recording_url or call.transcript:
        return "voicemail"
    if call.status_rank >= FINAL_RANK:
        ended_before_us = call.status in ("busy", "failed", "no-answer", "canceled")
        return "missed" if ended_before_us and not call.reached_us else "abandoned"
    return None


def talk_seconds(call: Call) -> float | None:
    if call.outcome != "answered":
        return None
    if call.dial_status in ANSWERED_DIAL and call.talk_seconds is not None \
            and call.queue_result not in ANSWERED_QUEUE:
        return call.talk_seconds  # DialCallDuration
    if call.call_duration is None:
        return None
    return max(call.call_duration - (call.wait_seconds or 0.0), 0.0)


def _attach_ticket(channel: Channel, call: Call, event: CallEvent) -> None:
    """Missed and voicemail calls open a ticket; answered ones join the open one (a call
    the account placed, only once answered)."""
    if (call.ticket_id is None and call.outcome in SUBJECTS
            and (call.direction == "inbound" or call.outcome == "answered")):
        customer = db.session.get(Customer, call.customer_id)
        ticket = None
        if call.outcome == "answered":
            # Which ticket the call joins is threading: one customer at a time, as messages.
            batch_state.lock_customers({customer.id})
            ticket = conversations.recent_ticket(customer, datetime.now(UTC))
            if ticket is not None:
                batch_state.lock_ticket(ticket)
            if ticket is not None and ticket.status not in ("new", "open", "pending"):
                ticket = None
        created = ticket is None
        if ticket is None:
            who = customer.name or _number_of(customer) or "an unknown caller"
            ticket = conversations.open_ticket(channel, customer, MessageEvent(
                external_id=call.external_id, identities=[],
                subject=SUBJECTS[call.outcome].format(who=who)))
        if ticket in db.session.new:
            # An ingest batch writes its new rows at its end (batch_state.unflushed), and a
            # call names its ticket by id alone: the ticket is written first, here.
            db.session.flush()
        call.ticket_id = ticket.id
        ticket.last_activity_at = datetime.now(UTC)
        batch = batch_state.current()
        if batch is not None:  # the customer's latest ticket now, for what follows in the batch
            batch.ticket_active(ticket)
        events.ticket_changed(ticket, created=created)
        queue_updates.queue_changed()
        inbound.route_after_commit(ticket)
        if created:
            inbound.contacted_again(call.customer_id)
    elif call.ticket_id is None and call.outcome == "abandoned" and call.customer_id:
        inbound.contacted_again(call.customer_id)  # no ticket, but a contact all the same
    if event.kind == "transcription" and call.transcript and call.ticket_id:
        _transcript_message(channel, call, event)


def _number_of(customer: Customer) -> str | None:
    """The caller's phone number, for a subject an agent can act on (not the CallSid)."""
    return next((i.value for i in customer.identities if i.kind == "phone"), None)


def _transcript_message(channel: Channel, call: Call, event: CallEvent) -> None:
    external_id = f"transcript:{event.transcription_sid or call.external_id}"
    if inbound.message_exists(channel.id, external_id):
        return
    ticket = db.session.get(Ticket, call.ticket_id)
    customer = db.session.get(Customer, call.customer_id)
    message = Message(ticket_id=ticket.id, channel_id=channel.id, direction="inbound",
                      author_type="customer", author_id=customer.id,
                      author_name=customer.name, external_id=external_id,
                      text=call.transcript, delivery_status="received", flags=["voicemail"])
    message.channel = channel
    db.session.add(message)
    events.message_created(message, ticket)

