"""Learning from people (issue 16): a hand-set priority stores a correction row with the
scorer's features; `helpdesk urgency evaluate` and `tune` read them. And the sender's own
priority flag reaches the score."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from helpdesk.cli import urgency_evaluate, urgency_tune
from helpdesk.extensions import db
from helpdesk.models import Message, UrgencyCorrection
from tests.support import factories
from tests.support.live import api_message


@pytest.fixture
def channel(app):
    return factories.channel(app, "api")


def ticket_of(api, agent, text: str) -> dict:
    return next(t for t in api.as_(agent).get("/api/v1/tickets?per_page=100").json()["items"]
                if t["subject"] == text[:120])


def test_the_sender_priority_is_stored_and_explained(app, api, agent, channel, drain):
    text = "Please send me a copy of my contract"
    api.post_api_webhook(channel, api_message("e-sp", "m-sp", text=text, priority="urgent"))
    drain()
    ticket = ticket_of(api, agent, text)
    reasons = {r["factor"]: r for r in ticket["urgency_reasons"]}
    assert reasons["sender_priority"]["detail"] == "the sender marked it urgent"
    with app.app_context():
        stored = db.session.execute(select(Message.sender_priority).where(
            Message.external_id == "m-sp")).scalar_one()
    assert stored == "urgent"


def test_a_hand_set_priority_stores_a_correction(app, api, agent, channel, drain):
    text = "hello, how do I change my delivery address?"
    api.post_api_webhook(channel, api_message("e-c1", "m-c1", text=text))
    drain()
    ticket = ticket_of(api, agent, text)
    assert ticket["priority"] == "low"
    assert api.as_(agent).patch(f"/api/v1/tickets/{ticket['id']}",
                                json={"priority": "high"}).status_code == 200
    with app.app_context():
        (row,) = db.session.execute(select(UrgencyCorrection).where(
            UrgencyCorrection.ticket_id == ticket["id"])).scalars()
        assert (row.previous_priority, row.scored_priority, row.chosen_priority) == (
            "low", "low", "high")
        assert row.agent_id == agent.id and row.score == ticket["urgency"]
        assert row.features["intent"] == "how_to"
        assert row.features["channel_kind"] == "api"
        assert row.reasons == ticket["urgency_reasons"]


def test_evaluate_and_tune_read_the_corrections(app, api, supervisor, channel, drain,
                                                tmp_path):
    texts = [f"hello, how do I change my delivery address for order {n}?" for n in range(4)]
    for n, text in enumerate(texts):
        api.post_api_webhook(channel, api_message(f"e-t{n}", f"m-t{n}", text=text,
                                                  email=f"t{n}@example.com"))
    drain()
    for text in texts:  # the people keep saying how-to questions on this channel are normal
        ticket = ticket_of(api, supervisor, text)
        api.as_(supervisor).patch(f"/api/v1/tickets/{ticket['id']}", json={"priority": "high"})
        api.as_(supervisor).patch(f"/api/v1/tickets/{ticket['id']}",
                                  json={"priority": "normal"})  # changed their mind: last wins
    runner = app.test_cli_runner()
    evaluated = runner.invoke(urgency_evaluate, [])
    assert evaluated.exit_code == 0, evaluated.output
    assert "4 tickets with a hand-set priority" in evaluated.output
    assert "agreement re-scored now:      0/4 (0.0%)" in evaluated.output

    override = tmp_path / "urgency.json"
    override.write_text(json.dumps({"tier": {"points": {"vip": 30}}}), encoding="utf-8")
    proposed = runner.invoke(urgency_tune, ["--config", str(override)])
    assert proposed.exit_code == 0, proposed.output
    assert "(not written: add --apply)" in proposed.output
    assert json.loads(override.read_text()) == {"tier": {"points": {"vip": 30}}}

    applied = runner.invoke(urgency_tune, ["--config", str(override), "--apply"])
    assert applied.exit_code == 0, applied.output
    written = json.loads(override.read_text())
    assert written["tier"]["points"]["vip"] == 30  # the operator's own values are kept
    assert "agreement now 100.0%" in applied.output
    again = runner.invoke(urgency_evaluate, ["--config", str(override)])
    assert "agreement re-scored now:      4/4 (100.0%)" in again.output


def test_tune_without_a_file_to_write_says_so(app, api, supervisor, channel, drain):
    text = "hello, how do I change my invoice address?"
    api.post_api_webhook(channel, api_message("e-n1", "m-n1", text=text))
    drain()
    ticket = ticket_of(api, supervisor, text)
    api.as_(supervisor).patch(f"/api/v1/tickets/{ticket['id']}", json={"priority": "urgent"})
    result = app.test_cli_runner().invoke(urgency_tune, ["--apply"])
    assert result.exit_code != 0
    assert "no config file to write" in result.output
