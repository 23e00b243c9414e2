"""`helpdesk demo`: fill a running system with realistic, correctly signed traffic.

Against a running system (`helpdesk run`), over HTTP only: one channel per provider (and per
Twilio and Meta kind) created through the REST API with made-up secrets, a VIP customer, then
the deliveries each provider would send — signed with those secrets — and a website chat.
Several customers reach out on two channels, the VIP is angry, one caller leaves a voicemail
and another hangs up in the queue. Nothing here touches the database: what a newcomer sees is
what the pipeline made of the traffic.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formataddr, formatdate
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests

from helpdesk.connectors import api as api_format
from helpdesk.connectors import mailgun, meta, twilio, x
from helpdesk.connectors.base import hmac_hex

TWILIO_NUMBER = "+15005550006"
ACCOUNT_SID = "AC" + "d3m0" * 8
SENDGRID_BOUNDARY = "xYzZY"
Payload = dict | list | bytes


class DemoError(Exception):
    """The running system could not be reached or refused the demo's setup."""


@dataclass
class DemoChannel:
    name: str
    kind: str
    provider: str
    settings: dict
    secrets: dict
    id: int = 0
    key: str = ""
    webhook_url: str = ""  # what providers sign: HELPDESK_PUBLIC_URL or the request's URL


def _secret() -> str:
    return secrets.token_urlsafe(18)


def channel_specs() -> dict[str, DemoChannel]:
    """One channel per provider (and per kind where a provider serves several)."""
    twilio_settings = {"account_sid": ACCOUNT_SID, "phone_number": TWILIO_NUMBER}

    def meta_secrets() -> dict:
        return {"app_secret": _secret(), "verify_token": _secret(), "access_token": _secret()}

    specs = [
        ("postmark", "email", "postmark", {"address": "support@acme.example"},
         {"basic_auth_user": "postmark", "basic_auth_password": _secret()}),
        ("mailgun", "email", "mailgun", {"address": "vip@mg.acme.example"},
         {"signing_key": "key-" + _secret()}),
        ("sendgrid", "email", "sendgrid", {"address": "billing@acme.example"},
         {"basic_auth_user": "sendgrid", "basic_auth_password": _secret()}),
        ("raw_mime", "email", "raw_mime", {"address": "returns@acme.example"},
         {"signing_secret": _secret()}),
        ("chat", "chat", "widget", {"website": "https://shop.acme.example"}, {}),
        ("sms", "sms", "twilio", twilio_settings, {"auth_token": _secret()}),
        ("twilio_whatsapp", "whatsapp", "twilio", twilio_settings, {"auth_token": _secret()}),
        ("voice", "voice", "twilio", twilio_settings, {"auth_token": _secret()}),
        ("whatsapp", "whatsapp", "meta", {"phone_number_id": "106540352242922"}, meta_secrets()),
        ("messenger", "messenger", "meta", {"page_id": "104729385512"}, meta_secrets()),
        ("instagram", "instagram", "meta", {"instagram_account_id": "17841405309211844"},
         meta_secrets()),
        ("telegram", "telegram", "telegram", {}, {"secret_token": _secret(),
                                                  "bot_token": "7000000001:" + _secret()}),
        ("x", "x", "x", {"user_id": "2244994945"}, {"consumer_secret": _secret(),
                                                   "access_token": _secret()}),
        ("api", "api", "api", {}, {"signing_secret": _secret()}),
    ]
    return {name: DemoChannel(f"Demo {name.replace('_', ' ')} ({provider})", kind, provider,
                              settings, secret_values)
            for name, kind, provider, settings, secret_values in specs}


# --- signing: every provider's format, in one place -------------------------------------------

def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _multipart(pairs: list[tuple[str, str]]) -> bytes:
    body = b"".join(f'--{SENDGRID_BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"'
                    f"\r\n\r\n{value}\r\n".encode() for name, value in pairs)
    return body + f"--{SENDGRID_BOUNDARY}--\r\n".encode()


