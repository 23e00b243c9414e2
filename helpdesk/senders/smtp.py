"""Email replies over SMTP (`SMTP_URL`), threaded into the customer's conversation.

Headers of every reply:
- `From`: the channel's `address` setting.
- `Message-ID`: `<helpdesk-msg-<message id>.<mark>@<domain of address>>`, stored on our
  message so the customer's answer (whose `In-Reply-To` names it) joins the same ticket. The
  mark (an HMAC of the id under the secret key, the same at every attempt): an id anyone
  could count let a stranger's mail naming it join, and reopen, another customer's ticket.
- `In-Reply-To` / `References`: the customer's last Message-ID and its references.
- `Reply-To`: the channel address plus-tagged with the ticket, `support+t42@acme.test` for
  ticket 42 on `support@acme.test`: the answer goes back to the same mailbox and still names
  the ticket when a mail client drops `In-Reply-To`.
- `Subject`: `Re: <ticket subject>`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from urllib.parse import unquote, urlsplit

from flask import current_app

from helpdesk.senders.base import Outgoing, SendError, SendResult, setting

TIMEOUT = 30
DEFAULT_PORTS = {"smtp": 25, "smtps": 465}


def our_message_id(message_id: int, address: str) -> str:
    """Our RFC Message-ID for a message, without brackets: the same at every attempt (an
    attempt that reached the customer but failed after is answered by id all the same),
    unguessable without the secret key."""
    key = str(current_app.config["SECRET_KEY"]).encode()
    mark = hmac.new(key, f"message-id:{message_id}".encode(), hashlib.sha256).digest()[:12]
    tag = base64.urlsafe_b64encode(mark).decode()
    return f"helpdesk-msg-{message_id}.{tag}@{address.rpartition('@')[2]}"


def reply_to(address: str, ticket_id: int) -> str:
    """The channel address plus-tagged with the ticket: `local+t<ticket id>@domain`."""
    local, _, domain = address.rpartition("@")
    return f"{local}+t{ticket_id}@{domain}"


def subject_of(subject: str | None) -> str:
    """`Re: <subject>`, without stacking prefixes."""
    subject = " ".join((subject or "").split()) or "Your request"  # one line, always
    return subject if subject.lower().startswith("re:") else f"Re: {subject}"


def compose(out: Outgoing, address: str, our_id: str) -> EmailMessage:
    """The reply as a plain-text email with our threading headers."""
    mail = EmailMessage()
    mail["From"] = address
    mail["To"] = out.recipient
    mail["Subject"] = subject_of(out.subject)
    mail["Date"] = formatdate(usegmt=True)
    mail["Message-ID"] = f"<{our_id}>"
    mail["Reply-To"] = reply_to(address, out.ticket_id)
    if out.in_reply_to:
        mail["In-Reply-To"] = f"<{out.in_reply_to}>"
    references = [ref for ref in out.references if ref]
    if references:
        mail["References"] = " ".join(f"<{ref}>" for ref in references)
    mail.set_content(out.text)
    return mail


def connect(url: str) -> smtplib.SMTP:
    """An SMTP session for `smtp://[user:pass@]host:port` (`smtps://`: TLS from the start)."""
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise SendError("SMTP_URL must be smtp://[user:pass@]host:port or smtps://…",
                        retryable=False)
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError:  # (its message would quote what stood in for the port: the password?)
        raise SendError("SMTP_URL's port is not a number: a password holding / ? # or @ "
                        "must be percent-encoded", retryable=False) from None
    if parts.scheme == "smtps":
        server: smtplib.SMTP = smtplib.SMTP_SSL(parts.hostname, port, timeout=TIMEOUT,
                                                context=ssl.create_default_context())
    else:
        server = smtplib.SMTP(parts.hostname, port, timeout=TIMEOUT)
        server.ehlo()
        if server.has_extn("starttls"):
            server.starttls(context=ssl.create_default_context())
            server.ehlo()
    if parts.username:
        server.login(unquote(parts.username), unquote(parts.password or ""))
    return server


def send(out: Outgoing) -> SendResult:
    """Deliver the reply to the SMTP server; our Message-ID is the external id."""
    if not out.endpoint:
        raise SendError("SMTP_URL is not set", retryable=False)
    address = setting(out, "address")
    our_id = our_message_id(out.message_id, address)
    mail = compose(out, address, our_id)
    try:
        with connect(out.endpoint) as server:
            server.send_message(mail, from_addr=address, to_addrs=[out.recipient])
    except smtplib.SMTPRecipientsRefused as exc:
        code, reason = next(iter(exc.recipients.values()), (550, b"refused"))
        raise _response_error(code, reason) from exc
    except smtplib.SMTPResponseException as exc:
        raise _response_error(exc.smtp_code, exc.smtp_error) from exc
    except smtplib.SMTPNotSupportedError as exc:
        raise SendError(f"SMTP server: {exc}", retryable=False) from exc
    except (smtplib.SMTPException, OSError) as exc:
        raise SendError(f"SMTP failed: {type(exc).__name__}") from exc
    return SendResult(external_id=our_id, message_id=our_id)


def _response_error(code: int, reason: bytes | str) -> SendError:
    """5xx answers are final, 4xx worth retrying."""
    text = reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)
    return SendError(f"SMTP {code}: {text}"[:2000], retryable=not 500 <= code < 600)
