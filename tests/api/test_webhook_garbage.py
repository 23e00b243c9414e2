"""A garbage corpus for every webhook provider (issue 12 "Prove it").

Truncated bodies, wrong types at every depth, 400-digit numbers, deep nesting, NUL, lone
surrogates, invalid UTF-8 and oversized fields, each sent signed and unsigned over real HTTP:
never a 5xx; nothing stored on a bad signature; what a verified sender stored ends, after a
real worker ran, processed or `failed` with a readable error, never stuck or crashed.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlencode

import pytest
from sqlalchemy import select

from helpdesk.connectors.api import sign
from helpdesk.connectors.base import hmac_hex
from helpdesk.extensions import db
from helpdesk.models import Delivery
from tests.support import factories
from tests.support.payloads import corruptions, junk_bodies, sample
from tests.support.signing import (
    BOUNDARY,
    FORM,
    JSON,
    Webhooks,
    basic_auth,
    form_pairs,
    hub_signature,
    mailgun_form,
    multipart,
    x_signature,
)

RNG_SEED = 12
HUGE = "9" * 400
BIG = "x" * 200_000
BAD_STRINGS = ["a\x00b", "\ud800", HUGE, BIG, ""]
AUTH = ("inbound", "s3cret-pass")
MAILGUN_KEY = "key-garbage"
TWILIO = {"account_sid": "AC1", "phone_number": "+13456789012"}


def json_garbage(body: bytes, count: int = 40) -> list[bytes]:
    """Junk, a sample of one-value corruptions, and hostile strings/numbers at every leaf."""
    rng = random.Random(RNG_SEED)
    corrupted = list(corruptions(body))
    bodies = junk_bodies() + rng.sample(corrupted, min(count, len(corrupted)))
    bodies += [body[: len(body) // 2], body[:-1], body.replace(b'"', b"'", 3)]
    text = body.decode()
    bodies += [text.replace('"', '"\\u0000', 2).encode(), text.replace('": "', '": "\\ud800', 3)
               .encode(), text.replace('": "', '": ' + HUGE + ', "_x": "', 2).encode(),
               text.encode() + b"\xff\xfe", text.replace('": "', '": "' + BIG, 1).encode(),
               text.replace('": "', '": NaN, "_x": "', 2).encode(),
               text.replace('": "', '": 1e999, "_x": "', 2).encode()]
    return bodies


def form_garbage(body: bytes) -> list[bytes]:
    """Each field swapped for hostile values, plus truncation and junk."""
    pairs = form_pairs(body)
    bodies = [b"", body[: len(body) // 2], body + b"&%ZZ=%", bytes(range(256))]
    for index, (name, _value) in enumerate(pairs):
        for bad in BAD_STRINGS[:4]:
            changed = list(pairs)
            changed[index] = (name, bad)
            bodies.append(urlencode(changed, encoding="utf-8", errors="surrogatepass").encode())
    bodies.append(body.replace(b"=", b"=%ED%A0%80", 3))  # an encoded lone surrogate
    return bodies


def mime_garbage(mail: bytes) -> list[bytes]:
    nested = b"".join(b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
                      for i in range(300))
    return junk_bodies() + [
        mail[: len(mail) // 2], mail.replace(b"Subject:", b"Subject: \x00\xff\xfe", 1),
        b"Message-ID: <\x00" + b"x" * 400 + b">\r\n" + mail,
        b"Content-Type: text/plain; charset=" + b"z" * 300 + b"\r\n\r\nhi",
        b"Date: " + HUGE.encode() + b"\r\nFrom: a@b\r\n\r\nhi", b"From: a@b\r\n" + nested,
        b"From: " + b"<" * 5000 + b"\r\n\r\nhi"]


@dataclass
class Provider:
    provider: str
    kind: str
    settings: dict
    secrets: dict
    send: Callable  # (hooks, channel, body, signed) -> Response
    bodies: Callable[[], list[bytes]]
    verified_bad_is_400: bool = False  # our own format answers 400 instead of quarantining


def _json(headers_for: Callable[[bytes, bool], dict]) -> Callable:
    def send(hooks, channel, body, signed):
        return hooks.post(channel, body, JSON, headers_for(body, signed))
    return send


def _api(hooks, channel, body, signed):
    stamp = str(int(time.time()))
    return hooks.post(channel, body, JSON, {"X-Helpdesk-Timestamp": stamp,
                                            "X-Helpdesk-Signature": sign(
                                                "s3cret" if signed else "nope", stamp, body)})


def _raw_mime(hooks, channel, body, signed):
    signature = "sha256=" + hmac_hex("mime-secret" if signed else "nope", body)
    return hooks.post(channel, body, "message/rfc822", {"X-Helpdesk-Signature": signature})


def _basic(content_type: str) -> Callable:
    def send(hooks, channel, body, signed):
        password = AUTH[1] if signed else "wrong"
        return hooks.post(channel, body, content_type,
                          {"Authorization": basic_auth(AUTH[0], password)})
    return send


def _mailgun(hooks, channel, body, signed):
    pairs = form_pairs(body) if body else [("junk", body.decode("latin-1"))]
    signed_body = mailgun_form(pairs, MAILGUN_KEY if signed else "nope")
    return hooks.post(channel, body + b"&" + signed_body if signed else signed_body, FORM)


def _twilio(hooks, channel, body, signed):
    return hooks.twilio(channel, body, "tw-token" if signed else "nope")


def _sendgrid_bodies() -> list[bytes]:
    fields = json.loads(sample("sendgrid", "default_fields.json"))
    bodies = [b"", b"--" + BOUNDARY.encode() + b"\r\nbroken", bytes(range(256))]
    for index, (name, _value) in enumerate(fields):
        for bad in BAD_STRINGS[:4]:
            changed = [(n, v) for n, v in fields]
            changed[index] = (name, bad.encode("utf-8", "surrogatepass"))
            bodies.append(multipart(changed))
    return bodies


def _mailgun_bodies() -> list[bytes]:
    fields = json.loads(sample("mailgun", "parsed_forward.json"))[:12]
    base = urlencode([(k, v if isinstance(v, str) else json.dumps(v)) for k, v in fields])
    return form_garbage(base.encode())


def _api_message() -> bytes:
    return json.dumps({"event_id": "e1", "type": "message",
                       "customer": {"name": "Ana", "email": "ana@example.com"},
                       "message": {"id": "m1", "text": "hi", "attachments": [
                           {"url": "https://cdn.example/a.pdf", "size": 3}]}}).encode()


MAIL = (b"From: Ana <ana@example.com>\r\nTo: help@example.com\r\nSubject: Hi\r\n"
        b"Message-ID: <m1@example.com>\r\nDate: Tue, 1 Dec 2026 10:00:00 +0000\r\n\r\nHello\r\n")
META = {"app_secret": "meta-secret", "verify_token": "v", "access_token": "t"}
PROVIDERS = {
    "api": Provider("api", "api", {}, {"signing_secret": "s3cret"}, _api,
                    lambda: json_garbage(_api_message()), verified_bad_is_400=True),
    "raw_mime": Provider("raw_mime", "email", {}, {"signing_secret": "mime-secret"}, _raw_mime,
                         lambda: mime_garbage(MAIL)),
    "postmark": Provider("postmark", "email", {}, dict(zip(
        ("basic_auth_user", "basic_auth_password"), AUTH, strict=True)), _basic(JSON),
        lambda: json_garbage(sample("postmark", "inbound.json"))),
    "sendgrid": Provider("sendgrid", "email", {}, dict(zip(
        ("basic_auth_user", "basic_auth_password"), AUTH, strict=True)),
        _basic(f"multipart/form-data; boundary={BOUNDARY}"), _sendgrid_bodies),
    "mailgun": Provider("mailgun", "email", {}, {"signing_key": MAILGUN_KEY}, _mailgun,
                        _mailgun_bodies),
    "twilio-sms": Provider("twilio", "sms", TWILIO, {"auth_token": "tw-token"}, _twilio,
                           lambda: form_garbage(sample("twilio", "sms.txt"))),
    "twilio-voice": Provider("twilio", "voice", TWILIO, {"auth_token": "tw-token"}, _twilio,
                             lambda: form_garbage(sample("twilio", "voice_incoming.txt")) +
                             form_garbage(sample("twilio", "voice_status_completed.txt"))),
    "meta": Provider("meta", "whatsapp", {"phone_number_id": "106540352242922"}, META,
                     _json(lambda body, signed: {"X-Hub-Signature-256": hub_signature(
                         "meta-secret" if signed else "nope", body)}),
                     lambda: json_garbage(sample("meta", "whatsapp_text.json"))),
    "telegram": Provider("telegram", "telegram", {}, {"secret_token": "tg", "bot_token": "1:A"},
                         _json(lambda body, signed: {
                             "X-Telegram-Bot-Api-Secret-Token": "tg" if signed else "gt"}),
                         lambda: json_garbage(sample("telegram", "message.json"))),
    "x": Provider("x", "x", {"user_id": "4337869213"}, {"consumer_secret": "xs",
                                                          "access_token": "t"},
                  _json(lambda body, signed: {"x-twitter-webhooks-signature": x_signature(
                      "xs" if signed else "no", body)}),
                  lambda: json_garbage(sample("x", "dm.json"))),
}


def stored(app) -> list[Delivery]:
    with app.app_context():
        rows = db.session.execute(select(Delivery)).scalars().all()
        db.session.expunge_all()
        return rows


def _sent(hooks, provider: Provider, channel, signed: bool) -> Iterator[tuple[bytes, int]]:
    for body in provider.bodies():
        response = provider.send(hooks, channel, body, signed)
        assert response.status_code < 500, (body[:200], response.text[:300])
        yield body, response.status_code


@pytest.mark.parametrize("name", list(PROVIDERS))
def test_unsigned_garbage_is_refused_and_nothing_stored(app, api, name):
    provider = PROVIDERS[name]
    channel = factories.channel(app, provider.provider, provider.kind, provider.settings,
                                provider.secrets)
    statuses = {status for _body, status in _sent(Webhooks(api.base_url), provider, channel,
                                                  signed=False)}
    assert statuses <= {401, 413, 415}, statuses
    assert stored(app) == []


@pytest.mark.parametrize("name", list(PROVIDERS))
def test_signed_garbage_never_5xx_and_fails_readably(app, api, drain, name):
    provider = PROVIDERS[name]
    channel = factories.channel(app, provider.provider, provider.kind, provider.settings,
                                provider.secrets)
    statuses = [status for _body, status in _sent(Webhooks(api.base_url), provider, channel,
                                                  signed=True)]
    allowed = {200, 401, 413, 415} | ({400} if provider.verified_bad_is_400 else set())
    assert set(statuses) <= allowed, statuses
    drain()
    drain()  # a retry of what failed at its first attempt
    deliveries = stored(app)
    assert len(deliveries) >= (1 if 200 in statuses and not provider.verified_bad_is_400
                               else 0)
    for delivery in deliveries:
        assert delivery.status in ("processed", "duplicate", "failed"), (
            delivery.id, delivery.status, delivery.body[:200])
        if delivery.status == "failed":
            assert delivery.error and "[SQL" not in delivery.error, delivery.error
    if not provider.verified_bad_is_400:
        assert any(d.status == "failed" for d in deliveries)
