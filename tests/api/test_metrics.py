"""Metrics: a scripted day through the public API and Socket.IO, checked against figures
worked out by hand; grouping, CSV, the Pareto of contact reasons, rebuild, live figures."""

from __future__ import annotations

import csv
import io
import itertools
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import delete, func, select

from helpdesk.extensions import db
from helpdesk.models import Call, Customer, MetricHistogram, MetricRollup, Survey, TicketFact
from tests.support import factories
from tests.support.live import api_message
from tests.support.metrics import rollup_cells

DAY = datetime(2026, 11, 2, tzinfo=UTC)
PERIOD = {"from": "2026-11-02", "to": "2026-11-03"}
TOL = 1e-3
_ids = itertools.count(1)


def at(hour: int, minute: int = 0) -> datetime:
    return DAY + timedelta(hours=hour, minutes=minute)


class Day:
    """Drives the scripted day: the clock, the customers' webhooks and the agents' clients."""

    def __init__(self, app, api, drain, sockets, clock, channel):
        self.app, self.api, self.drain, self.sockets = app, api, drain, sockets
        self.clock, self.channel = clock, channel

    def now(self, moment: datetime) -> None:
        self.clock.move_to(moment)

    def customer_writes(self, email: str, text: str) -> None:
        n = next(_ids)
        response = self.api.post_api_webhook(self.channel, api_message(
            event_id=f"evt-{n}", message_id=f"m-{n}", text=text, email=email))
        assert response.status_code == 200, response.text
        self.drain()

    def ticket_of(self, email: str, who) -> int:
        found = self.api.as_(who).get("/api/v1/customers",
                                      params={"identity": f"email:{email}"}).json()["items"]
        tickets = self.api.as_(who).get("/api/v1/tickets",
                                        params={"customer": found[0]["id"]}).json()["items"]
        return tickets[0]["id"]

    def reply(self, who, ticket_id: int, status: str | None = None) -> None:
        body = {"text": "Thanks, on it", **({"status": status} if status else {})}
        response = self.api.as_(who).post(f"/api/v1/tickets/{ticket_id}/messages", json=body)
        assert response.status_code == 201, response.text
        self.drain()

    def patch(self, who, ticket_id: int, **changes) -> dict:
        response = self.api.as_(who).patch(f"/api/v1/tickets/{ticket_id}", json=changes)
        assert response.status_code == 200, response.text
        return response.json()

    def focus(self, who, ticket_id: int, until: datetime):
        """Focus the ticket over Socket.IO now, blur it at `until`."""
        client = self.sockets(who.token)
        assert client.call("ticket.focus", {"ticket_id": ticket_id})["ok"]
        self.now(until)
        assert client.call("ticket.blur", {"ticket_id": ticket_id})["ok"]
        client.disconnect()

    def work(self, who, ticket_id: int, verb: str) -> None:
        response = self.api.as_(who).post(f"/api/v1/tickets/{ticket_id}/work/{verb}")
        assert response.status_code == 200, response.text


@pytest.fixture
def team_of_two(api, admin, app):
    """Agents 1 and 2 (level 1) in one team; agent 3 (level 2) in none."""
    team = api.as_(admin).post("/api/v1/teams", json={"name": "First line"})
    assert team.status_code == 201, team.text
    one, two = factories.agent(app, level=1), factories.agent(app, level=1)
    three = factories.agent(app, level=2)
    for member in (one, two):
        response = api.as_(admin).patch(f"/api/v1/agents/{member.id}",
                                        json={"team_id": team.json()["id"]})
        assert response.status_code == 200 and response.json()["team_id"] == team.json()["id"]
    return team.json(), one, two, three


def configure(api, admin) -> None:
    response = api.as_(admin).patch("/api/v1/settings", json={
        "contact_reasons": ["delivery", "billing", "technical"],
        "contact_reason_rules": {"delivery": ["parcel", "tracking"],
                                 "billing": ["charged", "refund"]}})
    assert response.status_code == 200, response.text
    for priority in ("low", "normal", "high", "urgent"):  # 30 min to answer, 55 to solve
        response = api.as_(admin).put(f"/api/v1/sla-policies/{priority}", json={
            "first_response_seconds": 1800, "resolution_seconds": 3300})
        assert response.status_code == 200, response.text