def signed(channel: DemoChannel, payload: Payload, query: str = "") -> tuple[bytes, dict]:
    """The body and headers of one delivery, as `channel.provider` would sign it."""
    secret = channel.secrets
    url = channel.webhook_url + (f"?{query}" if query else "")
    as_json = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    if channel.provider == "api":
        stamp = str(int(time.time()))
        return as_json, {"Content-Type": "application/json", "X-Helpdesk-Timestamp": stamp,
                         "X-Helpdesk-Signature": api_format.sign(secret["signing_secret"], stamp,
                                                                 as_json)}
    if channel.provider == "raw_mime":
        return payload, {"Content-Type": "message/rfc822", "X-Helpdesk-Signature":
                         "sha256=" + hmac_hex(secret["signing_secret"], payload)}
    if channel.provider == "postmark":
        return as_json, {"Content-Type": "application/json", "Authorization": _basic(
            secret["basic_auth_user"], secret["basic_auth_password"])}
    if channel.provider == "sendgrid":
        return _multipart(payload), {
            "Content-Type": f"multipart/form-data; boundary={SENDGRID_BOUNDARY}",
            "Authorization": _basic(secret["basic_auth_user"], secret["basic_auth_password"])}
    if channel.provider == "mailgun":
        stamp, token = str(int(time.time())), secrets.token_hex(25)
        pairs = list(payload) + [("timestamp", stamp), ("token", token), (
            "signature", mailgun.sign(secret["signing_key"], stamp, token))]
        return urlencode(pairs).encode(), {"Content-Type": "application/x-www-form-urlencoded"}
    if channel.provider == "twilio":
        pairs = list(payload.items())
        return urlencode(pairs).encode(), {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": twilio.signature(secret["auth_token"], url, pairs)}
    if channel.provider == "meta":
        return as_json, {"Content-Type": "application/json",
                         "X-Hub-Signature-256": meta.sign(secret["app_secret"], as_json)}
    if channel.provider == "telegram":
        return as_json, {"Content-Type": "application/json",
                         "X-Telegram-Bot-Api-Secret-Token": secret["secret_token"]}
    if channel.provider == "x":
        return as_json, {"Content-Type": "application/json",
                         "x-twitter-webhooks-signature": x.sign(secret["consumer_secret"],
                                                                as_json)}
    raise ValueError(f"no signer for {channel.provider}")


# --- the demo -------------------------------------------------------------------------------

@dataclass
class Summary:
    channels: list[DemoChannel] = field(default_factory=list)
    deliveries: int = 0
    chat_messages: int = 0
    refused: list[str] = field(default_factory=list)
    vip_id: int | None = None


class Demo:
    def __init__(self, base_url: str, token: str, pace: float = 0.0,
                 echo: Callable[[str], Any] = print):
        self.base_url = base_url.rstrip("/")
        self.pace = pace
        self.echo = echo
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"
        self.run_id = secrets.token_hex(4)
        self.counter = itertools.count(1)
        self.channels = channel_specs()
        self.summary = Summary()

    # transport

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            return self.http.request(method, self.base_url + path, timeout=30, **kwargs)
        except requests.RequestException as exc:
            raise DemoError(f"cannot reach {self.base_url} ({type(exc).__name__}): "
                            "is `helpdesk run` up?") from exc

    def _api(self, method: str, path: str, expect: tuple[int, ...], **kwargs: Any) -> dict:
        response = self._call(method, "/api/v1" + path, **kwargs)
        if response.status_code in (401, 403):
            raise DemoError(f"{method} /api/v1{path} answered {response.status_code}: "
                            "pass an admin API token with --token or HELPDESK_TOKEN")
        if response.status_code not in expect:
            raise DemoError(f"{method} /api/v1{path} answered {response.status_code}: "
                            f"{response.text[:300]}")
        return response.json() if response.content else {}

    def deliver(self, name: str, payload: Payload, query: str = "") -> requests.Response:
        """POST one signed delivery to the channel's webhook."""
        channel = self.channels[name]
        body, headers = signed(channel, payload, query)
        path = urlsplit(channel.webhook_url).path + (f"?{query}" if query else "")
        response = self._call("POST", path, data=body, headers={
            "Authorization": None, **headers})  # providers send no bearer token
        self.summary.deliveries += 1
        self.echo(f"  [{self.summary.deliveries:>2}] {name}: {response.status_code}")
        if not 200 <= response.status_code < 300:
            self.summary.refused.append(f"{name}: {response.status_code} {response.text[:200]}")
        if self.pace:
            time.sleep(self.pace)
        return response

    def uid(self, prefix: str = "", length: int = 32) -> str:
        digest = hashlib.sha256(f"{self.run_id}:{next(self.counter)}".encode()).hexdigest()
        return prefix + digest[:length]

    # setup

    def create_channels(self) -> None:
        """The demo's channels: created, or (a demo ran before) the same ones given this
        run's settings and secrets, so a second run does not add a second set."""
        self.echo(f"Creating {len(self.channels)} channels…")
        existing = self._existing_channels()
        for channel in self.channels.values():
            known = existing.get((channel.name, channel.provider, channel.kind))
            body = {"settings": channel.settings, "secrets": channel.secrets}
            created = (self._api("PATCH", f"/channels/{known}", (200,), json=body) if known
                       else self._api("POST", "/channels", (201,), json={
                           "name": channel.name, "kind": channel.kind,
                           "provider": channel.provider, **body}))
            channel.id, channel.key = created["id"], created["key"]
            channel.webhook_url = created["webhook_url"]
            self.summary.channels.append(channel)
            self.echo(f"  channel {len(self.summary.channels)}/{len(self.channels)}: "
                      f"{channel.provider}/{channel.kind} ({channel.name})")

    def _existing_channels(self) -> dict[tuple[str, str, str], int]:
        found, page = {}, 1
        while True:
            listed = self._api("GET", "/channels", (200,), params={"page": page,
                                                                   "per_page": 200})
            for item in listed["items"]:
                found.setdefault((item["name"], item["provider"], item["kind"]), item["id"])
            if page * listed["per_page"] >= listed["total"]:
                return found
            page += 1

    def create_vip(self) -> None:
        identities = [{"kind": "email", "value": "victoria.sterling@sterling-holdings.example"},
                      {"kind": "phone", "value": "+14155550147"}]
        response = self._call("POST", "/api/v1/customers", json={
            "name": "Victoria Sterling", "tier": "vip", "identities": identities})
        if response.status_code == 201:
            self.summary.vip_id = response.json()["id"]
        elif response.status_code == 409:  # a demo ran before: she is already known
            found = self._api("GET", "/customers", (200,),
                              params={"identity": "email:" + identities[0]["value"]})
            self.summary.vip_id = found["items"][0]["id"] if found["items"] else None
        else:
            raise DemoError(f"creating the VIP answered {response.status_code}: "
                            f"{response.text[:300]}")

    # payloads

    def email_fields(self, sender: str, name: str, subject: str, text: str) -> dict:
        return {"from": formataddr((name, sender)), "subject": subject, "text": text,
                "message_id": f"<{self.uid(length=16)}@mail.example>",
                "date": formatdate(usegmt=True)}

    def postmark(self, sender: str, name: str, subject: str, text: str) -> None:
        mail = self.email_fields(sender, name, subject, text)
        self.deliver("postmark", {
            "FromName": name, "From": sender, "FromFull": {"Email": sender, "Name": name},
            "To": "support@acme.example", "Subject": subject, "MessageID": self.uid("pm-", 24),
            "Date": mail["date"], "TextBody": text, "StrippedTextReply": text,
            "HtmlBody": f"<p>{text}</p>", "MailboxHash": "", "MessageStream": "inbound",
            "Headers": [{"Name": "Message-ID", "Value": mail["message_id"]}],
            "Attachments": []})

    def mailgun(self, sender: str, name: str, subject: str, text: str) -> None:
        mail = self.email_fields(sender, name, subject, text)
        self.deliver("mailgun", [
            ("recipient", "vip@mg.acme.example"), ("sender", sender), ("from", mail["from"]),
            ("subject", subject), ("body-plain", text), ("stripped-text", text),
            ("Message-Id", mail["message_id"]), ("Date", mail["date"]),
            ("To", "vip@mg.acme.example")])

    def sendgrid(self, sender: str, name: str, subject: str, text: str) -> None:
        mail = self.email_fields(sender, name, subject, text)
        headers = (f"From: {mail['from']}\nTo: billing@acme.example\nSubject: {subject}\n"
                   f"Date: {mail['date']}\nMessage-ID: {mail['message_id']}\n")
        self.deliver("sendgrid", [("headers", headers), ("from", mail["from"]),
                                  ("to", "billing@acme.example"), ("subject", subject),
                                  ("text", text), ("charsets", '{"text": "UTF-8"}')])

    def raw_email(self, sender: str, name: str, subject: str, text: str) -> None:
        mail = self.email_fields(sender, name, subject, text)
        message = EmailMessage()
        message["From"], message["To"] = mail["from"], "returns@acme.example"
        message["Subject"], message["Date"] = subject, mail["date"]
        message["Message-ID"] = mail["message_id"]
        message.set_content(text)
        self.deliver("raw_mime", message.as_bytes())

    def twilio_message(self, name: str, phone: str, text: str, profile: str = "") -> None:
        whatsapp = self.channels[name].kind == "whatsapp"
        prefix = "whatsapp:" if whatsapp else ""
        params = {"MessageSid": self.uid("SM"), "AccountSid": ACCOUNT_SID,
                  "From": prefix + phone, "To": prefix + TWILIO_NUMBER, "Body": text,
                  "NumMedia": "0", "NumSegments": "1", "SmsStatus": "received",
                  "ApiVersion": "2010-04-01"}
        if whatsapp:
            params.update(ProfileName=profile, WaId=phone.lstrip("+"))
        params["SmsSid"] = params["SmsMessageSid"] = params["MessageSid"]
        self.deliver(name, params)

    def meta_whatsapp(self, phone: str, name: str, text: str) -> None:
        wa_id = phone.lstrip("+")
        self.deliver("whatsapp", {"object": "whatsapp_business_account", "entry": [{
            "id": "102290129340398", "changes": [{"field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550783881",
                             "phone_number_id": "106540352242922"},
                "contacts": [{"profile": {"name": name}, "wa_id": wa_id}],
                "messages": [{"from": wa_id, "id": "wamid." + self.uid(length=40),
                              "timestamp": str(int(time.time())), "type": "text",
                              "text": {"body": text}}]}}]}]})

    def meta_messaging(self, name: str, sender_id: str, text: str) -> None:
        page = {"messenger": ("page", "104729385512"),
                "instagram": ("instagram", "17841405309211844")}[name]
        now = int(time.time() * 1000)
        self.deliver(name, {"object": page[0], "entry": [{"id": page[1], "time": now,
                                                          "messaging": [{
            "sender": {"id": sender_id}, "recipient": {"id": page[1]}, "timestamp": now,
            "message": {"mid": "m_" + self.uid(length=40), "text": text}}]}]})

    def telegram(self, user_id: int, first: str, last: str, text: str) -> None:
        user = {"id": user_id, "is_bot": False, "first_name": first, "last_name": last,
                "language_code": "en"}
        self.deliver("telegram", {"update_id": int(self.uid(length=7), 16), "message": {
            "message_id": int(self.uid(length=5), 16), "date": int(time.time()), "from": user,
            "chat": {"id": user_id, "type": "private", "first_name": first}, "text": text}})

    def x_dm(self, sender_id: str, name: str, handle: str, text: str) -> None:
        self.deliver("x", {"for_user_id": "2244994945", "direct_message_events": [{
            "type": "message_create", "id": str(int(self.uid(length=15), 16)),
            "created_timestamp": str(int(time.time() * 1000)),
            "message_create": {"target": {"recipient_id": "2244994945"},
                               "sender_id": sender_id, "message_data": {"text": text}}}],
            "users": {sender_id: {"id": sender_id, "name": name, "screen_name": handle}}})

    def api_message(self, customer: dict, text: str) -> None:
        self.deliver("api", {"event_id": self.uid("evt-", 16), "type": "message",
                             "customer": customer,
                             "message": {"id": self.uid("crm-", 16), "text": text}})

    def chat(self, name: str, email: str, lines: list[str]) -> None:
        started = self._call("POST", f"/api/v1/chat/{self.channels['chat'].key}/sessions",
                             json={"name": name, "email": email}, headers={"Authorization": None})
        if started.status_code != 201:
            self.summary.refused.append(f"chat session: {started.status_code}")
            return
        session = started.json()
        for index, line in enumerate(lines):
            said = self._call("POST", f"/api/v1/chat/sessions/{session['session_id']}/messages",
                              headers={"Authorization": f"Bearer {session['visitor_token']}"},
                              json={"text": line, "client_message_id": f"demo-{index}"})
            self.summary.chat_messages += 1
            if said.status_code not in (200, 201):
                self.summary.refused.append(f"chat message: {said.status_code}")
            if self.pace:
                time.sleep(self.pace)

    def call(self, phone: str, callbacks: list[tuple[str, dict]]) -> None:
        """One phone call: its Twilio callbacks in order, each to the URL our TwiML names."""
        base = {"AccountSid": ACCOUNT_SID, "CallSid": self.uid("CA"), "From": phone,
                "Caller": phone, "To": TWILIO_NUMBER, "Called": TWILIO_NUMBER,
                "Direction": "inbound", "ApiVersion": "2010-04-01"}
        for query, params in callbacks:
            self.deliver("voice", {**base, **params}, query)

    # the story

    def traffic(self) -> None:
        vip_email, vip_phone = "victoria.sterling@sterling-holdings.example", "+14155550147"
        self.postmark("ana.lima@example.com", "Ana Lima", "Order #48213 never arrived",
                      "Hi, my order #48213 was due last Tuesday and tracking hasn't moved "
                      "in a week. Can you check where it is?")
        self.mailgun(vip_email, "Victoria Sterling", "Third outage this month - UNACCEPTABLE",
                     "This is completely unacceptable. Our dashboard is down AGAIN, the third "
                     "outage this month, and nobody has called me back. Fix it immediately "
                     "or I am cancelling our enterprise contract and talking to our lawyer.")
        self.chat("Ana Lima", "ana.lima@example.com",
                  ["Hi! I emailed about order #48213 this morning.",
                   "Is there any way to get it before the weekend?"])
        self.twilio_message("sms", vip_phone, "Still down. Call me NOW. - V. Sterling")
        self.meta_whatsapp("+447700900123", "Tom Becker",
                           "Hi, does the X200 espresso machine come in black?")
        self.twilio_message("twilio_whatsapp", "+447700900123",
                            "Sorry, me again: also, is the warranty 2 years?", "Tom Becker")
        self.call("+393471234567", [
            ("", {"CallStatus": "ringing"}),
            ("event=recording", {"CallStatus": "completed", "RecordingSid": self.uid("RE"),
                                 "RecordingUrl": "https://api.twilio.com/2010-04-01/Accounts/"
                                 f"{ACCOUNT_SID}/Recordings/RE-demo", "RecordingDuration": "19",
                                 "RecordingStatus": "completed"}),
            ("event=transcription", {"CallStatus": "completed", "TranscriptionSid":
                                     self.uid("TR"), "TranscriptionStatus": "completed",
                                     "TranscriptionText": "Hi, this is Marco Rossi. My router "
                                     "keeps dropping the connection every evening. Please "
                                     "call me back on this number. Thanks."}),
            ("", {"CallStatus": "completed", "CallDuration": "31", "SequenceNumber": "3",
                  "CallbackSource": "call-progress-events"})])
        self.call("+12065550188", [
            ("", {"CallStatus": "ringing"}),
            ("event=enqueue", {"CallStatus": "in-progress", "QueueResult": "hangup",
                               "QueueSid": self.uid("QU"), "QueueTime": "48"}),
            ("", {"CallStatus": "completed", "CallDuration": "50", "SequenceNumber": "3",
                  "CallbackSource": "call-progress-events"})])
        self.meta_messaging("messenger", "6723451109847712",
                            "My discount code SPRING20 says it's invalid at checkout :(")
        self.meta_messaging("instagram", "17902113845532981",
                            "Is the linen shirt in size M back in stock?")
        self.telegram(418265093, "Dmitri", "Volkov", "Hello! How do I reset my password? "
                      "The reset email never arrives.")
        self.x_dm("3001969357", "Jordan Brinks", "furiouscamper",
                  "Your app crashes every time I try to log in since the last update.")
        self.sendgrid("lea.muller@example.de", "Lea Müller", "Invoice copy for March",
                      "Hello, could you send me a copy of the March invoice (INV-2291)?")
        self.raw_email("jonas.berg@example.se", "Jonas Berg", "Return label please",
                       "I'd like to return the blue jacket from order #47730. "
                       "Could you send a return label?")
        self.api_message({"name": "Grace Okafor", "email": "grace.okafor@example.com",
                          "phone": "+2348031234567", "external_id": "crm-10442"},
                         "Requested cancellation of subscription SUB-10442 via the CRM.")
        self.twilio_message("sms", "+2348031234567",
                            "Hi, I asked to cancel my subscription yesterday - "
                            "please confirm it won't renew.")

    def run(self) -> Summary:
        self.create_channels()
        self.create_vip()
        self.echo("Sending signed traffic through every channel…")
        self.traffic()
        self.report()
        return self.summary

    def report(self) -> None:
        s, url = self.summary, self.base_url
        self.echo(f"Demo traffic sent to {url} (run {self.run_id}):")
        self.echo(f"  {len(s.channels)} channels created: " + ", ".join(
            f"{c.provider}/{c.kind}" for c in s.channels))
        self.echo(f"  {s.deliveries} signed webhook deliveries and {s.chat_messages} chat "
                  f"messages sent; {len(s.refused)} refused")
        for problem in s.refused:
            self.echo(f"    refused: {problem}")
        self.echo("Where to look (with your token as Authorization: Bearer …):")
        self.echo(f"  {url}/api/v1/queue                  the queue, most urgent first")
        if s.vip_id:
            self.echo(f"  {url}/api/v1/customers/{s.vip_id}/timeline  "
                      "the angry VIP on email and SMS")
        self.echo(f"  {url}/api/v1/deliveries              every delivery and its status")
        self.echo("  Socket.IO namespace /agents, auth={\"token\": …}: ticket.created, "
                  "message.created, queue.updated as the workers go")


def run_demo(base_url: str, token: str, pace: float = 0.0,
             echo: Callable[[str], Any] = print) -> Summary:
    """Create the demo's channels and VIP, send its traffic, print where to look."""
    if not token:
        raise DemoError("an admin API token is required (--token or HELPDESK_TOKEN)")
    return Demo(base_url, token, pace, echo).run()
