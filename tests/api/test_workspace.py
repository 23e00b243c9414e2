"""The agent's live workspace: work sessions, viewers, catching up after a reconnect."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import select, update

from helpdesk.extensions import db
from helpdesk.models import WorkSession
from tests.support import factories
from tests.support.live import api_message


@pytest.fixture
def ticket_id(app, api, drain):
    channel = factories.channel(app, "api")
    api.post_api_webhook(channel, api_message(text="Where is my parcel?"))
    drain("ingest")
    return api.as_(factories.agent(app)).get("/api/v1/tickets").json()["items"][0]["id"]


def sessions(app) -> list[WorkSession]:
    with app.app_context():
        rows = db.session.execute(select(WorkSession).order_by(WorkSession.id)).scalars().all()
        db.session.expunge_all()
        return rows


def test_focus_and_blur_measure_one_session(app, agent, sockets, ticket_id):
    client = sockets(agent.token)
    focused = client.call("ticket.focus", {"ticket_id": ticket_id})
    assert focused["ok"] and focused["work_session"]["ended_at"] is None
    time.sleep(0.4)
    blurred = client.call("ticket.blur", {"ticket_id": ticket_id})
    assert blurred["work_session"]["end_reason"] == "blur"
    assert 0.4 <= blurred["work_session"]["seconds"] < 5
    assert len(sessions(app)) == 1


def test_two_tabs_are_one_session(app, agent, sockets, ticket_id):
    first, second = sockets(agent.token), sockets(agent.token)
    first.call("ticket.focus", {"ticket_id": ticket_id})
    second.call("ticket.focus", {"ticket_id": ticket_id})
    assert len(sessions(app)) == 1
    first.call("ticket.blur", {"ticket_id": ticket_id})
    assert sessions(app)[0].ended_at is None
    second.call("ticket.blur", {"ticket_id": ticket_id})
    assert sessions(app)[0].ended_at is not None and len(sessions(app)) == 1


def test_tabs_focusing_at_once_open_one_session(app, agent, sockets, ticket_id):
    """Several tabs focus the same ticket together: one open session, not one per tab (each
    would otherwise find none open and open its own; a later blur then met two)."""
    from concurrent.futures import ThreadPoolExecutor

    tabs = [sockets(agent.token) for _ in range(6)]
    for _round in range(3):
        with ThreadPoolExecutor(len(tabs)) as pool:
            focused = list(pool.map(
                lambda tab: tab.call("ticket.focus", {"ticket_id": ticket_id}), tabs))
        assert all(answer["ok"] for answer in focused), focused
        assert len([s for s in sessions(app) if s.ended_at is None]) == 1
        for tab in tabs:
            assert tab.call("ticket.blur", {"ticket_id": ticket_id})["ok"]
        assert all(s.ended_at is not None for s in sessions(app))


def test_disconnect_closes_the_session(app, agent, sockets, ticket_id):
    client = sockets(agent.token)
    client.call("ticket.focus", {"ticket_id": ticket_id})
    client.disconnect()
    deadline = time.monotonic() + 5
    while sessions(app)[0].ended_at is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sessions(app)[0].end_reason == "disconnect"


def test_idle_sessions_close_at_the_last_activity(app, api, agent, ticket_id):
    start = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False) as clock:
        assert api.as_(agent).post(f"/api/v1/tickets/{ticket_id}/work/start").status_code == 200
        clock.move_to(start + timedelta(minutes=4))
        with app.app_context():
            from helpdesk.services.tickets import work_sessions

            work_sessions.keep_alive(agent.id, ticket_id)
            clock.move_to(start + timedelta(minutes=15))
            assert work_sessions.close_idle() == 1
    session = sessions(app)[0]
    assert session.end_reason == "idle"
    assert session.ended_at - session.started_at == timedelta(minutes=4)


def test_a_heartbeat_after_an_idle_close_opens_a_new_session(app, agent, supervisor, sockets,
                                                              ticket_id):
    """The agent left the tab open and went away: the sweeper closed the session as idle.
    Their tab's next heartbeat was acknowledged and recorded nothing, and the ticket's
    viewers no longer listed them; now the agent is back on it."""
    from helpdesk.services.tickets import work_sessions

    client = sockets(agent.token)
    watcher = sockets(supervisor.token)
    assert client.call("ticket.focus", {"ticket_id": ticket_id})["ok"]
    with app.app_context():
        db.session.execute(update(WorkSession).values(
            last_seen_at=datetime.now(UTC) - timedelta(hours=1)))
        db.session.commit()
        assert work_sessions.close_idle() == 1
        assert work_sessions.viewers(ticket_id) == []
    assert watcher.call("ticket.focus", {"ticket_id": ticket_id})["ok"]
    assert client.call("heartbeat", {"ticket_id": ticket_id}) == {"ok": True}
    mine = [s for s in sessions(app) if s.agent_id == agent.id]
    assert [s.end_reason for s in mine] == ["idle", None]
    watcher.wait_for("ticket.viewers", lambda e: agent.id in [
        v["id"] for v in e["data"]["viewers"]])
    assert client.call("ticket.blur", {"ticket_id": ticket_id})["ok"]
    assert [s.end_reason for s in sessions(app) if s.agent_id == agent.id] == ["idle", "blur"]


def test_working_on_the_ticket_over_rest_keeps_its_session_open(app, api, agent, ticket_id):
    """REST has no heartbeat: a reply, a note or a change the agent makes to the ticket is
    activity on their session, so a session worked over REST is not closed as idle."""
    from helpdesk.services.tickets import work_sessions

    path = f"/api/v1/tickets/{ticket_id}"
    start = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False) as clock:
        assert api.as_(agent).post(f"{path}/work/start").status_code == 200
        for minutes, work in ((8, ("post", "/messages", {"text": "note", "internal": True})),
                              (16, ("patch", "", {"tags": ["parcel"]})),
                              (24, ("post", "/messages", {"text": "On its way!"}))):
            clock.move_to(start + timedelta(minutes=minutes))
            method, suffix, body = work
            assert getattr(api.as_(agent), method)(path + suffix, json=body).ok
            with app.app_context():
                assert work_sessions.close_idle() == 0
        clock.move_to(start + timedelta(minutes=30))
        stopped = api.as_(agent).post(f"{path}/work/stop")
    assert stopped.status_code == 200, stopped.text
    [session] = sessions(app)
    assert session.ended_at - session.started_at == timedelta(minutes=30)


def test_rest_twins(api, agent, ticket_id):
    started = api.as_(agent).post(f"/api/v1/tickets/{ticket_id}/work/start")
    assert started.status_code == 200 and started.json()["ended_at"] is None
    stopped = api.as_(agent).post(f"/api/v1/tickets/{ticket_id}/work/stop")
    assert stopped.status_code == 200 and stopped.json()["ended_at"] is not None
    again = api.as_(agent).post(f"/api/v1/tickets/{ticket_id}/work/stop")  # a retry
    assert again.status_code == 200 and again.json() == stopped.json()
    assert api.as_(agent).post("/api/v1/tickets/999999/work/start").status_code == 404


def test_stopping_work_never_started_is_422(app, api, agent, ticket_id):
    other = factories.agent(app)
    assert api.as_(agent).post(f"/api/v1/tickets/{ticket_id}/work/start").status_code == 200
    response = api.as_(other).post(f"/api/v1/tickets/{ticket_id}/work/stop")
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "no_work_session"


def test_viewers_see_each_other(app, agent, supervisor, sockets, ticket_id):
    mine, theirs = sockets(agent.token), sockets(supervisor.token)
    mine.call("ticket.focus", {"ticket_id": ticket_id})
    theirs.call("ticket.focus", {"ticket_id": ticket_id})
    both = mine.wait_for("ticket.viewers", lambda e: len(e["data"]["viewers"]) == 2)
    assert {v["id"] for v in both["data"]["viewers"]} == {agent.id, supervisor.id}
    theirs.call("ticket.blur", {"ticket_id": ticket_id})
    mine.wait_for("ticket.viewers", lambda e: [v["id"] for v in e["data"]["viewers"]]
                  == [agent.id])


def test_reconnecting_client_gets_what_it_missed(app, api, agent, sockets, drain):
    channel = factories.channel(app, "api")
    first = sockets(agent.token)
    api.post_api_webhook(channel, api_message("e1", "m1", email="a@example.com"))
    drain("ingest")
    first.wait_for("message.created", lambda e: e["data"]["text"] == "Hello")
    first.wait_for("queue.updated", lambda e: e["data"]["size"] == 1)
    last_seq = max(data["seq"] for _, data in first.events)
    first.disconnect()
    api.post_api_webhook(channel, api_message("e2", "m2", text="while you were away",
                                              email="b@example.com"))
    drain("ingest")
    again = sockets(agent.token)
    caught_up = again.call("events.since", {"seq": last_seq})
    assert caught_up["refetch"] is False
    # API.md: the events are the envelopes as they were sent, each carrying its `seq`.
    assert all(set(item) == {"type", "at", "data", "seq"} for item in caught_up["events"])
    names = [item["type"] for item in caught_up["events"]]
    assert "ticket.created" in names and "message.created" in names
    texts = [item["data"].get("text") for item in caught_up["events"]
             if item["type"] == "message.created"]
    assert texts == ["while you were away"]
    seqs = [item["seq"] for item in caught_up["events"]]
    assert seqs == sorted(seqs) and seqs[0] > last_seq and seqs[-1] <= caught_up["seq"]
    too_far = again.call("events.since", {"seq": caught_up["seq"] + 100})
    assert too_far["refetch"] is True and too_far["events"] == []
    assert "error" in again.call("events.since", {"seq": "x"})


def test_an_event_whose_handler_fails_is_answered_with_an_error(app, api, agent, sockets):
    """Redis not answering during a catch-up: the client's acknowledgement never came (the
    handler's thread died with the error) and it waited until its own timeout."""
    from tests.support.redis_server import app_on

    client = sockets(agent.token)
    with app_on(app, "redis://127.0.0.1:1/0"):
        answer = client.call("events.since", {"seq": 1})
    assert answer == {"error": {"code": "unavailable", "message": "not answering; retry",
                                "fields": {}}}
    assert "refetch" in client.call("events.since", {"seq": 1})  # Redis back: it answers