@pytest.fixture
def scripted_day(app, api, admin, drain, sockets, team_of_two):
    """Six tickets, five solves (one reopened), work sessions, an escalation; then calls
    and survey answers. Returns the team, the agents and the tickets."""
    team, one, two, three = team_of_two
    configure(api, admin)
    channel = factories.channel(app, "api")
    with time_machine.travel(at(9), tick=False) as clock:
        day = Day(app, api, drain, sockets, clock, channel)
        # T1: answered after 10 min, 10 min of focus, solved; reason suggested (parcel)
        day.customer_writes("t1@example.com", "Where is my parcel? The tracking says nothing")
        t1 = day.ticket_of("t1@example.com", one)
        day.focus(one, t1, until=at(9, 10))
        day.reply(one, t1)
        day.now(at(9, 20))
        day.patch(one, t1, status="solved")
        # T2: pending 40 min waiting on the customer; two replies; 65 min of REST work
        day.now(at(9, 30))
        day.customer_writes("t2@example.com", "I was charged twice, refund please")
        t2 = day.ticket_of("t2@example.com", two)
        day.now(at(9, 40))
        day.work(two, t2, "start")
        day.now(at(9, 50))
        day.reply(two, t2, status="pending")
        day.now(at(10, 30))
        day.customer_writes("t2@example.com", "Here is the receipt")
        day.now(at(10, 40))
        day.reply(two, t2)
        day.now(at(10, 45))
        day.work(two, t2, "stop")
        day.now(at(10, 50))
        day.patch(two, t2, status="solved", contact_reason="billing")
        # T3: escalated to level 2, solved by agent 3 after the 55-minute deadline
        day.now(at(11))
        day.customer_writes("t3@example.com", "My app crashes on login")
        t3 = day.ticket_of("t3@example.com", one)
        day.now(at(11, 5))
        client = day.sockets(one.token)
        assert client.call("ticket.focus", {"ticket_id": t3})["ok"]
        day.now(at(11, 10))
        day.reply(one, t3)
        day.now(at(11, 15))
        escalated = api.as_(one).post(f"/api/v1/tickets/{t3}/escalate",
                                      json={"level": 2, "reason": "needs a developer"})
        assert escalated.status_code == 200 and escalated.json()["level"] == 2
        day.now(at(11, 20))
        assert client.call("ticket.blur", {"ticket_id": t3})["ok"]
        client.disconnect()
        day.now(at(11, 30))
        day.work(three, t3, "start")
        day.now(at(11, 40))
        day.reply(three, t3)
        day.now(at(11, 50))
        day.work(three, t3, "stop")
        day.now(at(12))
        day.patch(three, t3, status="solved", contact_reason="technical")
        # T4: solved with the first reply, blurred after the solve, reopened by the customer
        day.now(at(12, 30))
        day.customer_writes("t4@example.com", "The parcel arrived broken")
        t4 = day.ticket_of("t4@example.com", two)
        day.now(at(12, 35))
        client = day.sockets(two.token)
        assert client.call("ticket.focus", {"ticket_id": t4})["ok"]
        day.now(at(12, 40))
        day.reply(two, t4, status="solved")
        day.now(at(12, 45))
        assert client.call("ticket.blur", {"ticket_id": t4})["ok"]
        client.disconnect()
        day.now(at(13))
        day.customer_writes("t4@example.com", "It is still broken, I want a new one")
        assert api.as_(two).get(f"/api/v1/tickets/{t4}").json()["status"] == "open"
        day.now(at(13, 10))
        day.reply(two, t4)
        day.now(at(13, 20))
        day.patch(two, t4, status="solved")
        # T5: answered after 30 min, still open; T6: waiting
        day.now(at(14))
        day.customer_writes("t5@example.com", "Can I change my address?")
        t5 = day.ticket_of("t5@example.com", one)
        day.now(at(14, 30))
        day.reply(one, t5)
        day.now(at(15))
        day.customer_writes("t6@example.com", "Hello?")
        t6 = day.ticket_of("t6@example.com", one)
    voice = add_calls(app, one)
    add_surveys(app, t1, one, channel)
    return {"team": team, "agents": (one, two, three), "tickets": (t1, t2, t3, t4, t5, t6),
            "channel": channel, "voice": voice}


def store_calls(app, agent, calls: list[dict], prefix: str = "CA"):
    """A voice channel and these calls (Call columns; `agent` takes the answered ones) of one
    caller; the channel."""
    voice = factories.channel(app, "twilio", "voice",
                              {"account_sid": "AC1", "phone_number": "+15550001111"},
                              {"auth_token": "tw"})
    with app.app_context():
        caller = Customer(name="Caller")
        db.session.add(caller)
        db.session.flush()
        for n, columns in enumerate(calls):
            columns = {"direction": "inbound", **columns}
            if columns["outcome"] == "answered":
                columns["agent_id"] = agent.id
            db.session.add(Call(channel_id=voice.id, customer_id=caller.id,
                                external_id=f"{prefix}{n}", **columns))
        db.session.commit()
    return voice


def add_calls(app, agent):
    """Inbound calls of the day: 3 answered, 2 abandoned, 1 short abandon (left out),
    1 voicemail; plus an outbound call and a call the next day (both outside the rate)."""
    calls = [("answered", 20, at(9)), ("answered", 15, at(10)), ("answered", 40, at(11)),
             ("abandoned", 30, at(12)), ("abandoned", 60, at(13)), ("abandoned", 2, at(14)),
             ("voicemail", 45, at(15)), ("abandoned", 90, at(24, 30))]
    return store_calls(app, agent, [
        *({"outcome": outcome, "wait_seconds": wait, "started_at": started}
          for outcome, wait, started in calls),
        {"direction": "outbound", "outcome": "abandoned", "wait_seconds": 30,
         "started_at": at(16)}])


