"""Metric test data and checks: a random but seeded history written through the ORM (so the
roll-ups follow it as they would in use), and the roll-ups' sums per cell."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from sqlalchemy import select

from helpdesk.extensions import db
from helpdesk.models import (
    Call,
    Customer,
    MetricHistogram,
    MetricRollup,
    Survey,
    Ticket,
    TicketFact,
)
from helpdesk.services.metrics.buckets import BOUNDS, bucket_of
from helpdesk.services.metrics.compaction import CELLS

# Values a bucket edge, or equal to another, or odd (zero, negative) must not trip.
SPECIAL_SECONDS = [0.0, 1.0, BOUNDS[9], BOUNDS[57], 600.0, 600.0, 3600.0, -5.0]


def rollup_cells() -> dict:
    """The roll-ups' sums per cell, however their rows are split (compacts them first)."""
    from helpdesk.services.metrics import rollup as metrics_rollup

    metrics_rollup.compact()
    cells = {}
    for table in (MetricRollup, MetricHistogram):
        for row in db.session.execute(select(table)).scalars():
            values = {c.name: getattr(row, c.name) for c in table.__table__.columns
                      if c.name not in ("id", "compacted")}
            cells[table.__tablename__, *(values.pop(k) for k in CELLS[table])] = values
    db.session.commit()
    return cells


class History:
    """Tickets over `days` days from `start` (most solved, some twice), calls and answers."""

    def __init__(self, rng: random.Random, channels: list[int], agents: list[int | None],
                 start: datetime, days: int):
        self.rng, self.channels, self.agents = rng, channels, agents
        self.start, self.days = start, days
        self.customer = Customer(name="Someone")
        db.session.add(self.customer)
        db.session.flush()

    def moment(self) -> datetime:
        return self.start + timedelta(seconds=self.rng.random() * self.days * 86400)

    def seconds(self, mean: float) -> float:
        if self.rng.random() < 0.05:
            return self.rng.choice(SPECIAL_SECONDS)
        value = self.rng.expovariate(1 / mean)
        return float(round(value)) if self.rng.random() < 0.2 else value  # ties, too

    def tickets(self, count: int) -> list[Ticket]:
        made = []
        for _ in range(count):
            created = self.moment()
            ticket = Ticket(subject="help", customer_id=self.customer.id,
                            channel_id=self.rng.choice(self.channels), created_at=created,
                            assignee_id=self.rng.choice(self.agents), status="open")
            db.session.add(ticket)
            made.append(ticket)
        db.session.flush()
        for ticket in made:
            self._settle(ticket)
        return made

    def _settle(self, ticket: Ticket) -> None:
        roll = self.rng.random()
        if roll < 0.1:  # waiting, unanswered; or closed unworked (counts nowhere)
            ticket.status = self.rng.choice(["new", "closed"])
            return
        frt = self.seconds(1800)
        ticket.first_response_at = ticket.created_at + timedelta(seconds=abs(frt))
        if roll < 0.25:  # answered, still open: a live first response
            return
        ticket.status, ticket.solved_at = "solved", ticket.first_response_at + timedelta(
            seconds=abs(self.seconds(20000)))
        self.fact(ticket, 1, ticket.created_at, ticket.solved_at, frt)

    def fact(self, ticket: Ticket, cycle: int, started: datetime, solved: datetime,
             frt: float | None) -> TicketFact:
        resolution = (solved - started).total_seconds()
        fact = TicketFact(
            ticket_id=ticket.id, cycle=cycle, started_at=started, solved_at=solved,
            channel_id=ticket.channel_id, assignee_id=ticket.assignee_id,
            first_response_at=ticket.first_response_at if frt is not None else None,
            first_response_seconds=frt, frt_bucket=bucket_of(frt), frt_counted=frt is not None,
            resolution_seconds=resolution, resolution_bucket=bucket_of(resolution),
            handle_seconds=self.rng.random() * 900, pending_seconds=self.rng.random() * 300,
            max_level=self.rng.choice([1, 1, 2]), public_replies=self.rng.randint(0, 3),
            reopened=self.rng.random() < 0.1, sla_policy_id=1,
            sla_met=self.rng.choice([True, False, None]))
        db.session.add(fact)
        return fact

    def calls_and_answers(self, count: int) -> None:
        for n in range(count):
            started = self.moment()
            db.session.add(Call(
                channel_id=self.rng.choice(self.channels), customer_id=self.customer.id,
                external_id=f"CA{n}", direction=self.rng.choice(["inbound"] * 4 + ["outbound"]),
                outcome=self.rng.choice(["answered", "abandoned", "voicemail", None]),
                wait_seconds=self.rng.random() * 40, started_at=started,
                agent_id=self.rng.choice(self.agents)))
        ticket_id = db.session.execute(select(Ticket.id).limit(1)).scalar()
        for n in range(count):
            kind = self.rng.choice(["csat", "ces", "nps"])
            score = {"csat": self.rng.randint(1, 5), "ces": self.rng.randint(1, 7),
                     "nps": self.rng.randint(0, 10)}[kind]
            db.session.add(Survey(
                ticket_id=ticket_id, customer_id=self.customer.id, kind=kind,
                agent_id=self.rng.choice(self.agents), channel_id=self.rng.choice(self.channels),
                token=f"tok{n}", status="answered", score=score, answered_at=self.moment()))
