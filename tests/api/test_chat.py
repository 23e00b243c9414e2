"""Website chat (`widget`): visitor sessions and messages over HTTP, live replies on `/chat`."""

from __future__ import annotations

import hashlib
import hmac
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import socketio

from tests.support import factories
from tests.support.live import ApiClient, api_message

WEBSITE = "https://shop.example.com"
IDENTITY_SECRET = "site-identity-secret"


@pytest.fixture
def channel(app):
    return factories.channel(app, "widget", kind="chat", settings={"website": WEBSITE},
                             secrets={"identity_secret": IDENTITY_SECRET})


def start(api: ApiClient, channel, **body) -> tuple[str, str]:
    response = api.post(f"/api/v1/chat/{channel.key}/sessions", json=body)
    assert response.status_code == 201, response.text
    return response.json()["session_id"], response.json()["visitor_token"]


def say(api: ApiClient, session_id: str, token: str, text: str = "Hello",
        client_message_id: str = "c-1"):
    return api.post(f"/api/v1/chat/sessions/{session_id}/messages",
                    headers={"Authorization": f"Bearer {token}"},
                    json={"text": text, "client_message_id": client_message_id})


def listing(api: ApiClient, session_id: str, token: str | None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return api.get(f"/api/v1/chat/sessions/{session_id}/messages", headers=headers)


def signature(email: str, secret: str = IDENTITY_SECRET) -> str:
    return hmac.new(secret.encode(), email.encode(), hashlib.sha256).hexdigest()


def chat_ticket(api: ApiClient, agent, session_id: str, token: str) -> dict:
    ticket_id = listing(api, session_id, token).json()["items"][0]["ticket_id"]
    return api.as_(agent).get(f"/api/v1/tickets/{ticket_id}").json()


def test_session_is_created_with_an_opaque_id_and_a_token(app, api, agent, channel):
    response = api.post(f"/api/v1/chat/{channel.key}/sessions", json={"name": "Visitor"})
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"session_id", "visitor_token"}
    assert isinstance(body["session_id"], str) and len(body["session_id"]) >= 16
    found = api.as_(agent).get(
        f"/api/v1/customers?identity=chat_visitor:{body['session_id']}").json()
    assert found["total"] == 1 and found["items"][0]["name"] == "Visitor"


def test_a_session_needs_no_body(api, channel):
    """Every field is optional: a JSON request with no body at all is an anonymous visitor
    (it was a 400). Without the JSON type it stays a 415: any page's scripts may send a
    bodiless POST across origins without the CORS preflight that JSON takes."""
    path = f"/api/v1/chat/{channel.key}/sessions"
    response = api.post(path, headers={"Content-Type": "application/json"})
    assert response.status_code == 201, response.text
    assert set(response.json()) == {"session_id", "visitor_token"}
    assert api.post(path).status_code == 415


def test_unknown_channel_key_is_404(api, channel):
    response = api.post("/api/v1/chat/no-such-key/sessions", json={})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_message_is_201_then_200_with_the_same_id_when_repeated(app, api, agent, channel,
                                                                drain):
    session_id, token = start(api, channel)
    first = say(api, session_id, token, "My order is late", "c-1")
    assert first.status_code == 201
    message = first.json()
    assert message["direction"] == "inbound" and message["author"]["type"] == "customer"
    again = say(api, session_id, token, "My order is late", "c-1")
    assert again.status_code == 200 and again.json()["id"] == message["id"]
    second = say(api, session_id, token, "Order 4711", "c-2")
    assert second.status_code == 201 and second.json()["ticket_id"] == message["ticket_id"]
    drain()
    ticket = api.as_(agent).get(f"/api/v1/tickets/{message['ticket_id']}").json()
    assert ticket["channel"]["provider"] == "widget" and ticket["channel"]["kind"] == "chat"
    assert [m["text"] for m in ticket["messages"]] == ["My order is late", "Order 4711"]


def test_concurrent_repeats_store_one_message(app, api, channel):
    session_id, token = start(api, channel)
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda _: say(api, session_id, token, "Hi", "same"),
                                  range(8)))
    assert sorted(r.status_code for r in responses) == [200] * 7 + [201]
    assert len({r.json()["id"] for r in responses}) == 1