def add_surveys(app, ticket_id, agent, channel) -> None:
    """CSAT 5, 4, 2, 5; CES 2, 5; NPS 10, 9, 9, 7, 3 answered that day; others outside."""
    answers = [("csat", s) for s in (5, 4, 2, 5)] + [("ces", 2), ("ces", 5)] + [
        ("nps", s) for s in (10, 9, 9, 7, 3)]
    with app.app_context():
        from helpdesk.models import Ticket

        customer_id = db.session.get(Ticket, ticket_id).customer_id
        rows = [(kind, score, at(16, n)) for n, (kind, score) in enumerate(answers)]
        rows += [("csat", None, None), ("csat", 1, at(25))]
        for n, (kind, score, answered) in enumerate(rows):
            db.session.add(Survey(ticket_id=ticket_id, customer_id=customer_id,
                                  agent_id=agent.id, channel_id=channel.id, kind=kind,
                                  token=f"tok-{n}", score=score, answered_at=answered,
                                  status="answered" if score is not None else "sent"))
        db.session.commit()


def summary(api, who, **params):
    response = api.as_(who).get("/api/v1/metrics/summary", params={**PERIOD, **params})
    assert response.status_code == 200, response.text
    return response.json()


# Worked out by hand from the script above.
SOLVED = {"T1": 600, "T2": 3900, "T3": 900 + 1200, "T4 first": 600, "T4 again": 0}
EXPECTED = {
    "tickets_created": 6, "tickets_solved": 5,
    "aht_seconds": sum(SOLVED.values()) / 5,                    # 1440
    "flr_rate": 4 / 5,                                          # T3 went to level 2
    "fcr_rate": 1 / 5,                                          # only T1
    # FRT 600 (T1), 1200 (T2), 600 (T3), 600 (T4), 1800 (T5, unsolved): sorted
    # 600 600 600 1200 1800 → p90 at rank 3.6 = 1200 + 0.6 × 600
    "frt_seconds": {"mean": 4800 / 5, "p50": 600.0, "p90": 1560.0},
    # resolution per cycle: 1200, 4800, 3600, 600, 1200 → 600 1200 1200 3600 4800
    "resolution_seconds": {"mean": 11400 / 5, "p50": 1200.0, "p90": 3600 + 0.6 * 1200},
    "pending_seconds": {"mean": 2400 / 5},
    "sla_compliance": 4 / 5,                                    # T3 solved after 55 min
    "abandoned_call_rate": 2 / 6,                               # short abandon left out
    "csat": {"score": 3 / 4, "mean": 4.0, "responses": 4},
    "ces": {"mean": 3.5, "responses": 2},
    "nps": {"score": 100 * (3 - 1) / 5, "responses": 5},
    "backlog": 2,                                               # T5 and T6
}


def assert_figures(actual: dict, expected: dict) -> None:
    for name, value in expected.items():
        if isinstance(value, dict):
            assert_figures(actual[name], value)
        elif isinstance(value, float):
            assert actual[name] == pytest.approx(value, abs=TOL), name
        else:
            assert actual[name] == value, name


def test_the_scripted_day_matches_the_hand_computed_figures(api, supervisor, scripted_day):
    body = summary(api, supervisor)
    assert body["from"] == "2026-11-02T00:00:00+00:00"
    assert body["to"] == "2026-11-03T00:00:00+00:00"
    assert body["group_by"] is None and body["groups"] == []
    assert_figures(body["totals"], EXPECTED)


def test_grouped_by_agent_team_channel_and_day(api, supervisor, scripted_day):
    one, two, three = scripted_day["agents"]
    by_agent = {g["key"]: g for g in summary(api, supervisor, group_by="agent")["groups"]}
    assert_figures(by_agent[two.id], {"tickets_solved": 3, "aht_seconds": 4500 / 3,
                                      "fcr_rate": 0.0, "pending_seconds": {"mean": 800.0}})
    assert_figures(by_agent[three.id], {"tickets_solved": 1, "flr_rate": 0.0,
                                        "sla_compliance": 0.0})
    assert_figures(by_agent[one.id], {"tickets_solved": 1, "fcr_rate": 1.0, "backlog": 1,
                                      "abandoned_call_rate": 0.0,
                                      "frt_seconds": {"mean": 1200.0}})
    assert by_agent[None]["backlog"] == 1 and by_agent[None]["label"] is None
    assert by_agent[one.id]["label"].startswith("Agent")
    team = scripted_day["team"]
    by_team = {g["key"]: g for g in summary(api, supervisor, group_by="team")["groups"]}
    assert by_team[team["id"]]["label"] == "First line"
    assert_figures(by_team[team["id"]], {"tickets_solved": 4, "aht_seconds": 5100 / 4})
    by_channel = {g["key"]: g for g in summary(api, supervisor, group_by="channel")["groups"]}
    assert_figures(by_channel[scripted_day["voice"].id], {"abandoned_call_rate": 2 / 6,
                                                          "tickets_created": 0})
    assert_figures(by_channel[scripted_day["channel"].id], {"tickets_created": 6,
                                                            "abandoned_call_rate": None})
    days = summary(api, supervisor, group_by="day", to="2026-11-04")["groups"]
    assert [g["key"] for g in days] == ["2026-11-02", "2026-11-03"]
    assert_figures(days[0], {**EXPECTED, "csat": {"responses": 4}})
    assert_figures(days[1], {"tickets_created": 0, "tickets_solved": 0, "backlog": 2,
                             "abandoned_call_rate": 1.0, "csat": {"score": 0.0, "mean": 1.0,
                                                                  "responses": 1}})