def test_a_connect_whose_handler_fails_is_refused(app, agent, sockets):
    """A connect handler that fails half-way (Redis not answering) must not let the
    connection in: the error handler's answer to it is a refusal."""
    import socketio

    from tests.support.redis_server import app_on

    with app_on(app, "redis://127.0.0.1:1/0"), pytest.raises(
            socketio.exceptions.ConnectionError):
        sockets(agent.token)


def test_numbering_goes_on_upwards_after_redis_restarts_empty(app, api, agent, sockets, drain):
    """Redis restarted empty numbered events from 1 again: the console dropped the new
    events as older than what it had, and once the count passed a client's last number
    its catch-up had a gap nobody was told about."""
    from helpdesk.queues import redis_connection

    channel = factories.channel(app, "api")
    client = sockets(agent.token)
    api.post_api_webhook(channel, api_message("e1", "m1", email="a@example.com"))
    drain("ingest")
    client.wait_for("message.created")
    before = max(data["seq"] for _, data in client.events)
    redis_connection(app).flushdb()
    api.post_api_webhook(channel, api_message("e2", "m2", text="after", email="b@example.com"))
    drain("ingest")
    after = client.wait_for("message.created", lambda e: e["data"]["text"] == "after")
    assert after["seq"] > before
    assert client.call("events.since", {"seq": before})["refetch"] is True  # (the log lost)


