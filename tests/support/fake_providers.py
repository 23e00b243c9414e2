"""Local stand-ins for the providers' send APIs and an SMTP server, for outbound tests.

`FakeProviders` is a threaded `http.server` on 127.0.0.1 speaking the Twilio Messages API,
the Graph API `/v21.0/{id}/messages`, Telegram `/bot{token}/sendMessage` and X
`/2/dm_conversations/with/{id}/messages`: it records every request and answers like the
provider, or with errors when told to. It also serves the media customers send, as the
providers do: Graph's `GET /v21.0/{media-id}` (a URL, fetched with the same token) and
Telegram's `getFile` and `/file/bot{token}/{path}` (`media` holds the bytes by id).
`SmtpServer` wraps an aiosmtpd controller.
"""

from __future__ import annotations

import base64
import itertools
import json
import logging
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

TWILIO = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Messages\.json$")
GRAPH = re.compile(r"^/v21\.0/(?P<account>[^/]+)/messages$")
TELEGRAM = re.compile(r"^/bot(?P<token>[^/]+)/sendMessage$")
X_DM = re.compile(r"^/2/dm_conversations/with/(?P<participant>[^/]+)/messages$")
CALLBACK = re.compile(r"^/callback$")
GRAPH_MEDIA = re.compile(r"^/v21\.0/(?P<media>[0-9]+)$")
GRAPH_MEDIA_BYTES = re.compile(r"^/whatsapp-media/(?P<media>[0-9]+)$")
TELEGRAM_GET_FILE = re.compile(r"^/bot(?P<token>[^/]+)/getFile\?file_id=(?P<file>[^&]+)$")
TELEGRAM_FILE = re.compile(r"^/file/bot(?P<token>[^/]+)/files/(?P<file>[^/]+)$")


@dataclass
class Recorded:
    """One request the fake received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode()))

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)

    def basic_auth(self) -> tuple[str, str] | None:
        scheme, _, encoded = (self.header("Authorization") or "").partition(" ")
        if scheme.lower() != "basic":
            return None
        user, _, password = base64.b64decode(encoded).decode().partition(":")
        return user, password


@dataclass
class Script:
    """What to answer next: `failures` requests get `failure_status`, then `status` forever."""

    failures: int = 0
    failure_status: int = 500
    status: int | None = None  # None: success
    graph_code: int | None = None  # Meta's error code in a failure (e.g. 130429, throttled)


class FakeProviders:
    """A threaded HTTP server answering like Twilio, Meta, Telegram and X."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.media: dict[str, bytes] = {}  # a media or file id -> the bytes it names
        self.script = Script()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                        daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def start(self) -> FakeProviders:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def fail(self, times: int, status: int = 500, graph_code: int | None = None) -> None:
        """Answer the next `times` requests with `status` (a provider outage); Meta's
        answers carry `graph_code` when given."""
        self.script = Script(failures=times, failure_status=status, graph_code=graph_code)

    def reject(self, status: int = 400) -> None:
        """Answer every request with `status` (the provider refuses the message)."""
        self.script = Script(status=status)

    def to(self, pattern: re.Pattern) -> list[Recorded]:
        """The recorded requests whose path matches one provider's route."""
        return [r for r in self.requests if pattern.match(r.path)]

    def handle(self, recorded: Recorded) -> tuple[int, dict]:
        """Record the request and choose the answer."""
        with self._lock:
            self.requests.append(recorded)
            status = self._next_status()
            number = next(self._ids)
            recorded.graph_code = self.script.graph_code if status else None
        for pattern, answer in ROUTES:
            match = pattern.match(recorded.path)
            if match:
                return answer(recorded, match, number, status)
        return 404, {"error": "no such route"}

    def serve_media(self, recorded: Recorded) -> tuple[int, str, bytes]:
        """GET: (status, content type, body) for the media routes."""
        with self._lock:
            self.requests.append(recorded)
            status = self._next_status()
        if status:
            return status, "application/json", b'{"error": "unavailable"}'
        bearer = recorded.header("Authorization") or ""
        if match := GRAPH_MEDIA.match(recorded.path):
            if not bearer.startswith("Bearer ") or match["media"] not in self.media:
                return 404, "application/json", b'{"error": {"code": 100}}'
            url = f"{self.url}/whatsapp-media/{match['media']}"
            return 200, "application/json", json.dumps(
                {"url": url, "id": match["media"], "messaging_product": "whatsapp"}).encode()
        if match := GRAPH_MEDIA_BYTES.match(recorded.path):
            if not bearer.startswith("Bearer "):  # (Meta's media URLs need the token too)
                return 401, "text/plain", b"unauthorized"
            return 200, "image/jpeg", self.media.get(match["media"], b"")
        if match := TELEGRAM_GET_FILE.match(recorded.path):
            if match["file"] not in self.media:
                return 400, "application/json", b'{"ok": false}'
            return 200, "application/json", json.dumps({"ok": True, "result": {
                "file_id": match["file"], "file_path": f"files/{match['file']}"}}).encode()
        if match := TELEGRAM_FILE.match(recorded.path):
            return 200, "application/octet-stream", self.media.get(match["file"], b"")
        return 404, "application/json", b'{"error": "no such route"}'

    def _next_status(self) -> int | None:
        if self.script.failures > 0:
            self.script.failures -= 1
            return self.script.failure_status
        return self.script.status