def test_contact_reasons_pareto(api, supervisor, admin, scripted_day):
    response = api.as_(supervisor).get("/api/v1/metrics/contact-reasons", params=PERIOD)
    assert response.status_code == 200
    assert response.json()["items"] == [
        {"reason": "delivery", "count": 3, "share": 0.6, "cumulative_share": 0.6,
         "vital_few": True},
        {"reason": "billing", "count": 1, "share": 0.2, "cumulative_share": 0.8,
         "vital_few": True},
        {"reason": "technical", "count": 1, "share": 0.2, "cumulative_share": 1.0,
         "vital_few": False}]
    t1 = scripted_day["tickets"][0]
    assert api.as_(admin).get(f"/api/v1/tickets/{t1}").json()["contact_reason"] is None
    bad = api.as_(admin).patch(f"/api/v1/tickets/{t1}", json={"contact_reason": "weather"})
    assert bad.status_code == 400 and "contact_reason" in bad.json()["error"]["fields"]
    text = api.as_(supervisor).get("/api/v1/metrics/contact-reasons.csv", params=PERIOD).text
    assert text.splitlines()[:2] == ["reason,count,share,cumulative_share,vital_few",
                                     "delivery,3,0.6,0.6,true"]


def test_summary_csv(api, supervisor, scripted_day):
    response = api.as_(supervisor).get("/api/v1/metrics/summary.csv", params=PERIOD)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 1 and rows[0]["key"] == "totals"
    assert float(rows[0]["frt_seconds_p90"]) == pytest.approx(1560.0, abs=TOL)
    assert rows[0]["csat_score"] == "0.75" and rows[0]["tickets_solved"] == "5"
    grouped = api.as_(supervisor).get("/api/v1/metrics/summary.csv",
                                      params={**PERIOD, "group_by": "channel"}).text
    rows = list(csv.DictReader(io.StringIO(grouped)))
    voice = next(r for r in rows if r["key"] == str(scripted_day["voice"].id))
    assert voice["aht_seconds"] == "" and voice["csat_responses"] == "0"
    assert list(rows[0])[:4] == ["key", "label", "tickets_created", "tickets_solved"]


def test_rebuild_reproduces_the_figures(app, api, supervisor, scripted_day):
    before = summary(api, supervisor, group_by="agent")
    reasons = api.as_(supervisor).get("/api/v1/metrics/contact-reasons", params=PERIOD).json()
    with app.app_context():
        rows_before, rollups_before = _fact_rows(), rollup_cells()
        for derived in (TicketFact, MetricRollup, MetricHistogram):  # lost, say
            db.session.execute(delete(derived))
        db.session.commit()
    assert summary(api, supervisor)["totals"]["tickets_solved"] == 0
    from helpdesk.cli import metrics_rebuild

    result = app.test_cli_runner().invoke(metrics_rebuild)
    assert result.exit_code == 0, result.output
    assert "rebuilt 5 ticket facts" in result.output
    with app.app_context():
        assert _fact_rows() == rows_before
        assert rollup_cells() == rollups_before
    assert summary(api, supervisor, group_by="agent") == before
    assert api.as_(supervisor).get("/api/v1/metrics/contact-reasons",
                                   params=PERIOD).json() == reasons


def test_a_solved_tickets_new_priority_moves_its_figures_as_a_rebuild_would(
        app, api, admin, supervisor, scripted_day):
    """Its deadlines follow the new priority's policy; its facts must follow them, or the
    live figures and `helpdesk metrics rebuild` disagree (DESIGN: reproducible)."""
    t1 = scripted_day["tickets"][0]  # answered after 10 min, solved after 20
    assert api.as_(admin).put("/api/v1/sla-policies/urgent", json={
        "first_response_seconds": 60, "resolution_seconds": 3300}).status_code == 200
    before = summary(api, supervisor)["totals"]["sla_compliance"]
    changed = api.as_(supervisor).patch(f"/api/v1/tickets/{t1}",
                                        json={"priority": "urgent"})
    assert changed.status_code == 200, changed.text
    live = summary(api, supervisor, group_by="agent")
    assert live["totals"]["sla_compliance"] == pytest.approx(before - 1 / 5)
    from helpdesk.cli import metrics_rebuild

    assert app.test_cli_runner().invoke(metrics_rebuild).exit_code == 0
    assert summary(api, supervisor, group_by="agent") == live


def _fact_rows() -> list[tuple]:
    columns = [c for c in TicketFact.__table__.columns if c.name != "id"]
    return [tuple(row) for row in db.session.execute(
        select(*columns).order_by(TicketFact.ticket_id, TicketFact.cycle))]