def test_malformed_client_events_answer_what_was_wrong(agent, sockets, ticket_id):
    client = sockets(agent.token)
    for name, data in (("ticket.focus", {}), ("ticket.blur", {"ticket_id": "7"}),
                       ("typing", {}), ("typing", {"ticket_id": True}),
                       ("events.since", {"seq": -1})):
        answer = client.call(name, data)
        assert answer["error"]["code"] == "validation_error", (name, data, answer)
        # the REST API's one error shape, naming the field
        assert set(answer["error"]["fields"]) == {"seq" if name == "events.since"
                                                  else "ticket_id"}, answer
    assert client.call("presence", {"status": "asleep"})["error"]["fields"] == {
        "status": ["online or away"]}
    # No payload at all (`emit(name)`), or more than one argument: an answer, not a crash.
    for name in ("presence", "ticket.focus", "ticket.blur", "typing", "heartbeat",
                 "events.since"):
        for data in (None, ({}, 1)):
            answer = client.call(name, data)
            assert answer["error"]["code"] == "validation_error", (name, data, answer)
    for name, data in (("heartbeat", None), ("heartbeat", {}),
                       ("ticket.focus", {"ticket_id": 2**64}), ("typing", {"ticket_id": 0})):
        answer = client.call(name, data)
        assert answer["error"]["code"] == "validation_error", (name, data, answer)
    for name in ("ticket.focus", "ticket.blur", "typing", "heartbeat"):
        assert client.call(name, {"ticket_id": ticket_id + 1000})["error"]["code"] == \
            "not_found", name
    assert client.call("typing", {"ticket_id": ticket_id}) == {"ok": True}
    assert client.call("heartbeat", {"ticket_id": ticket_id}) == {"ok": True}


