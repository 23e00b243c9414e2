"""Twilio Voice callbacks as `CallEvent`s, and the TwiML that answers an incoming call.

The incoming call, call status callbacks, the `<Enqueue>` and `<Record>` actions, recording
status and transcription callbacks all reach the channel's one URL (API.md "Voice"). The
TwiML we return adds `?event=...` to that URL for its callbacks, but a callback is told apart
by its parameters, which Twilio documents, not by our query string.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from xml.sax.saxutils import escape, quoteattr

from helpdesk.connectors.base import CALL_STATUS_RANK, CallEvent, IdentityRef, PayloadError
from helpdesk.connectors.payload import MAX_INTEGER

QUEUE_NAME = "support"
HOLD_MUSIC_URL = "https://twimlets.com/holdmusic?Bucket=com.twilio.music.classical"
VOICEMAIL_PROMPT = ("Sorry, all our agents are away right now. "
                    "Please leave a message after the tone and we will call you back.")
VOICEMAIL_MAX_SECONDS = 120  # Twilio transcribes recordings up to two minutes
_XML = '<?xml version="1.0" encoding="UTF-8"?>'
EMPTY_TWIML = _XML + "<Response/>"
# Caller ids that mean "withheld", not a customer's number.
_WITHHELD = frozenset({"anonymous", "restricted", "unknown", "private", "+266696687"})
_MISSED = frozenset({"busy", "failed", "no-answer", "canceled"})
_AGENT_CLIENT = re.compile(r"^client:agent-(\d{1,19})$")

_QUEUE_OUTCOMES = {"bridged": "answered", "redirected-from-bridged": "answered",
                   "hangup": "abandoned"}


def agent_leg(params: Mapping[str, str]) -> int | None:
    """The agent id when this call is an agent's softphone (`client:agent-<id>`) leg."""
    match = _AGENT_CLIENT.match((params.get("From") or "").strip())
    return (_int(match.group(1)) or 0) if match else None  # 0: no agent has that id


def call_kind(params: Mapping[str, str]) -> str:
    """Which callback this is, from the parameters Twilio sends with each."""
    if agent_leg(params) is not None:
        return "agent_leg"
    if params.get("ParentCallSid") and (params.get("Direction") or "") == "outbound-dial":
        return "child_leg"  # a leg a <Dial> placed for a call we know by its parent's sid
    if params.get("DequeingCallSid"):
        return "dequeue"
    if params.get("TranscriptionSid"):
        return "transcription"
    if params.get("QueueResult"):
        return "enqueue_result"
    if params.get("DialCallStatus"):
        return "dial_result"
    if params.get("CallbackSource") or params.get("SequenceNumber"):
        return "status"
    if params.get("RecordingSid") or params.get("RecordingUrl"):
        return "recording"
    call_status = params.get("CallStatus") or ""
    if call_status in ("ringing", "queued") or not (call_status or params.get("CallDuration")):
        return "incoming"  # (Twilio says `ringing`; a hand-made request may say nothing)
    return "status"


def dedupe_key(params: Mapping[str, str]) -> str:
    """Transcription, recording (+ status), else the call + sequence or status + kind."""
    call_sid = _required(params, "CallSid")
    kind = call_kind(params)
    if kind == "transcription":
        return f"transcription:{params['TranscriptionSid']}"
    if kind == "recording" and params.get("RecordingSid"):
        return f"recording:{params['RecordingSid']}:{params.get('RecordingStatus') or ''}"
    if params.get("SequenceNumber"):
        return f"call:{call_sid}:seq:{params['SequenceNumber']}"
    return f"call:{call_sid}:{params.get('CallStatus') or ''}:{kind}"


def call_event(params: Mapping[str, str], query: Mapping[str, str] | None = None) -> CallEvent:
    """One voice callback as a `CallEvent` (`query`: the parameters of our own callback URL)."""
    kind = call_kind(params)
    status = _word(params, "CallStatus", 20)
    outbound = (params.get("Direction") or "").startswith("outbound")
    return CallEvent(
        external_id=_required(params, "CallSid"),
        kind=kind,
        identities=_caller(params.get("To" if outbound else "From")),
        sender_name=params.get("CallerName") or None,
        # ("" when the callback does not say: a recording's or transcription's)
        direction=("outbound" if outbound else "inbound") if params.get("Direction") else "",
        status=status,
        sequence=_int(params.get("SequenceNumber")),
        rank=CALL_STATUS_RANK.get(status or ""),
        outcome=_outcome(kind, params),
        queue_result=_word(params, "QueueResult", 40),
        dial_status=_word(params, "DialCallStatus", 20),
        wait_seconds=_int(params.get("QueueTime")),
        call_duration=_int(params.get("CallDuration")),
        dial_call_duration=_int(params.get("DialCallDuration")),
        recording_url=(params.get("RecordingUrl") or None) if _voicemail(params) else None,
        recording_sid=params.get("RecordingSid") or None,
        transcript=params.get("TranscriptionText") if kind == "transcription" else None,
        transcription_sid=params.get("TranscriptionSid") or None,
        agent_id=_int((query or {}).get("agent")) if kind == "dequeue" else None,
        at=_time(params.get("Timestamp")),
    )