def test_empty_period_gives_nulls_and_zeros(api, supervisor):
    body = summary(api, supervisor, group_by="agent")
    assert body["groups"] == []
    assert body["totals"] == {
        "tickets_created": 0, "tickets_solved": 0, "aht_seconds": None, "flr_rate": None,
        "fcr_rate": None, "frt_seconds": {"mean": None, "p50": None, "p90": None},
        "resolution_seconds": {"mean": None, "p50": None, "p90": None},
        "pending_seconds": {"mean": None}, "sla_compliance": None,
        "abandoned_call_rate": None, "csat": {"score": None, "mean": None, "responses": 0},
        "ces": {"mean": None, "responses": 0}, "nps": {"score": None, "responses": 0},
        "backlog": 0}
    days = summary(api, supervisor, group_by="day", **{"from": "2026-11-02T12:00:00Z",
                                                       "to": "2026-11-04T06:00:00+02:00"})
    assert [d["key"] for d in days["groups"]] == ["2026-11-02", "2026-11-03", "2026-11-04"]
    assert days["to"] == "2026-11-04T04:00:00+00:00"
    reasons = api.as_(supervisor).get("/api/v1/metrics/contact-reasons", params=PERIOD)
    assert reasons.json() == {"items": []}


@pytest.mark.parametrize("params, field", [
    ({"from": "2999-01-01"}, "from"),  # alone, after today: until when?
    ({"to": "0001-01-03"}, "to"),  # alone: the 7 days before it do not exist
    ({"from": "yesterday", "to": "2026-11-03"}, "from"),
    ({"from": "2026-11-03T10:00:00Z", "to": "2026-11-03T10:00:00Z"}, "to"),
    ({"from": "2000-01-01"}, "to"),  # alone: until today, more than 10 years
    ({"from": "1000-01-01", "to": "3000-01-01"}, "to"),
    ({"from": "2026-01-01", "to": "9999-12-31"}, "to"),
    ({"from": "2017-01-01", "to": "2027-01-02"}, "to"),  # 10 years and a day (2 leap days)
    ({"from": "2024-01-01", "to": "2026-01-01", "group_by": "day"}, "group_by"),
    ({"from": "2026-11-03", "to": "2026-11-02T23:00:00Z"}, "to"),
    ({**PERIOD, "group_by": "week"}, "group_by"),
])
def test_bad_periods_are_400_with_fields(api, supervisor, params, field):
    for path in ("summary", "summary.csv", "contact-reasons"):
        if path == "contact-reasons" and field == "group_by":
            continue
        response = api.as_(supervisor).get(f"/api/v1/metrics/{path}", params=params)
        assert response.status_code == 400, (path, response.text)
        assert field in response.json()["error"]["fields"]


def test_a_period_given_by_one_end_takes_the_other_from_the_default(api, supervisor):
    """API.md: without both, the last 7 UTC days. With `from` alone the period runs to the
    end of today; with `to` alone it is the 7 days before it (they were a 400)."""
    from datetime import UTC, datetime, timedelta

    client = api.as_(supervisor)
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    since = client.get("/api/v1/metrics/summary", params={"from": "2026-11-02"})
    assert since.status_code == 200, since.text
    assert (since.json()["from"], since.json()["to"]) == (
        "2026-11-02T00:00:00+00:00", f"{tomorrow}T00:00:00+00:00")
    until = client.get("/api/v1/metrics/summary", params={"to": "2026-11-03T06:00:00Z"})
    assert until.status_code == 200, until.text
    assert (until.json()["from"], until.json()["to"]) == (
        "2026-10-27T06:00:00+00:00", "2026-11-03T06:00:00+00:00")
    reasons = client.get("/api/v1/metrics/contact-reasons", params={"to": "2026-11-03"})
    assert reasons.status_code == 200, reasons.text


def test_a_period_of_ten_years_by_the_calendar_is_allowed(api, supervisor):
    for start, end in (("2017-01-01", "2027-01-01"), ("2016-02-29", "2026-03-01")):
        response = api.as_(supervisor).get("/api/v1/metrics/summary",
                                            params={"from": start, "to": end})
        assert response.status_code == 200, response.text


def test_grouped_by_day_at_most_400_groups_whatever_the_hours(api, supervisor):
    """API.md: more than 400 day groups is a 400. 400 days from noon to noon touch 401 UTC
    days; from midnight to midnight, exactly 400."""
    client = api.as_(supervisor)
    whole = client.get("/api/v1/metrics/summary", params={
        "from": "2025-01-01", "to": "2026-02-05", "group_by": "day"})
    assert whole.status_code == 200 and len(whole.json()["groups"]) == 400
    noon = client.get("/api/v1/metrics/summary", params={
        "from": "2025-01-01T12:00:00Z", "to": "2026-02-05T12:00:00Z", "group_by": "day"})
    assert noon.status_code == 400, noon.text
    assert "400" in noon.json()["error"]["fields"]["group_by"][0]