def test_listing_shows_public_messages_oldest_first_never_notes(api, agent, channel, drain):
    session_id, token = start(api, channel)
    ticket_id = say(api, session_id, token, "Hello?").json()["ticket_id"]
    as_agent = api.as_(agent)
    as_agent.post(f"/api/v1/tickets/{ticket_id}/messages",
                  json={"text": "looks like a fraud attempt", "internal": True})
    as_agent.post(f"/api/v1/tickets/{ticket_id}/messages", json={"text": "Hi, how can I help?"})
    drain()
    body = listing(api, session_id, token).json()
    assert set(body) == {"items", "page", "per_page", "total"}
    assert [m["text"] for m in body["items"]] == ["Hello?", "Hi, how can I help?"]
    assert body["total"] == 2 and not any(m["internal"] for m in body["items"])
    assert body["items"][1]["delivery_status"] == "sent"


def test_another_sessions_id_with_this_token_is_404(api, channel):
    mine, my_token = start(api, channel)
    theirs, their_token = start(api, channel)
    say(api, theirs, their_token, "private")
    assert say(api, theirs, my_token).status_code == 404
    assert listing(api, theirs, my_token).status_code == 404
    assert listing(api, mine, my_token).json()["total"] == 0


@pytest.mark.parametrize("token", [None, "hv_wrong"])
def test_missing_or_bad_token_is_401_even_for_unknown_sessions(api, channel, token):
    session_id, _ = start(api, channel)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    for target in (session_id, "no-such-session"):
        path = f"/api/v1/chat/sessions/{target}/messages"
        posted = api.post(path, headers=headers, json={"text": "x", "client_message_id": "1"})
        assert posted.status_code == 401
        assert posted.json()["error"]["code"] == "unauthorized"
        assert api.get(path, headers=headers).status_code == 401


def test_agent_tokens_do_not_open_chat_sessions(api, agent, channel):
    session_id, _ = start(api, channel)
    assert listing(api, session_id, agent.token).status_code == 401


