"""Socket.IO room names: who hears an event (API.md "Socket.IO")."""

from __future__ import annotations

from typing import Protocol

QUEUE = "queue"              # every connected agent
SUPERVISORS = "supervisors"  # supervisors and admins


class _Assignable(Protocol):
    id: int
    assignee_id: int | None


def agent(agent_id: int) -> str:
    return f"agent:{agent_id}"


def ticket(ticket_id: int) -> str:
    """Agents who have the ticket in focus."""
    return f"ticket:{ticket_id}"


def assignee(item: _Assignable) -> list[str]:
    """The assignee's room, if the ticket has one."""
    return [agent(item.assignee_id)] if item.assignee_id else []


def for_ticket(item: _Assignable) -> list[str]:
    """Who hears `ticket.created` / `ticket.updated`."""
    return for_ticket_assigned_to(item.assignee_id)


def for_ticket_assigned_to(assignee_id: int | None) -> list[str]:
    """`for_ticket` of a ticket known by its assignee's id only."""
    return [QUEUE, SUPERVISORS, *([agent(assignee_id)] if assignee_id else [])]


def for_message(item: _Assignable) -> list[str]:
    """Who hears `message.created` / `message.updated` on this ticket: the queue only
    while nobody has it."""
    return [ticket(item.id), SUPERVISORS, *(assignee(item) or [QUEUE])]
