"""Providers' webhooks over real HTTP, signed the way each provider documents it.

The signatures are written independently of the connectors (as in tests/connectors), so a
connector that verifies the wrong thing fails here too. Also a few read-backs through the REST
API that the pipeline tests share.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from urllib.parse import unquote_to_bytes, urlencode

import requests

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
BOUNDARY = "xYzZY"  # SendGrid's own


def twilio_signature(token: str, url: str, pairs: list[tuple[str, str]]) -> str:
    names = sorted({name for name, _ in pairs})
    data = url + "".join(name + value for name in names
                         for value in sorted({v for n, v in pairs if n == name}))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def mailgun_signature(key: str, timestamp: str, token: str) -> str:
    return hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()


def hub_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def x_signature(secret: str, payload: bytes) -> str:
    digest = hmac.new(secret.encode(), payload, hashlib.sha256).digest()
    return "sha256=" + base64.b64encode(digest).decode()


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def form_pairs(body: bytes) -> list[tuple[str, str]]:
    """The (name, value) pairs of an urlencoded body, as Twilio signs them (even junk)."""
    def unquote(raw: bytes) -> str:
        return unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8", "replace")

    return [(unquote(name), unquote(value)) for name, _, value in
            (piece.partition(b"=") for piece in body.split(b"&") if piece)]


def mailgun_form(pairs: list[tuple[str, str]], key: str, token: str | None = None,
                 timestamp: int | None = None) -> bytes:
    """The fields plus a fresh timestamp/token/signature, urlencoded as Mailgun posts them."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    token = token or secrets.token_hex(25)
    signed = list(pairs) + [("timestamp", stamp), ("token", token),
                            ("signature", mailgun_signature(key, stamp, token))]
    return urlencode(signed).encode()


def multipart(pairs: list[tuple[str, str | bytes]],
              files: list[tuple[str, str, str, bytes]] = ()) -> bytes:
    """A multipart/form-data body with BOUNDARY, fields as given (bytes kept as they are)."""
    def part(name: str, value: bytes, filename: str | None = None, ctype: str = "") -> bytes:
        head = f'Content-Disposition: form-data; name="{name}"'
        head += f'; filename="{filename}"' if filename else ""
        head += f"\r\nContent-Type: {ctype}" if ctype else ""
        return f"--{BOUNDARY}\r\n{head}\r\n\r\n".encode() + value + b"\r\n"

    body = b"".join(part(n, v if isinstance(v, bytes) else v.encode()) for n, v in pairs)
    body += b"".join(part(n, content, fn, ct) for n, fn, ct, content in files)
    return body + f"--{BOUNDARY}--\r\n".encode()


class Webhooks:
    """Posts to `/webhooks/<provider>/<key>` of the live server, signed per provider."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.session = requests.Session()

    def url(self, channel, query: str = "") -> str:
        url = f"{self.base_url}/webhooks/{channel.provider}/{channel.key}"
        return f"{url}?{query}" if query else url

    def post(self, channel, body: bytes, content_type: str, headers: dict | None = None,
             url: str | None = None) -> requests.Response:
        return self.session.post(url or self.url(channel), data=body, timeout=30,
                                 headers={"Content-Type": content_type, **(headers or {})})

    def get(self, channel, **query: str) -> requests.Response:
        return self.session.get(self.url(channel), params=query, timeout=30)

    def postmark(self, channel, payload: dict | bytes,
                 auth: tuple[str, str] | None = None) -> requests.Response:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        headers = {"Authorization": basic_auth(*auth)} if auth else {}
        return self.post(channel, body, JSON, headers)

    def mailgun(self, channel, body: bytes) -> requests.Response:
        return self.post(channel, body, FORM)

    def sendgrid(self, channel, body: bytes,
                 auth: tuple[str, str] | None = None) -> requests.Response:
        headers = {"Authorization": basic_auth(*auth)} if auth else {}
        return self.post(channel, body, f"multipart/form-data; boundary={BOUNDARY}", headers)

    def twilio(self, channel, params: dict | list | bytes, token: str, url: str | None = None,
               signature: str | None = None) -> requests.Response:
        """A form post signed over `url` (the channel's URL, or a TwiML callback URL)."""
        url = url or self.url(channel)
        if isinstance(params, bytes):
            body = params
        else:
            body = urlencode(list(params.items()) if isinstance(params, dict) else params).encode()
        pairs = form_pairs(body)
        sig = signature if signature is not None else twilio_signature(token, url, pairs)
        return self.post(channel, body, FORM, {"X-Twilio-Signature": sig}, url=url)

    def meta(self, channel, payload: dict | bytes, secret: str) -> requests.Response:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return self.post(channel, body, JSON, {"X-Hub-Signature-256": hub_signature(secret, body)})

    def telegram(self, channel, payload: dict | bytes, secret_token: str) -> requests.Response:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return self.post(channel, body, JSON, {"X-Telegram-Bot-Api-Secret-Token": secret_token})

    def x(self, channel, payload: dict | bytes, secret: str) -> requests.Response:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return self.post(channel, body, JSON,
                         {"x-twitter-webhooks-signature": x_signature(secret, body)})


# --- reading back through the REST API --------------------------------------------------------

def customer_with(api, identity: str) -> dict | None:
    """The customer holding `kind:value`, or None."""
    found = api.get("/api/v1/customers", params={"identity": identity}).json()
    return found["items"][0] if found["items"] else None


def tickets_of(api, customer_id: int) -> list[dict]:
    return api.get("/api/v1/tickets", params={"customer": customer_id, "per_page": 200}
                   ).json()["items"]


def messages_of(api, customer_id: int) -> list[dict]:
    """Every message of the customer's tickets, as the REST API shows them."""
    return [message for ticket in tickets_of(api, customer_id)
            for message in api.get(f"/api/v1/tickets/{ticket['id']}/messages").json()["items"]]


def timeline(api, customer_id: int) -> list[dict]:
    return api.get(f"/api/v1/customers/{customer_id}/timeline",
                   params={"per_page": 200}).json()["items"]


def deliveries(api, status: str | None = None) -> list[dict]:
    params = {"per_page": 200, **({"status": status} if status else {})}
    response = api.get("/api/v1/deliveries", params=params)
    assert response.status_code == 200, response.text
    return response.json()["items"]