def test_a_heartbeat_keeps_that_tickets_session_open_only(app, api, agent, sockets, drain,
                                                        ticket_id):
    """A heartbeat (or typing) names the ticket on screen: the agent's session on another
    ticket, idle, is not kept open by it."""
    channel = factories.channel(app, "api")
    api.post_api_webhook(channel, api_message("e2", "m2", text="Another", email="o@x.com"))
    drain("ingest")
    other = next(t["id"] for t in api.as_(agent).get("/api/v1/tickets").json()["items"]
                 if t["id"] != ticket_id)
    assert api.as_(agent).post(f"/api/v1/tickets/{other}/work/start").status_code == 200
    client = sockets(agent.token)
    assert client.call("ticket.focus", {"ticket_id": ticket_id})["ok"]
    [idle] = [s for s in sessions(app) if s.ticket_id == other]
    time.sleep(0.05)
    for event in ("heartbeat", "typing"):
        assert client.call(event, {"ticket_id": ticket_id}) == {"ok": True}
    by_ticket = {s.ticket_id: s for s in sessions(app)}
    assert by_ticket[other].last_seen_at == idle.last_seen_at
    assert by_ticket[ticket_id].last_seen_at > by_ticket[ticket_id].started_at


def test_typing_reaches_the_other_viewers_numbered(agent, supervisor, sockets, ticket_id):
    """API.md: every envelope carries `seq`, an agent's `typing` included."""
    mine, theirs = sockets(agent.token), sockets(supervisor.token)
    for client in (mine, theirs):
        assert client.call("ticket.focus", {"ticket_id": ticket_id})["ok"]
    assert mine.call("typing", {"ticket_id": ticket_id}) == {"ok": True}
    seen = theirs.wait_for("typing", lambda e: e["data"]["agent_id"] == agent.id)
    assert set(seen) == {"type", "at", "data", "seq"} and seen["type"] == "typing"
    assert isinstance(seen["seq"], int) and seen["data"]["ticket_id"] == ticket_id


@pytest.mark.parametrize("token", [123, ["a"], {"t": 1}, None, ""])
def test_a_token_that_is_not_a_string_is_refused_at_connect(live_server, token):
    import socketio

    client = socketio.Client(reconnection=False)
    started = time.monotonic()
    with pytest.raises(socketio.exceptions.ConnectionError):
        client.connect(live_server, namespaces=["/agents"], auth={"token": token},
                       transports=["websocket"], wait_timeout=5)
    assert time.monotonic() - started < 4  # refused, not left to time out


def _presence(app, agent_id: int) -> str:
    from helpdesk.models import Agent

    with app.app_context():
        value = db.session.get(Agent, agent_id).presence
        db.session.rollback()
        return value