def _twilio(request: Recorded, match: re.Match, number: int,
            status: int | None) -> tuple[int, dict]:
    if status:
        code = 21211 if status == 400 else 20500
        message = ("The 'To' number is not a valid phone number." if status == 400
                   else "An internal server error has occurred")
        return status, {"code": code, "message": message, "status": status,
                        "more_info": f"https://www.twilio.com/docs/errors/{code}"}
    form = request.form()
    return 201, {"sid": f"SM{number:032x}", "status": "queued", "to": form.get("To"),
                 "from": form.get("From"), "body": form.get("Body"),
                 "account_sid": match["account"]}


def _graph(request: Recorded, match: re.Match, number: int,
           status: int | None) -> tuple[int, dict]:
    if status:
        code = getattr(request, "graph_code", None) or (131030 if status == 400 else 2)
        return status, {"error": {"message": "Recipient phone number not in allowed list"
                                  if code == 131030 else "Service temporarily unavailable",
                                  "type": "OAuthException", "code": code,
                                  "fbtrace_id": "AbCdEf"}}
    body = request.json()
    if body.get("messaging_product") == "whatsapp":
        return 200, {"messaging_product": "whatsapp",
                     "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                     "messages": [{"id": f"wamid.FAKE{number:08d}"}]}
    return 200, {"recipient_id": body["recipient"]["id"], "message_id": f"m_FAKE{number:08d}"}


def _telegram(request: Recorded, match: re.Match, number: int,
              status: int | None) -> tuple[int, dict]:
    if status:
        description = "Bad Request: chat not found" if status == 400 else "Internal Server Error"
        return status, {"ok": False, "error_code": status, "description": description}
    body = request.json()
    return 200, {"ok": True, "result": {
        "message_id": 1000 + number, "from": {"id": 42, "is_bot": True, "first_name": "Bot"},
        "chat": {"id": int(body["chat_id"]), "type": "private"}, "date": 1749416400,
        "text": body["text"]}}


def _x(request: Recorded, match: re.Match, number: int,
       status: int | None) -> tuple[int, dict]:
    if status:
        return status, {"title": "Invalid Request" if status == 400 else "Service Unavailable",
                        "detail": "You cannot send messages to this user."
                        if status == 400 else "Service Unavailable",
                        "type": "https://api.twitter.com/2/problems/invalid-request",
                        "status": status}
    return 201, {"data": {"dm_conversation_id": f"{match['participant']}-2244994945",
                          "dm_event_id": f"17{number:017d}"}}


def _callback(request: Recorded, match: re.Match, number: int,
              status: int | None) -> tuple[int, dict]:
    """An integrator's endpoint for the `api` channel's `callback_url`."""
    return (status, {"error": "refused"}) if status else (200, {"ok": True})


Answer = Callable[[Recorded, re.Match, int, "int | None"], tuple[int, dict]]
ROUTES: list[tuple[re.Pattern, Answer]] = [(TWILIO, _twilio), (GRAPH, _graph),
                                           (TELEGRAM, _telegram), (X_DM, _x),
                                           (CALLBACK, _callback)]


def _handler(fake: FakeProviders) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            length = int(self.headers.get("Content-Length") or 0)
            recorded = Recorded("POST", self.path, dict(self.headers.items()),
                                self.rfile.read(length))
            status, payload = fake.handle(recorded)
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            recorded = Recorded("GET", self.path, dict(self.headers.items()), b"")
            status, content_type, body = fake.serve_media(recorded)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the tests read `fake.requests`."""

    return Handler


@dataclass
class Mail:
    """One message the SMTP server accepted."""

    mail_from: str
    rcpt_tos: list[str]
    message: Message
    login: str | None = None


@dataclass
class SmtpServer:
    """An aiosmtpd server on a free local port, recording mail; AUTH with `user`/`password`."""

    user: str = "helpdesk"
    password: str = "smtp-pass"
    messages: list[Mail] = field(default_factory=list)
    refuse_with: str | None = None  # e.g. "550 5.1.1 mailbox unavailable"
    port: int = 0
    controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://{self.user}:{self.password}@127.0.0.1:{self.port}"

    def start(self) -> SmtpServer:
        logging.getLogger("mail.log").setLevel(logging.ERROR)  # aiosmtpd's chatter
        self.port = _free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port,
                                     auth_require_tls=False, authenticator=self._authenticate)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()

    def _authenticate(self, server, session, envelope, mechanism, data) -> AuthResult:
        ok = (isinstance(data, LoginPassword) and data.login.decode() == self.user
              and data.password.decode() == self.password)
        return AuthResult(success=ok, auth_data=data.login.decode() if ok else None)

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd)
        if self.refuse_with:
            return self.refuse_with
        self.messages.append(Mail(envelope.mail_from, list(envelope.rcpt_tos),
                                  message_from_bytes(envelope.content, policy=default_policy),
                                  session.auth_data))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