def _outcome(kind: str, params: Mapping[str, str]) -> str | None:
    """The call's outcome when this callback alone decides it (API.md "Voice"), else None."""
    if kind == "enqueue_result":
        return _QUEUE_OUTCOMES.get(params.get("QueueResult") or "")
    if kind == "dial_result":
        return "answered" if params.get("DialCallStatus") in ("completed", "answered") else None
    if kind == "recording":
        return "voicemail" if _voicemail(params) and params.get("RecordingUrl") else None
    if kind == "transcription":
        return "voicemail"
    if kind == "status" and params.get("CallStatus") in _MISSED:
        return "missed"  # ended before our TwiML ran, so before it was queued
    return None


def _voicemail(params: Mapping[str, str]) -> bool:
    """A recording our `<Record>` made (a `<Record action>` or transcription callback names no
    source) with sound in it; not one the account makes of every call (its wait in the
    queue: an abandoned call counted as a voicemail) or of a `<Dial>`."""
    ours = (params.get("RecordingSource") or "RecordVerb") == "RecordVerb"
    return ours and _usable(params)


def _usable(params: Mapping[str, str]) -> bool:
    """A recording with sound in it: not `absent` (the caller said nothing) nor `failed`; a
    `<Record action>` callback carries no status."""
    return params.get("RecordingStatus") not in ("absent", "failed")


def _required(params: Mapping[str, str], name: str) -> str:
    value = params.get(name)
    if not value:
        raise PayloadError(f"{name} is required")
    return value


def _caller(number: str | None) -> list[IdentityRef]:
    number = (number or "").strip()
    if not number or number.lower() in _WITHHELD or ":" in number:  # client:…, sip:…
        return []
    return [IdentityRef("phone", number)]


def _word(params: Mapping[str, str], name: str, longest: int) -> str | None:
    """One of Twilio's status words, as its column holds it (Twilio's are shorter; a value
    that is not one of them is cut, not allowed to lose the call on PostgreSQL)."""
    return (params.get(name) or "")[:longest] or None


def _int(value: str | None) -> int | None:
    """A count Twilio gives (a sequence number, seconds, an agent id); None when it is not
    one an integer column holds (a made-up 10**22 failed the delivery)."""
    try:
        number = int(value) if value not in (None, "") else None
    except ValueError:
        return None
    return number if number is None or 0 <= number <= MAX_INTEGER else None


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).astimezone(UTC)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def callback_url(url: str, event: str) -> str:
    """The channel's webhook URL (path and key kept) with `event` set in its query."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "event"]
    return urlunsplit(parts._replace(query=urlencode(query + [("event", event)]), fragment=""))


def agent_twiml(url: str, agent_id: int) -> str:
    """An agent's softphone dials in: connect it to the next caller in the queue."""
    dequeued = callback_url(url, "dequeue") + f"&agent={agent_id}"
    return (f"{_XML}<Response><Dial><Queue url={quoteattr(dequeued)} method=\"POST\">"
            f"{QUEUE_NAME}</Queue></Dial></Response>")


def incoming_twiml(url: str, agents_online: bool) -> str:
    """Queue the caller for an agent, or take a voicemail when nobody is online."""
    if agents_online:
        return (f'{_XML}<Response><Enqueue action={quoteattr(callback_url(url, "enqueue"))}'
                f' method="POST" waitUrl={quoteattr(HOLD_MUSIC_URL)} waitUrlMethod="GET">'
                f"{QUEUE_NAME}</Enqueue></Response>")
    record = (f'<Record action={quoteattr(callback_url(url, "recording"))} method="POST"'
              f' maxLength="{VOICEMAIL_MAX_SECONDS}" playBeep="true" transcribe="true"'
              f' transcribeCallback={quoteattr(callback_url(url, "transcription"))}'
              f' recordingStatusCallback={quoteattr(callback_url(url, "recording_status"))}/>')
    return f"{_XML}<Response><Say>{escape(VOICEMAIL_PROMPT)}</Say>{record}</Response>"