def test_connections_of_a_web_process_that_died_are_swept_offline(app, api, agent, sockets,
                                                                   drain, ticket_id):
    """A web process killed without running its disconnect handlers leaves its connections
    listed; once its keep-alive key expires, the sweeper closes them: the dead tab's work
    session ends, and the agent is offline when their last real connection goes (before,
    the dead tab kept them `online` for good)."""
    from helpdesk.queues import redis_connection
    from helpdesk.services.routing import presence
    from helpdesk.services.tickets import work_sessions

    channel = factories.channel(app, "api")
    api.post_api_webhook(channel, api_message("e2", "m2", text="Another", email="o@x.com"))
    drain("ingest")
    other = next(t["id"] for t in api.as_(agent).get("/api/v1/tickets").json()["items"]
                 if t["id"] != ticket_id)
    client = sockets(agent.token)
    assert client.call("ticket.focus", {"ticket_id": ticket_id})["ok"]
    # What a process that has since died left behind: a tab of this agent, on `other`.
    dead_sid = "dead-process-tab"
    with app.app_context():
        redis = redis_connection()
        redis.sadd(f"helpdesk:presence:{agent.id}", dead_sid)
        redis.sadd("helpdesk:web:processes", "deadbeef")
        redis.hset("helpdesk:web:deadbeef:connections", dead_sid, f"{agent.id} ")
        work_sessions.start(agent.id, other, dead_sid, "socket")
        now = time.time()
        assert presence.sweep_dead_processes(now) == 0  # gone only just: not yet
        assert presence.sweep_dead_processes(now + presence.PROCESS_TTL_SECONDS) == 1
        assert not redis.exists("helpdesk:web:deadbeef:connections")
        assert not redis.sismember(f"helpdesk:presence:{agent.id}", dead_sid)
        assert not redis.sismember("helpdesk:web:processes", "deadbeef")
        # This process keeps itself alive: its connections stay.
        assert presence.sweep_dead_processes(now + 10 * presence.PROCESS_TTL_SECONDS) == 0
    by_ticket = {s.ticket_id: s for s in sessions(app)}
    assert by_ticket[other].end_reason == "disconnect"
    assert by_ticket[ticket_id].ended_at is None
    assert _presence(app, agent.id) == "online"  # the live tab is still connected
    client.disconnect()
    deadline = time.monotonic() + 5
    while _presence(app, agent.id) != "offline" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _presence(app, agent.id) == "offline"


def test_a_web_process_keeps_its_connections_alive_by_itself(app, monkeypatch):
    """The keep-alive task runs outside any request: it keeps the process's key alive, so a
    connection left idle for longer than the key lives is not swept as dead."""
    import threading

    from helpdesk.queues import redis_connection
    from helpdesk.realtime import agents as agents_namespace
    from helpdesk.services.routing import presence

    monkeypatch.setattr(presence, "PROCESS_TTL_SECONDS", 1)
    key = f"helpdesk:web:{presence.PROCESS}"
    with app.app_context():
        redis_connection().delete(key)
    stop = threading.Event()
    task = threading.Thread(target=agents_namespace._keep_alive_loop,
                            args=(app, stop.is_set), daemon=True)
    task.start()
    try:
        deadline = time.monotonic() + 5
        with app.app_context():
            while not redis_connection().exists(key) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert redis_connection().exists(key)
            assert 0 < redis_connection().ttl(key) <= 1
    finally:
        stop.set()
        task.join(5)


def test_a_live_process_whose_registration_lapsed_registers_its_connections_again(
        app, agent, sockets):
    """Redis restarted empty (or was down past the key's life): the process is alive and
    its agents connected. It is not swept while it renews its key in time, and whatever it
    had registered is registered again on its next keep-alive."""
    from helpdesk.queues import redis_connection
    from helpdesk.services.routing import presence

    sid = sockets(agent.token).client.get_sid("/agents")
    alive, listed = (f"helpdesk:web:{presence.PROCESS}",
                     f"helpdesk:web:{presence.PROCESS}:connections")
    with app.app_context():
        redis = redis_connection()
        redis.delete(alive, listed, f"helpdesk:presence:{agent.id}")  # the lapse
        now = time.time()
        assert presence.sweep_dead_processes(now) == 0
        presence.keep_process_alive()
        assert presence.sweep_dead_processes(now + 2 * presence.PROCESS_TTL_SECONDS) == 0
        assert redis.hexists(listed, sid)
        assert redis.sismember(f"helpdesk:presence:{agent.id}", sid)
    assert _presence(app, agent.id) == "online"