def test_a_caller_who_hangs_up_before_the_queue_is_a_short_abandon_by_the_call_length(
        app, api, supervisor, agent):
    """DESIGN.md: short abandons under 5 s are excluded. A caller who hung up during the
    greeting has no queue time: the whole call was the wait."""
    calls = [("answered", 20, 60), ("abandoned", None, 3), ("abandoned", None, 30),
             ("abandoned", 2, 40)]
    store_calls(app, agent, [{"outcome": outcome, "wait_seconds": wait, "call_duration": length,
                              "started_at": at(10, n)}
                             for n, (outcome, wait, length) in enumerate(calls)])
    totals = api.as_(supervisor).get("/api/v1/metrics/summary", params=PERIOD).json()["totals"]
    # Counted: the answered call and the 30 s hang-up; left out: 3 s and 2 s of waiting.
    assert totals["abandoned_call_rate"] == pytest.approx(1 / 2)


def test_a_date_to_equal_to_from_is_that_whole_day(api, supervisor):
    body = api.as_(supervisor).get("/api/v1/metrics/summary", params={
        "from": "2026-11-03", "to": "2026-11-03", "group_by": "day"}).json()
    assert (body["from"], body["to"]) == ("2026-11-03T00:00:00+00:00",
                                          "2026-11-04T00:00:00+00:00")
    assert [group["key"] for group in body["groups"]] == ["2026-11-03"]


def test_without_a_period_the_last_seven_days_including_today(api, supervisor):
    today = datetime.now(UTC).date()
    body = api.as_(supervisor).get("/api/v1/metrics/summary",
                                   params={"group_by": "day"}).json()
    assert [group["key"] for group in body["groups"]] == [
        (today - timedelta(days=n)).isoformat() for n in range(6, -1, -1)]
    assert api.as_(supervisor).get("/api/v1/metrics/contact-reasons").status_code == 200


def test_metrics_take_a_supervisor(api, agent, admin):
    for path in ("summary", "summary.csv", "contact-reasons", "contact-reasons.csv"):
        assert api.get(f"/api/v1/metrics/{path}", params=PERIOD).status_code == 401
        assert api.as_(agent).get(f"/api/v1/metrics/{path}", params=PERIOD).status_code == 403
        assert api.as_(admin).get(f"/api/v1/metrics/{path}", params=PERIOD).status_code == 200
    assert api.as_(agent).post("/api/v1/teams", json={"name": "x"}).status_code == 403
    assert api.as_(admin).post("/api/v1/teams", json={"name": ""}).status_code == 400
    assert api.as_(admin).patch(f"/api/v1/agents/{agent.id}",
                                json={"team_id": 999999}).status_code == 422


def test_supervisors_get_live_figures_at_most_every_few_seconds(app, api, supervisor, agent,
                                                                drain, sockets):
    from helpdesk.queues import redis_connection
    from helpdesk.services.metrics import live as metrics_live

    def interval_passes() -> None:
        with app.app_context():
            redis_connection(app).delete(metrics_live.LOCK)

    channel = factories.channel(app, "api")
    watcher = sockets(supervisor.token)
    # A supervisor coming online is a change: the figures count agents online.
    assert metrics_live.publish_if_due(app)
    assert watcher.wait_for("metrics.updated")["data"]["agents_online"] == 1
    interval_passes()
    assert not metrics_live.publish_if_due(app)  # nothing changed since
    api.post_api_webhook(channel, api_message(text="Where is my parcel?"))
    drain()
    assert metrics_live.publish_if_due(app)
    figures = watcher.wait_for("metrics.updated", lambda e: e["data"]["queue"]["size"])["data"]
    assert figures["queue"]["size"] == 1 and figures["oldest_waiting"]["seconds"] >= 0
    assert figures["agents_online"] == 1 and figures["tickets_solved"] == 0
    assert figures["aht_seconds"] is None and figures["flr_rate"] is None
    ticket_id = api.as_(agent).get("/api/v1/tickets").json()["items"][0]["id"]
    api.as_(agent).patch(f"/api/v1/tickets/{ticket_id}", json={"status": "solved"})
    assert not metrics_live.publish_if_due(app)  # within the interval: held back
    interval_passes()
    with app.app_context():
        assert db.session.execute(select(func.count()).select_from(TicketFact)).scalar() == 1
    assert metrics_live.publish_if_due(app)
    solved = watcher.wait_for("metrics.updated",
                              lambda e: e["data"]["tickets_solved"] == 1)["data"]
    # Today's headline figures: every figure the summary gives for today (the supervisor
    # view's metric-* hooks among them), equal to what the API answers.
    today = datetime.now(UTC).date().isoformat()
    totals = api.as_(supervisor).get("/api/v1/metrics/summary", params={
        "from": today, "to": today}).json()["totals"]
    assert {key: solved[key] for key in totals} == totals
    assert totals["tickets_created"] == 1 and totals["backlog"] == 0
    interval_passes()
    sockets(agent.token)  # an agent comes online: nothing else changed
    assert metrics_live.publish_if_due(app)
    watcher.wait_for("metrics.updated", lambda e: e["data"]["agents_online"] == 2)


