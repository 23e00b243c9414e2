"""Satisfaction surveys (CSAT, CES, NPS) after a ticket is solved.

Planned at the solve, sent on the ticket's channel after a delay (a scheduled job), answered
through a link (email, chat, api) or by replying with a digit (messaging and social).
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import Select, exists, select, update
from sqlalchemy.orm import aliased

from helpdesk import jobs
from helpdesk.errors import Conflict, Invalid, NotFound
from helpdesk.extensions import db
from helpdesk.models import SURVEY_KINDS, Channel, Customer, Message, Survey, Ticket
from helpdesk.outbox import events
from helpdesk.schemas.resources import public_base_url
from helpdesk.services import settings
from helpdesk.services.metrics import rollup as metrics_rollup
from helpdesk.services.tickets import reply_rules
from helpdesk.transaction import after_commit, commit

LINK_KINDS = ("email", "chat", "api")
DIGIT_KINDS = ("sms", "whatsapp", "telegram", "messenger", "instagram", "x")
DIGIT_REPLY_WINDOW = timedelta(days=7)
# A customer counts as surveyed by these (a skipped or failed survey never reached them).
SURVEYED = ("scheduled", "sent", "answered")
QUESTIONS = {"csat": "How would you rate our help?",
             "ces": "How easy was it to get your issue resolved?",
             "nps": "How likely are you to recommend us to a friend or colleague?"}
DIGIT_REPLY = re.compile(r"\s*(\d{1,2})\s*[.!]?\s*")


def _now() -> datetime:
    return datetime.now(UTC)


def question(kind: str) -> str:
    return QUESTIONS[kind]


def schedule_for(ticket: Ticket) -> list[Survey]:
    """Plan a just-solved ticket's enabled surveys, unless its customer was surveyed lately."""
    options = settings.surveys()
    kinds = [kind for kind in SURVEY_KINDS if options.get(kind)]
    if not kinds or ticket.channel.kind not in LINK_KINDS + DIGIT_KINDS:
        return []
    _skip_waiting(ticket.id)  # planned at an earlier solve: this solve replaces them
    now = _now()
    if _surveyed_since(ticket.customer_id, now - timedelta(days=options["min_days_between"])):
        return []
    agent_id = ticket.assignee_id or _last_replier(ticket.id)
    planned = [Survey(ticket_id=ticket.id, customer_id=ticket.customer_id, agent_id=agent_id,
                      channel_id=ticket.channel_id, kind=kind, token=secrets.token_urlsafe(32),
                      status="scheduled", created_at=now) for kind in kinds]
    db.session.add_all(planned)
    db.session.flush()
    _send_after_commit(planned[0].id, now + timedelta(seconds=options["delay_seconds"]))
    return planned


def _surveyed_since(customer_id: int, since: datetime) -> bool:
    return db.session.execute(select(Survey.id).where(
        Survey.customer_id == customer_id, Survey.status.in_(SURVEYED),
        Survey.created_at >= since).limit(1)).first() is not None


def _last_replier(ticket_id: int) -> int | None:
    """The agent who last replied in public, for a ticket solved while unassigned."""
    return db.session.execute(select(Message.author_id).where(
        Message.ticket_id == ticket_id, Message.author_type == "agent",
        Message.internal.is_(False)).order_by(Message.created_at.desc(), Message.id.desc())
        .limit(1)).scalar_one_or_none()


def _send_after_commit(survey_id: int, at: datetime | None = None) -> None:
    base_url = public_base_url()  # the solving request's, for links when PUBLIC_URL is unset
    when = at if at is not None and at > _now() else None
    after_commit(lambda: jobs.SEND_SURVEY.enqueue(survey_id, base_url, at=when))


def sweep_due(grace_seconds: float, limit: int = 500) -> int:
    """Survey timers rebuilt from the database: a survey still `scheduled` past its send
    time (plus `grace_seconds`) lost its job (Redis restarted empty): enqueue it again.
    Sending claims the survey, so a timer that did survive still sends it once."""
    now = _now()
    cutoff = now - timedelta(seconds=settings.surveys()["delay_seconds"] + grace_seconds)
    # Not those waiting for the question before them (a digit channel asks one at a time):
    # their send waits for its answer, and taking them every pass would fill the pass and
    # starve the lost timers behind them.
    asked = aliased(Survey)
    ids = list(db.session.execute(select(Survey.id).where(
        Survey.status == "scheduled", Survey.created_at <= cutoff,
        ~exists().where(asked.ticket_id == Survey.ticket_id, asked.status == "sent",
                        asked.sent_at >= now - DIGIT_REPLY_WINDOW,
                        asked.channel_id.in_(select(Channel.id).where(
                            Channel.kind.in_(DIGIT_KINDS)))))
        .order_by(Survey.id).limit(limit)).scalars())
    db.session.rollback()
    if ids:
        jobs.SEND_SURVEY.enqueue_each([(survey_id,) for survey_id in ids])
    return len(ids)