@pytest.mark.parametrize(("body", "field"), [
    ({"client_message_id": "c-1"}, "text"),
    ({"text": "   ", "client_message_id": "c-1"}, "text"),
    ({"text": "hi"}, "client_message_id"),
    ({"text": "hi", "client_message_id": "x" * 201}, "client_message_id"),
    ({"text": 5, "client_message_id": "c-1"}, "text"),
])
def test_invalid_message_bodies_are_400_with_fields(api, channel, body, field):
    session_id, token = start(api, channel)
    response = api.post(f"/api/v1/chat/sessions/{session_id}/messages", json=body,
                        headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert field in response.json()["error"]["fields"]


@pytest.mark.parametrize(("body", "field"), [
    ({"email": "not-an-email"}, "email"),
    ({"email_hmac": "abc"}, "email_hmac"),
    ({"name": "x" * 201}, "name"),
])
def test_invalid_session_bodies_are_400_with_fields(api, channel, body, field):
    response = api.post(f"/api/v1/chat/{channel.key}/sessions", json=body)
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


def test_non_json_is_415(api, channel):
    response = api.post(f"/api/v1/chat/{channel.key}/sessions", data="name=x",
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 415


def test_visitor_gets_public_replies_live_and_never_internal_notes(api, agent, channel,
                                                                   sockets, drain):
    session_id, token = start(api, channel)
    visitor = sockets(token, "/chat")
    ticket_id = say(api, session_id, token, "Anyone there?").json()["ticket_id"]
    as_agent = api.as_(agent)
    note = as_agent.post(f"/api/v1/tickets/{ticket_id}/messages",
                         json={"text": "internal: VIP?", "internal": True}).json()
    reply = as_agent.post(f"/api/v1/tickets/{ticket_id}/messages",
                          json={"text": "Yes, hello!"}).json()
    drain()
    event = visitor.wait_for("message.created", lambda e: e["data"]["id"] == reply["id"])
    assert set(event) == {"type", "at", "data"} and event["type"] == "message.created"
    assert event["data"]["text"] == "Yes, hello!" and event["data"]["internal"] is False
    seen = [data["data"]["id"] for name, data in visitor.events if name == "message.created"]
    assert note["id"] not in seen
    assert set(visitor.names()) <= {"message.created", "typing"}


def test_each_visitor_hears_only_their_own_session(api, agent, channel, sockets, drain):
    session_id, token = start(api, channel)
    _, other_token = start(api, channel)
    other = sockets(other_token, "/chat")
    mine = sockets(token, "/chat")
    ticket_id = say(api, session_id, token).json()["ticket_id"]
    api.as_(agent).post(f"/api/v1/tickets/{ticket_id}/messages", json={"text": "For you"})
    drain()
    mine.wait_for("message.created")
    assert other.names() == []


def test_bad_visitor_token_is_refused_at_connect(sockets, channel):
    with pytest.raises(socketio.exceptions.ConnectionError):
        sockets("hv_wrong", "/chat")
    with pytest.raises(socketio.exceptions.ConnectionError):
        sockets(None, "/chat")


def test_a_typing_loop_is_relayed_once_a_second(api, agent, channel, sockets):
    """A visitor's script sending `typing` in a loop: each was an event in every agent's
    numbered log (5,000 pushed the agents' real events out of their catch-up)."""
    session_id, token = start(api, channel, name="Ana")
    ticket_id = say(api, session_id, token).json()["ticket_id"]
    visitor = sockets(token, "/chat")
    desk = sockets(agent.token)
    assert desk.call("ticket.focus", {"ticket_id": ticket_id})["ok"] is True
    assert all(visitor.call("typing", {}) == {"ok": True} for _ in range(20))
    desk.wait_for("typing")
    time.sleep(0.3)
    assert desk.names().count("typing") == 1
    time.sleep(1.0)
    assert visitor.call("typing", {}) == {"ok": True}
    desk.wait_for("typing", lambda e: desk.names().count("typing") == 2)


def test_typing_is_relayed_both_ways(api, agent, channel, sockets):
    session_id, token = start(api, channel, name="Ana")
    ticket_id = say(api, session_id, token).json()["ticket_id"]
    visitor = sockets(token, "/chat")
    desk = sockets(agent.token)
    assert desk.call("ticket.focus", {"ticket_id": ticket_id})["ok"] is True
    assert visitor.call("typing", {}) == {"ok": True}
    seen = desk.wait_for("typing", lambda e: e["data"].get("ticket_id") == ticket_id)
    assert seen["type"] == "typing" and seen["data"]["name"] == "Ana"
    assert desk.call("typing", {"ticket_id": ticket_id}) == {"ok": True}
    heard = visitor.wait_for("typing")
    assert heard["data"]["agent_id"] == agent.id


def test_visitor_typing_before_any_message_goes_nowhere(api, channel, sockets):
    _, token = start(api, channel)
    answer = sockets(token, "/chat").call("typing", {})
    assert answer["error"]["code"] == "no_ticket"


def test_email_joins_the_customer_and_is_flagged_unverified(app, api, agent, channel, drain):
    api_channel = factories.channel(app, "api")
    api.post_api_webhook(api_channel, api_message(email="ana@example.com"))
    drain()
    known = api.as_(agent).get("/api/v1/customers?identity=email:ana@example.com").json()
    customer_id = known["items"][0]["id"]
    session_id, token = start(api, channel, name="Ana", email="Ana@Example.com")
    say(api, session_id, token)
    ticket = chat_ticket(api, agent, session_id, token)
    assert ticket["customer_id"] == customer_id
    assert ticket["identity_verified"] is False
    kinds = {i["kind"] for i in ticket["customer"]["identities"]}
    assert {"email", "chat_visitor"} <= kinds


@pytest.mark.parametrize(("email_hmac", "verified"), [
    (signature("ana@example.com"), True),
    (signature("ana@example.com", "another-secret"), False),
    (signature("bob@example.com"), False),
])
def test_signed_email_is_verified(app, api, agent, channel, email_hmac, verified):
    session_id, token = start(api, channel, email="ana@example.com", email_hmac=email_hmac)
    say(api, session_id, token)
    ticket = chat_ticket(api, agent, session_id, token)
    assert ticket["identity_verified"] is verified
    email = next(i for i in ticket["customer"]["identities"] if i["kind"] == "email")
    assert email["verified"] is verified


def test_anonymous_visitor_is_a_customer_of_their_own(app, api, agent, channel):
    first, first_token = start(api, channel)
    second, second_token = start(api, channel)
    one = say(api, first, first_token).json()
    two = say(api, second, second_token).json()
    assert one["ticket_id"] != two["ticket_id"]
    assert one["author"]["id"] != two["author"]["id"]
    assert chat_ticket(api, agent, first, first_token)["identity_verified"] is True


def test_cors_allows_the_channels_website_only(api, channel):
    path = f"/api/v1/chat/{channel.key}/sessions"
    preflight = api.request("OPTIONS", path, headers={
        "Origin": WEBSITE, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == WEBSITE
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    created = api.post(path, json={}, headers={"Origin": WEBSITE})
    assert created.headers["Access-Control-Allow-Origin"] == WEBSITE
    session_id = created.json()["session_id"]
    messages = f"/api/v1/chat/sessions/{session_id}/messages"
    for method in ("OPTIONS", "GET"):
        answer = api.request(method, messages, headers={"Origin": WEBSITE})
        assert answer.headers["Access-Control-Allow-Origin"] == WEBSITE  # a 401 too
    for target in (path, messages):
        foreign = api.request("OPTIONS", target, headers={"Origin": "https://evil.example"})
        assert "Access-Control-Allow-Origin" not in foreign.headers


def test_cors_takes_the_website_as_browsers_write_their_origin(app, api):
    channel = factories.channel(app, "widget", kind="chat",
                                settings={"website": "HTTPS://Shop.Example.com:443/"})
    preflight = api.request("OPTIONS", f"/api/v1/chat/{channel.key}/sessions", headers={
        "Origin": WEBSITE, "Access-Control-Request-Method": "POST"})
    assert preflight.headers["Access-Control-Allow-Origin"] == WEBSITE


def test_cors_headers_stay_on_the_chat_routes(api, channel):
    answer = api.request("OPTIONS", "/api/v1/auth/login", headers={"Origin": WEBSITE})
    assert "Access-Control-Allow-Origin" not in answer.headers
    assert "Access-Control-Allow-Methods" not in answer.headers


def test_agents_see_the_chat_ticket_and_message_live(api, agent, channel, sockets, drain):
    desk = sockets(agent.token)
    session_id, token = start(api, channel)
    message = say(api, session_id, token, "Live question").json()
    created = desk.wait_for("ticket.created", lambda e: e["data"]["id"] == message["ticket_id"])
    assert created["data"]["channel"]["provider"] == "widget"
    assert desk.wait_for("message.created",
                         lambda e: e["data"]["id"] == message["id"])["data"]["text"] == \
        "Live question"


def test_widget_channels_need_a_website_and_take_no_webhooks(api, admin, channel):
    as_admin = api.as_(admin)
    missing = as_admin.post("/api/v1/channels", json={
        "name": "Site", "kind": "chat", "provider": "widget"})
    assert missing.status_code == 400 and "website" in missing.json()["error"]["fields"]["settings"]
    created = as_admin.post("/api/v1/channels", json={
        "name": "Site", "kind": "chat", "provider": "widget", "settings": {"website": WEBSITE}})
    assert created.status_code == 201
    webhook = api.post(f"/webhooks/widget/{channel.key}", json={"text": "hi"})
    assert webhook.status_code == 401


@pytest.mark.parametrize("signed", [False, True])
def test_only_a_verified_chat_is_joined_by_the_customers_other_channels(
        app, api, agent, channel, drain, signed):
    """A visitor who merely claims an email (unsigned) joins that customer; the real
    customer's message on another channel then joined the open chat ticket (threading),
    and the agent's answer to it went out to the visitor's browser. Only a chat the site
    signed is the customer's conversation; the session's listing is its own either way."""
    email = "ana@example.com"
    session_id, token = start(api, channel, email=email,
                              **({"email_hmac": signature(email)} if signed else {}))
    assert say(api, session_id, token, "Hi from the website").status_code == 201
    drain("ingest")
    other = factories.channel(app, "api")
    assert api.post_api_webhook(other, api_message(
        text="My card number ends 4242", email=email)).status_code == 200
    drain("ingest")
    ticket = chat_ticket(api, agent, session_id, token)
    texts = {m["text"] for m in ticket["messages"]}
    assert ("My card number ends 4242" in texts) is signed
    customer_tickets = api.as_(agent).get(
        "/api/v1/tickets", params={"customer": ticket["customer_id"]}).json()["items"]
    assert len(customer_tickets) == (1 if signed else 2)
    reply = api.as_(agent).post(f"/api/v1/tickets/{ticket['id']}/messages",
                                json={"text": "How can I help?"})
    assert reply.status_code == 201, reply.text
    texts = [m["text"] for m in listing(api, session_id, token).json()["items"]]
    assert texts == ["Hi from the website", "How can I help?"]


def test_a_visitor_cannot_join_another_session_by_an_event_named_connect(api, agent, channel,
                                                                        sockets, drain):
    """python-socketio hands a client's `connect` event to the connect handler: a visitor
    holding another session's token joined its room and spoke as it."""
    _, token = start(api, channel)
    other_id, other_token = start(api, channel)
    ticket_id = say(api, other_id, other_token).json()["ticket_id"]
    mine = sockets(token, "/chat")
    theirs = sockets(other_token, "/chat")
    mine.client.emit("connect", (0, {"token": other_token}), namespace="/chat")
    assert mine.call("typing", {})["error"]["code"] == "no_ticket"  # still my own session
    api.as_(agent).post(f"/api/v1/tickets/{ticket_id}/messages", json={"text": "For them"})
    drain()
    theirs.wait_for("message.created")
    assert "message.created" not in mine.names()
