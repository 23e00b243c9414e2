"""The metric roll-ups follow every change of what they sum, and percentiles read from the
histograms equal sorting every value (services/metrics/percentiles.py), on both databases."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, func, select

from helpdesk.extensions import db
from helpdesk.models import (
    Agent,
    Call,
    MetricHistogram,
    MetricRollup,
    Survey,
    Team,
    Ticket,
    TicketFact,
)
from helpdesk.services.metrics import rollup as metrics_rollup
from helpdesk.services.metrics import summary as metrics
from helpdesk.services.metrics.buckets import bucket_of
from helpdesk.services.metrics.compaction import CELLS
from helpdesk.services.metrics.histograms import FIGURES
from helpdesk.services.metrics.percentiles import distribution
from helpdesk.services.metrics.periods import Period
from helpdesk.services.outbound import surveys
from tests.support import factories
from tests.support.metrics import History, rollup_cells

START = datetime(2026, 1, 20, 7, 30, tzinfo=UTC)  # 75 days: four months, in part or whole
DAYS = 75
GROUPS = (None, "agent", "team", "channel", "day")


@pytest.fixture
def history(app):
    """Two teams (two agents and one), an agent in none, unassigned work; three channels."""
    channels = [factories.channel(app, "api", name=f"channel {n}").id for n in range(3)]
    agents = [factories.agent(app).id for _ in range(4)]
    with app.app_context():
        first, second = Team(name="First"), Team(name="Second")
        db.session.add_all([first, second])
        db.session.flush()
        for agent_id, team in zip(agents, (first, first, second), strict=False):
            db.session.get(Agent, agent_id).team_id = team.id
        made = History(random.Random(6), channels, [*agents, None], START, DAYS)
        tickets = made.tickets(300)
        made.calls_and_answers(120)
        db.session.commit()
        _change_things(made, tickets, agents)
    return channels, agents


def _change_things(made: History, tickets: list[Ticket], agents: list[int]) -> None:
    """Reassign, close unworked, reopen and solve again, rewrite and delete facts, end calls:
    each in its own commit, as the services would."""
    rng = made.rng
    for ticket in rng.sample(tickets, 30):
        ticket.assignee_id = rng.choice([*agents, None])
    db.session.commit()
    for ticket in [t for t in tickets if t.status == "open"][:5]:
        ticket.status = "closed"
    db.session.commit()
    facts = list(db.session.execute(select(TicketFact)).scalars())
    for fact in rng.sample(facts, 12):
        ticket = db.session.get(Ticket, fact.ticket_id)
        again = fact.solved_at + timedelta(days=rng.random() * 20)
        made.fact(ticket, 2, fact.solved_at, again, None)
    db.session.commit()
    for fact in rng.sample(facts, 15):
        fact.resolution_seconds = made.seconds(9000)
        fact.resolution_bucket = bucket_of(fact.resolution_seconds)
        fact.handle_seconds += 60.0
    db.session.commit()
    for fact in rng.sample(facts, 6):
        db.session.delete(fact)
    for call in db.session.execute(select(Call).limit(20)).scalars():
        call.outcome, call.agent_id = "abandoned", agents[0]
    db.session.commit()


def _rebuilt() -> dict:
    metrics_rollup.rebuild()
    return rollup_cells()


def _same(kept: dict, rebuilt: dict) -> None:
    assert kept.keys() == rebuilt.keys()
    for cell, values in rebuilt.items():
        for name, value in values.items():
            assert kept[cell][name] == pytest.approx(value, rel=1e-12, abs=1e-9), (cell, name)


def test_rollups_follow_every_change(app, history):
    with app.app_context():
        kept = rollup_cells()
        assert kept, "the history wrote roll-up rows"
        _same(kept, _rebuilt())


def test_a_survey_answer_written_in_bulk_is_followed(app, history):
    with app.app_context():
        survey = db.session.execute(select(Survey).limit(1)).scalar_one()
        survey.status, survey.score, survey.answered_at = "sent", None, None
        db.session.commit()
        surveys.answer(survey.token, 5, None)
        assert db.session.get(Survey, survey.id).score == 5
        _same(rollup_cells(), _rebuilt())


def test_a_claim_from_the_queue_is_followed(app, api, history):
    """On PostgreSQL a claim is one SQL statement that no flush sees."""
    taker = factories.agent(app)
    response = api.as_(taker).post("/api/v1/queue/next")
    assert response.status_code == 200, response.text
    with app.app_context():
        assert db.session.get(Ticket, response.json()["id"]).assignee_id == taker.id
        _same(rollup_cells(), _rebuilt())


def test_compaction_keeps_the_sums_in_one_row_per_cell(app, history):
    with app.app_context():
        rows = db.session.execute(select(func.count()).select_from(MetricRollup)).scalar()
        before = rollup_cells()  # compacts
        assert db.session.execute(select(func.count()).select_from(MetricRollup)).scalar() < rows
        assert db.session.execute(select(func.count()).where(
            MetricRollup.compacted.is_(False))).scalar() == 0
        for table in (MetricRollup, MetricHistogram):
            per_cell = select(func.count()).select_from(table).group_by(
                *(getattr(table, name) for name in CELLS[table]))
            assert max(db.session.execute(per_cell).scalars()) == 1
        assert metrics_rollup.compact() == 0  # nothing new to fold
        assert rollup_cells() == before


def _periods(rng: random.Random) -> list[Period]:
    end = START + timedelta(days=DAYS)
    fixed = [Period(START - timedelta(days=30), end + timedelta(days=30)),  # all of it
             Period(datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)),
             Period(datetime(2026, 2, 3, 12, tzinfo=UTC), datetime(2026, 2, 3, 18, tzinfo=UTC)),
             Period(datetime(2026, 1, 25, tzinfo=UTC), datetime(2026, 3, 30, 17, tzinfo=UTC))]
    spans = [Period(a, a + timedelta(days=rng.random() * rng.choice([3, 40, 90])))
             for a in (START + timedelta(days=rng.random() * DAYS - 10) for _ in range(6))]
    return fixed + spans


@pytest.mark.parametrize("group_by", GROUPS)
def test_histogram_percentiles_equal_sorting_every_value(app, history, group_by):
    """Counts and both percentiles exactly, means to rounding, over periods that read whole
    and partial days and months, all time less the rest, and live first responses."""
    with app.app_context():
        assert db.session.execute(select(func.count()).where(
            Ticket.status == "open", Ticket.first_response_at.is_not(None))).scalar()
        for period in _periods(random.Random(9)):
            for figure in FIGURES:
                read = distribution(figure, period, group_by)
                straight = distribution(figure, period, group_by, direct=True)
                assert read.keys() == straight.keys(), (period, figure.name)
                for key, (count, mean, fractions) in straight.items():
                    assert read[key][0] == count and read[key][2] == fractions, (period, key)
                    assert math.isclose(read[key][1], mean, rel_tol=1e-9, abs_tol=1e-9)
                db.session.rollback()


@pytest.mark.parametrize("group_by", GROUPS)
def test_no_values_either_way(app, group_by):
    period = Period(START, START + timedelta(days=DAYS))
    with app.app_context():
        for figure in FIGURES:
            assert distribution(figure, period, group_by) == {}
            assert distribution(figure, period, group_by, direct=True) == {}


def _flat(body, path: str = "") -> dict:
    """{"groups[3].frt_seconds.p50": value, ...}"""
    parts = body.items() if isinstance(body, dict) else enumerate(body) \
        if isinstance(body, list) else None
    if parts is None:
        return {path: body}
    return {k: v for name, part in parts for k, v in _flat(part, f"{path}/{name}").items()}


@pytest.fixture
def sorting_up_to(app, monkeypatch):
    """Sets METRICS_SORT_UP_TO for a test (monkeypatch puts it back)."""

    def set_to(limit: int) -> None:
        monkeypatch.setitem(app.config, "METRICS_SORT_UP_TO", limit)

    return set_to


@pytest.mark.parametrize("group_by", GROUPS)
def test_the_summary_is_the_same_either_way(app, history, sorting_up_to, group_by):
    start, end = START + timedelta(days=3, hours=5), START + timedelta(days=70)
    bodies = []
    with app.app_context():
        for limit in (0, 10**9):  # always the histograms; never
            sorting_up_to(limit)
            bodies.append(_flat(metrics.summary(start, end, group_by)))
            db.session.rollback()
    read, straight = bodies
    assert read.keys() == straight.keys()
    for name, value in straight.items():
        if isinstance(value, float) and name.endswith(("mean", "aht_seconds")):
            assert read[name] == pytest.approx(value, rel=1e-9), name
        else:
            assert read[name] == value, name


def test_lost_rollups_are_rebuilt(app, history):
    with app.app_context():
        kept = rollup_cells()
        for table in (MetricRollup, MetricHistogram):
            db.session.execute(delete(table))
        db.session.commit()
        assert metrics_rollup.rebuild() > 0
        _same(rollup_cells(), kept)


def test_many_live_first_responses_grouped_by_day_read_from_the_histograms(app, sorting_up_to):
    """Unsolved answered tickets are read live, one cell per (group, bucket): over 500 of
    them made SQLite refuse the statement ('too many terms in compound SELECT')."""
    from sqlalchemy import insert

    from helpdesk.models import Customer

    channel = factories.channel(app, "api")
    start = datetime(2026, 3, 1, tzinfo=UTC)
    rng = random.Random(5)
    with app.app_context():
        customer = db.session.execute(insert(Customer).returning(Customer.id),
                                      [{"name": "Ana"}]).scalar_one()
        rows = []
        for n in range(1800):
            created = start + timedelta(days=n % 30, seconds=n)
            rows.append({"status": "open", "priority": "normal", "customer_id": customer,
                         "channel_id": channel.id, "created_at": created,
                         "updated_at": created, "last_activity_at": created,
                         "first_response_at": created + timedelta(
                             seconds=round(2 ** rng.uniform(1, 20), 3))})
        db.session.execute(insert(Ticket), rows)
        db.session.commit()
        end = start + timedelta(days=30)
        expected = sorted((r["first_response_at"] - r["created_at"]).total_seconds()
                          for r in rows if r["first_response_at"] < end)  # FRT by its time
        bodies = []
        for limit in (-1, 10**9):  # from the histograms (no roll-ups: 0 tickets); sorted
            sorting_up_to(limit)
            bodies.append(metrics.summary(start, end, "day"))
            db.session.rollback()
    read, straight = (_flat(body) for body in bodies)
    assert read.keys() == straight.keys()
    for name, value in straight.items():
        assert read[name] == (pytest.approx(value, rel=1e-9) if name.endswith("mean") and value
                              else value), name
    read = bodies[0]
    middle = (len(expected) - 1) / 2
    assert read["totals"]["frt_seconds"]["p50"] == pytest.approx(
        (expected[math.floor(middle)] + expected[math.ceil(middle)]) / 2, rel=1e-12)
    assert len(read["groups"]) == 30
    from helpdesk.services.metrics.histograms import DAY_SHIFT

    cells = {(r["first_response_at"].date(), bucket_of(
        (r["first_response_at"] - r["created_at"]).total_seconds()) >> DAY_SHIFT)
        for r in rows if r["first_response_at"] < end}
    assert len(cells) > 500  # each a SELECT of its own on SQLite