def test_every_role_reads_the_contact_reasons_a_ticket_may_be_given(api, admin, agent):
    assert api.as_(agent).get("/api/v1/contact-reasons").json()["items"] == []
    configure(api, admin)
    listed = api.as_(agent).get("/api/v1/contact-reasons")
    assert listed.status_code == 200
    assert listed.json() == {"items": ["delivery", "billing", "technical"], "page": 1,
                             "per_page": 200, "total": 3}
    assert api.get("/api/v1/contact-reasons").status_code == 401


def test_a_ticket_answered_after_its_solve_has_its_first_response_time(app, api, agent,
                                                                     supervisor, drain):
    """FRT counts by the first response, solved or not: a ticket solved unanswered and
    answered afterwards (still solved) has its FRT, live, after the sweeper closes it and
    after a rebuild."""
    from helpdesk.cli import metrics_rebuild
    from helpdesk.services.tickets import actions

    channel = factories.channel(app, "api")
    with time_machine.travel(at(9), tick=False) as clock:
        api.post_api_webhook(channel, api_message(text="Where is my parcel?"))
        drain()
        ticket_id = api.as_(agent).get("/api/v1/tickets").json()["items"][0]["id"]
        clock.move_to(at(10))
        assert api.as_(agent).patch(f"/api/v1/tickets/{ticket_id}",
                                    json={"status": "solved"}).status_code == 200
        clock.move_to(at(10, 5))
        assert api.as_(agent).post(f"/api/v1/tickets/{ticket_id}/messages",
                                   json={"text": "It is on its way"}).status_code == 201
        ticket = api.as_(agent).get(f"/api/v1/tickets/{ticket_id}").json()
        assert ticket["status"] == "solved"
        frt = {"mean": 3900.0, "p50": 3900.0, "p90": 3900.0}
        assert summary(api, supervisor)["totals"]["frt_seconds"] == frt
        clock.move_to(at(10) + timedelta(days=8))  # past the reopen window: closed
        with app.app_context():
            assert actions.close_solved_past_window() == 1
        assert summary(api, supervisor)["totals"]["frt_seconds"] == frt
        assert app.test_cli_runner().invoke(metrics_rebuild).exit_code == 0
        assert summary(api, supervisor)["totals"]["frt_seconds"] == frt


def test_a_second_reply_after_the_solve_takes_first_contact_resolution_back(
        app, api, agent, supervisor, drain):
    """FCR: at most one public agent reply. A second reply sent while the ticket stays
    solved (no reopen) was not counted: FCR held, live and after a rebuild."""
    from helpdesk.cli import metrics_rebuild

    channel = factories.channel(app, "api")
    with time_machine.travel(at(9), tick=False) as clock:
        api.post_api_webhook(channel, api_message(text="Where is my parcel?"))
        drain()
        ticket_id = api.as_(agent).get("/api/v1/tickets").json()["items"][0]["id"]
        path = f"/api/v1/tickets/{ticket_id}/messages"
        clock.move_to(at(9, 10))
        assert api.as_(agent).post(path, json={"text": "On its way", "status": "solved"}
                                   ).status_code == 201
        assert summary(api, supervisor)["totals"]["fcr_rate"] == 1.0
        clock.move_to(at(9, 30))
        assert api.as_(agent).post(path, json={"text": "Tracking: 123"}).status_code == 201
        assert api.as_(agent).get(f"/api/v1/tickets/{ticket_id}").json()["status"] == "solved"
        assert summary(api, supervisor)["totals"]["fcr_rate"] == 0.0
        assert app.test_cli_runner().invoke(metrics_rebuild).exit_code == 0
        assert summary(api, supervisor)["totals"]["fcr_rate"] == 0.0


def test_an_unsolved_tickets_first_response_time_is_exact_and_stays_so_once_solved(
        app, api, agent, supervisor, drain):
    """Live (unsolved) and from the facts (solved) the same number: SQLite's julianday()
    gave 59.9999964 for a minute and kept only milliseconds."""
    channel = factories.channel(app, "api")
    # (.9997 s: SQLite rounds a fraction to milliseconds as it parses, to the next second)
    with time_machine.travel(at(9, 2) + timedelta(seconds=11, microseconds=999_700),
                             tick=False) as clock:
        api.post_api_webhook(channel, api_message(text="Where is my parcel?"))
        drain()
        ticket_id = api.as_(agent).get("/api/v1/tickets").json()["items"][0]["id"]
        clock.move_to(at(13, 17) + timedelta(seconds=42, microseconds=123456))
        assert api.as_(agent).post(f"/api/v1/tickets/{ticket_id}/messages",
                                   json={"text": "It is on its way"}).status_code == 201
        exact = 15330.123756
        assert summary(api, supervisor)["totals"]["frt_seconds"] == {
            "mean": exact, "p50": exact, "p90": exact}
        assert api.as_(agent).patch(f"/api/v1/tickets/{ticket_id}",
                                    json={"status": "solved"}).status_code == 200
        assert summary(api, supervisor)["totals"]["frt_seconds"] == {
            "mean": exact, "p50": exact, "p90": exact}