def _skip_waiting(ticket_id: int) -> None:
    db.session.execute(update(Survey).where(
        Survey.ticket_id == ticket_id, Survey.status == "scheduled").values(status="skipped"),
        execution_options={"synchronize_session": False})


def send(survey_id: int, base_url: str = "") -> str | None:
    """Send a scheduled survey on its ticket's channel (idempotent; skipped once reopened)."""
    # A link channel gets the ticket's waiting surveys in one message; a digit channel gets
    # one question at a time, the next once the previous is answered.
    survey = db.session.get(Survey, survey_id)
    if survey is None or survey.status != "scheduled":
        db.session.rollback()
        return None
    ticket = db.session.get(Ticket, survey.ticket_id)
    if not _still_wanted(ticket):
        _skip_waiting(ticket.id)
        commit()
        return "skipped"
    digits = ticket.channel.kind in DIGIT_KINDS
    if digits and _awaiting_reply(ticket.customer_id, ticket_id=ticket.id) is not None:
        db.session.rollback()  # sent once the question before it is answered
        return None
    batch = [survey] if digits else _waiting(ticket.id)
    now = _now()
    if not _claim(batch, now):
        db.session.rollback()
        return None
    _queue_message(ticket, _survey_text(batch, base_url, digits), now)
    commit()
    return "sent"


def _still_wanted(ticket: Ticket) -> bool:
    customer = db.session.get(Customer, ticket.customer_id)
    return (ticket.status in ("solved", "closed") and ticket.channel.deleted_at is None
            and customer.erased_at is None and _within_reply_window(ticket))


def _within_reply_window(ticket: Ticket) -> bool:
    """WhatsApp, Messenger and Instagram take no free-form message 24 h after the
    customer's last: a survey then would only fail (it is skipped)."""
    if ticket.channel.kind not in reply_rules.WINDOW_KINDS:
        return True
    try:
        reply_rules.check_window(ticket, ticket.channel)
    except Conflict:
        return False
    return True


def follow_message(message: Message) -> None:
    """A survey message's delivery decides its surveys, in the caller's transaction: refused
    by the provider, failed at every attempt, bounced or reported undelivered, they are
    `failed` (never reached the customer: the next solve may ask again, and a digit the
    customer sends is no answer to them); sent again by an agent, `sent` once more."""
    if "survey" not in (message.flags or []):
        return
    if message.delivery_status == "failed":
        before, after = "sent", "failed"
    elif message.delivery_status == "queued":
        before, after = "failed", "sent"
    else:
        return
    db.session.execute(update(Survey).where(
        Survey.ticket_id == message.ticket_id, Survey.status == before,
        Survey.sent_at == message.created_at).values(status=after),  # (one `now`: `send`)
        execution_options={"synchronize_session": False})


def _waiting(ticket_id: int) -> list[Survey]:
    return list(db.session.execute(select(Survey).where(
        Survey.ticket_id == ticket_id, Survey.status == "scheduled")
        .order_by(Survey.id)).scalars())


def _claim(batch: list[Survey], now: datetime) -> bool:
    """Mark the batch sent unless a concurrent run did (True when this run owns it)."""
    ids = [survey.id for survey in batch]
    result = db.session.execute(update(Survey).where(
        Survey.id.in_(ids), Survey.status == "scheduled").values(status="sent", sent_at=now),
        execution_options={"synchronize_session": False})
    return result.rowcount == len(ids)


def _survey_text(batch: list[Survey], base_url: str, digits: bool) -> str:
    base = current_app.config.get("PUBLIC_URL") or base_url
    lines = []
    for survey in batch:
        low, high = SURVEY_KINDS[survey.kind]
        if digits:
            lines.append(f"{question(survey.kind)} Reply with a number from {low} to {high}")
        else:
            lines.append(f"{question(survey.kind)} Tell us here: {base}/surveys/{survey.token}")
    return "\n\n".join(lines)


def _queue_message(ticket: Ticket, text: str, now: datetime) -> Message:
    """The survey as a system message on the ticket, queued for its channel after commit."""
    message = Message(ticket_id=ticket.id, channel_id=ticket.channel_id, direction="outbound",
                      internal=False, author_type="system", text=text, flags=["survey"],
                      delivery_status="queued", created_at=now)
    message.channel = ticket.channel
    db.session.add(message)
    db.session.flush()
    events.message_created(message, ticket)
    message_id = message.id
    after_commit(lambda: jobs.SEND_MESSAGE.enqueue(message_id))
    return message


TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,64}")  # secrets.token_urlsafe


def by_token(token: str) -> Survey:
    survey = None
    if TOKEN_SHAPE.fullmatch(token):  # (anything else, NUL included, is no token of ours)
        survey = db.session.execute(
            select(Survey).where(Survey.token == token)).scalar_one_or_none()
    if survey is not None:  # an erased customer's: nothing of theirs is kept any more
        customer = db.session.get(Customer, survey.customer_id)
        if customer is None or customer.erased_at is not None:
            survey = None
    if survey is None:
        raise NotFound("survey")
    return survey


def answer(token: str, score: int, comment: str | None, via: str = "web") -> Survey:
    """The customer's answer through the link: 400 out of range, 409 when not open."""
    survey = by_token(token)
    low, high = SURVEY_KINDS[survey.kind]
    if not low <= score <= high:
        raise Invalid(f"score must be between {low} and {high}",
                      {"score": [f"between {low} and {high}"]})
    if survey.status != "sent" or not _record(survey, score, comment or None, via):
        db.session.rollback()
        raise _not_open(db.session.get(Survey, survey.id))
    commit()
    return survey


def _not_open(survey: Survey) -> Conflict:
    if survey.status == "answered":
        return Conflict("this survey was answered already", "already_answered")
    return Conflict("this survey is not open for answers", "survey_closed")


def _record(survey: Survey, score: int, comment: str | None, via: str) -> bool:
    """Store the answer once: False when another answer got there first."""
    with metrics_rollup.tracking(Survey, [survey.id]):  # a bulk UPDATE: no flush sees it
        result = db.session.execute(update(Survey).where(
            Survey.id == survey.id, Survey.status == "sent").values(
            status="answered", score=score, comment=comment, answered_via=via[:20],
            answered_at=_now()), execution_options={"synchronize_session": False})
    db.session.expire(survey)
    return result.rowcount == 1


def answer_from_message(customer: Customer, text: str | None, via: str) -> Survey | None:
    """Record a bare-number reply to the customer's open digit survey; None if it is not one."""
    match = DIGIT_REPLY.fullmatch(text or "")
    if match is None or via not in DIGIT_KINDS:
        return None
    survey = _awaiting_reply(customer.id)
    if survey is None or _talking_elsewhere(customer, survey):
        return None
    low, high = SURVEY_KINDS[survey.kind]
    score = int(match.group(1))
    if not low <= score <= high or not _record(survey, score, None, via):
        return None
    following = _waiting(survey.ticket_id)
    if following:
        _send_after_commit(following[0].id)
    return survey


def _talking_elsewhere(customer: Customer, survey: Survey) -> bool:
    """Their conversation moved on: the ticket their next message would join (threading's
    own choice) is another open one, active since the survey went out. A bare number is
    then as likely an answer there (to an agent's question) as a rating, and joins it."""
    from helpdesk.services.ingest import conversations  # (ingest imports this module)

    target = conversations.recent_ticket(customer, _now(), written=True)
    return (target is not None and target.id != survey.ticket_id
            and target.status in ("new", "open", "pending")
            and target.last_activity_at > survey.sent_at)


def _awaiting_reply(customer_id: int, ticket_id: int | None = None) -> Survey | None:
    """The customer's latest digit-prompt survey sent within the reply window."""
    query = (select(Survey).join(Channel, Channel.id == Survey.channel_id).where(
        Survey.customer_id == customer_id, Survey.status == "sent",
        Survey.sent_at >= _now() - DIGIT_REPLY_WINDOW, Channel.kind.in_(DIGIT_KINDS)))
    if ticket_id is not None:
        query = query.where(Survey.ticket_id == ticket_id)
    return db.session.execute(
        query.order_by(Survey.sent_at.desc(), Survey.id.desc()).limit(1)).scalar_one_or_none()


def search(filters: dict[str, Any]) -> Select:
    """The supervisors' survey list for API filters, newest first."""
    query = select(Survey)
    for name, column in (("ticket", Survey.ticket_id), ("agent", Survey.agent_id),
                         ("customer", Survey.customer_id), ("kind", Survey.kind),
                         ("status", Survey.status)):
        if filters.get(name) is not None:
            query = query.where(column == filters[name])
    return query.order_by(Survey.created_at.desc(), Survey.id.desc())