def test_an_erased_customers_solve_keeps_its_suggested_contact_reason(app, api, admin,
                                                                      agent, supervisor, drain):
    """Erasure keeps the anonymous metric facts: a reason suggested from the customer's
    words stays with the solve once the words are erased, through a recompute (the sweeper
    closing the ticket) and a rebuild."""
    from helpdesk.cli import metrics_rebuild
    from helpdesk.services.tickets import actions

    assert api.as_(admin).patch("/api/v1/settings", json={
        "contact_reason_rules": {"billing": ["invoice"]}}).status_code == 200
    channel = factories.channel(app, "api")
    with time_machine.travel(at(9), tick=False) as clock:
        api.post_api_webhook(channel, api_message(text="My invoice is wrong"))
        drain()
        ticket = api.as_(agent).get("/api/v1/tickets").json()["items"][0]
        assert api.as_(agent).patch(f"/api/v1/tickets/{ticket['id']}",
                                    json={"status": "solved"}).status_code == 200

        def reasons():
            return [(i["reason"], i["count"]) for i in api.as_(supervisor).get(
                "/api/v1/metrics/contact-reasons", params=PERIOD).json()["items"]]
        assert reasons() == [("billing", 1)]
        assert api.as_(admin).delete(
            f"/api/v1/customers/{ticket['customer_id']}").status_code == 204
        assert reasons() == [("billing", 1)]
        clock.move_to(at(9) + timedelta(days=8))  # the sweeper closes it: facts recomputed
        with app.app_context():
            assert actions.close_solved_past_window() == 1
        assert reasons() == [("billing", 1)]
        assert app.test_cli_runner().invoke(metrics_rebuild).exit_code == 0
        assert reasons() == [("billing", 1)]


def test_a_reopened_tickets_first_solve_keeps_its_moment(app, api, agent, drain):
    """A cycle's solve is read from the ticket's `solved_at` while it is solved and from its
    history once reopened: the two are one moment (the history's was written a little
    later, which could move a solve at 23:59:59.999 into the next day)."""
    from datetime import datetime as dt

    channel = factories.channel(app, "api")
    api.post_api_webhook(channel, api_message(event_id="e1", message_id="m1", text="Hello"))
    drain()
    ticket_id = api.as_(agent).get("/api/v1/tickets").json()["items"][0]["id"]
    solved = api.as_(agent).patch(f"/api/v1/tickets/{ticket_id}", json={"status": "solved"})
    solved_at = dt.fromisoformat(solved.json()["solved_at"])
    with app.app_context():
        before = db.session.execute(select(TicketFact.solved_at)).scalar_one()
    api.post_api_webhook(channel, api_message(event_id="e2", message_id="m2", text="Again"))
    drain()
    assert api.as_(agent).get(f"/api/v1/tickets/{ticket_id}").json()["status"] == "open"
    with app.app_context():
        after = db.session.execute(select(TicketFact.solved_at)).scalar_one()
        reopened = db.session.execute(select(TicketFact.reopened_at)).scalar_one()
    assert before == after == solved_at
    assert reopened is not None


def test_a_reply_after_the_reopen_of_an_unanswered_solve_stays_live_until_solved(
        app, api, agent, supervisor, drain):
    """Solved unanswered, reopened by the customer, then answered: the response is the
    second cycle's, counted live while it runs and on its fact once solved (it went to the
    first cycle, and its agent, whenever something recomputed the facts)."""
    channel = factories.channel(app, "api")
    with time_machine.travel(at(9), tick=False) as clock:
        api.post_api_webhook(channel, api_message(event_id="e1", message_id="m1",
                                                  text="Where is my parcel?"))
        drain()
        ticket_id = api.as_(agent).get("/api/v1/tickets").json()["items"][0]["id"]
        clock.move_to(at(10))
        assert api.as_(agent).patch(f"/api/v1/tickets/{ticket_id}",
                                    json={"status": "solved"}).status_code == 200
        clock.move_to(at(11))
        api.post_api_webhook(channel, api_message(event_id="e2", message_id="m2",
                                                  text="It has still not come"))
        drain()
        clock.move_to(at(12))
        assert api.as_(agent).post(f"/api/v1/tickets/{ticket_id}/messages",
                                   json={"text": "It is on its way"}).status_code == 201
        path = f"/api/v1/tickets/{ticket_id}/work"
        assert api.as_(agent).post(f"{path}/start").status_code == 200
        assert api.as_(agent).post(f"{path}/stop").status_code == 200  # a recompute
        frt = {"mean": 3 * 3600.0, "p50": 3 * 3600.0, "p90": 3 * 3600.0}
        assert summary(api, supervisor)["totals"]["frt_seconds"] == frt
        with app.app_context():
            counted = db.session.execute(select(TicketFact.cycle).where(
                TicketFact.frt_counted)).scalars().all()
        assert counted == []  # live: the second cycle is not solved yet
        clock.move_to(at(13))
        assert api.as_(agent).patch(f"/api/v1/tickets/{ticket_id}",
                                    json={"status": "solved"}).status_code == 200
        assert summary(api, supervisor)["totals"]["frt_seconds"] == frt
        with app.app_context():
            counted = db.session.execute(select(TicketFact.cycle).where(
                TicketFact.frt_counted)).scalars().all()
        assert counted == [2]
