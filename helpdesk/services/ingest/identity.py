"""Identities: normalize how a channel names a person, and find or create the customer."""

from __future__ import annotations

from functools import lru_cache

import phonenumbers
from sqlalchemy import and_, or_, select, text, tuple_
from sqlalchemy.exc import IntegrityError

from helpdesk.connectors.base import IdentityRef
from helpdesk.extensions import db
from helpdesk.models import IDENTITY_KINDS, Customer, Identity
from helpdesk.services.ingest import batch_state


class InvalidIdentity(ValueError):
    """An identity value that cannot be normalized (not an email, not a phone number)."""


_SEPARATORS = str.maketrans("", "", " -.()")


@lru_cache(maxsize=8192)
def normalize_phone(value: str) -> str:
    """E.164 (cached: a batch normalizes each sender's number when it loads the batch,
    resolves the customer and records where the message came from)."""
    raw = value.strip()
    if raw.lower().startswith("whatsapp:"):
        raw = raw.split(":", 1)[1]
    if raw.lower().startswith("tel:"):
        raw = raw[4:]
    digits = raw.translate(_SEPARATORS)
    if digits.startswith("00") and digits.isdigit():
        raw = "+" + digits[2:]  # the international prefix written as 00 (0034 600…)
    elif raw and raw[0].isdigit() and raw.replace(" ", "").isdigit():
        # WhatsApp wa_id and Twilio numbers without the plus sign (digits only: a national
        # number written 600-000-000 is refused rather than read as another country's)
        raw = "+" + raw
    try:
        number = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException as exc:
        raise InvalidIdentity(f"not a phone number: {value!r}") from exc
    if not phonenumbers.is_possible_number(number):
        number = _mexican_mobile(number)  # (WhatsApp ids: the one the numbering plan lost)
    if number is None or not phonenumbers.is_possible_number(number):
        raise InvalidIdentity(f"not a phone number: {value!r}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _mexican_mobile(number: phonenumbers.PhoneNumber) -> phonenumbers.PhoneNumber | None:
    """Mexico dropped the `1` its mobile numbers took after the country code (2019), and
    WhatsApp ids still carry it (521 + ten digits): the same number as 52 + the ten digits
    (one person for WhatsApp, SMS and calls). Such an id failed its whole delivery."""
    national = str(number.national_number)
    if number.country_code != 52 or len(national) != 11 or not national.startswith("1"):
        return None
    return phonenumbers.parse(f"+52{national[1:]}", None)


MAX_IDENTITY = 320  # identities.value
MAX_NAME = 200  # customers.name


def normalize_email(value: str) -> str:
    email = value.strip().strip("<>").lower()
    local, _, domain = email.rpartition("@")
    if not local or not domain or " " in email or len(email) > MAX_IDENTITY:
        raise InvalidIdentity(f"not an email address: {value!r}")
    return email


def normalize(kind: str, value: str) -> str:
    """The canonical form of an identity value; raise InvalidIdentity when there is none
    (a value longer than the column holds included: no provider's id or address is)."""
    if kind not in IDENTITY_KINDS:
        raise InvalidIdentity(f"unknown identity kind: {kind!r}")
    if kind == "email":
        return normalize_email(value)
    if kind == "phone":
        return normalize_phone(value)
    cleaned = str(value).strip()
    if not cleaned:
        raise InvalidIdentity(f"empty {kind} identity")
    if len(cleaned) > MAX_IDENTITY:
        raise InvalidIdentity(f"a {kind} identity longer than {MAX_IDENTITY} characters")
    return cleaned


# The identity kind a channel's replies are addressed to (what an inbound message's `sender`
# holds): an email address, a phone number for SMS, WhatsApp and calls, a platform's user id.
REPLY_KINDS = {"email": "email", "sms": "phone", "whatsapp": "phone", "voice": "phone",
               "messenger": "messenger", "instagram": "instagram", "telegram": "telegram",
               "x": "x"}


def sender_of(channel_kind: str, refs: list[IdentityRef]) -> str | None:
    """The value of the sender's identity that replies on this channel go to, if any."""
    kind = REPLY_KINDS.get(channel_kind)
    for ref in refs:
        if ref.kind == kind:
            try:
                return normalize(kind, ref.value)
            except InvalidIdentity:
                return None
    return None


def normalize_refs(refs: list[IdentityRef]) -> list[IdentityRef]:
    """Normalized, deduplicated refs; unparseable ones are dropped."""
    seen: set[tuple[str, str]] = set()
    result = []
    for ref in refs:
        try:
            value = normalize(ref.kind, ref.value)
        except InvalidIdentity:
            continue
        if (ref.kind, value) not in seen:
            seen.add((ref.kind, value))
            result.append(IdentityRef(ref.kind, value, ref.verified))
    return result


def find_identities(refs: list[IdentityRef], *, fresh: bool = False) -> list[Identity]:
    """The stored identities among `refs`, in their order (`fresh`: ask the database even
    inside an ingest batch, and read them as last committed)."""
    if not refs:
        return []
    batch = None if fresh else batch_state.current()
    if batch is not None:
        answers = [batch.identity(ref.kind, ref.value) for ref in refs]
        if all(known for known, _ in answers):
            return [identity for _, identity in answers if identity is not None]
    keys = [(ref.kind, ref.value) for ref in refs]
    found = db.session.execute(
        select(Identity).where(tuple_(Identity.kind, Identity.value).in_(keys)),
        execution_options={"populate_existing": fresh}).scalars().all()
    order = {key: index for index, key in enumerate(keys)}
    return sorted(found, key=lambda identity: order[(identity.kind, identity.value)])


def live_customer(customer: Customer) -> Customer:
    """Follow merges to the surviving customer."""
    seen = set()
    while customer.merged_into_id and customer.id not in seen:
        seen.add(customer.id)
        customer = db.session.get(Customer, customer.merged_into_id)
    return customer


def resolve_customer(refs: list[IdentityRef], name: str | None = None, *,
                     fresh: bool = False) -> Customer:
    """The one customer these identities name, created (with its identities) when new (a
    display name is kept to the column's 200 characters: a sender's long name is no reason
    to lose their message). `fresh`: as last committed, whatever the session holds."""
    name = name[:MAX_NAME] if name else name
    refs = normalize_refs(refs)
    if not refs:
        raise InvalidIdentity("the sender has no usable identity")
    known = find_identities(refs, fresh=fresh)
    if not known:
        created = _create_customer(refs, name)
        if created is not None:
            return created
        known = find_identities(refs, fresh=True)  # a concurrent delivery created them first
    customer = live_customer(known[0].customer)
    if name and not customer.name:
        customer.name = name
    known_keys = {(identity.kind, identity.value) for identity in known}
    for ref in refs:
        if (ref.kind, ref.value) not in known_keys:
            attach_identity(customer, ref)
    return customer


def _create_customer(refs: list[IdentityRef], name: str | None) -> Customer | None:
    """The new customer of these identities; None when a concurrent transaction created
    one of them first (the caller reads them again)."""
    batch = batch_state.current()
    if batch is not None:
        return _create_in_batch(batch, refs, name)
    if _lock_identities([(ref.kind, ref.value) for ref in refs]) and find_identities(refs):
        return None
    try:
        with db.session.begin_nested():  # one flush: the customer, then its identities
            customer = Customer(name=name)
            identities = [Identity(customer=customer, kind=ref.kind, value=ref.value,
                                   verified=ref.verified) for ref in refs]
            db.session.add(customer)
    except IntegrityError:
        return None
    _remember(identities)
    return customer


def _create_in_batch(batch: batch_state.IngestBatch, refs: list[IdentityRef],
                     name: str | None) -> Customer | None:
    """A new customer in an ingest batch, or None when a concurrent transaction created one
    of these identities first (the caller reads them again): no savepoint (the batch's
    unknown identities are locked before its first customer, `_claim_unknown_identities`),
    and on PostgreSQL no flush either: its id comes from the sequence, ids for the batch's
    other unknown senders with it."""
    if not batch.identities_locked:
        if _claim_unknown_identities(batch) and find_identities(refs):
            return None
    customer = Customer(name=name)
    identities = [Identity(customer=customer, kind=ref.kind, value=ref.value,
                           verified=ref.verified) for ref in refs]
    db.session.add(customer)
    unknown = sum(1 for found in batch.identities.values() if found is None)
    if not batch_state.unflushed(customer, reserve=unknown):
        db.session.flush()  # SQLite: its id from the INSERT
    _remember(identities)
    # Needs no threading lock: no other transaction sees this customer before this one
    # commits (one creating the same identities fails on their unique index).
    batch.locked_customers.add(customer.id)
    batch.created_customers.add(customer.id)
    batch.new_customer(customer.id)
    return customer


IDENTITY_LOCK_SPACE = 0x4849  # "HI": advisory locks per identity (kind, value), hashed
_LOCK_IDENTITIES = text(
    "SELECT count(pg_advisory_xact_lock(:space, key)) FROM "
    "(SELECT DISTINCT hashtext(unnest(CAST(:keys AS text[]))) AS key ORDER BY 1) AS wanted")


def _lock_identities(keys: list[tuple[str, str]]) -> bool:
    """PostgreSQL: until this transaction ends, no other one creates a customer for these
    identities (taken in key order: two transactions cannot deadlock on them). A batch
    writes its new customers at its end, so their unique index alone would not make a
    concurrent creator wait: it would fail the whole batch. Whether the locks were taken
    (False on SQLite, whose writing transactions are serialised already)."""
    if not keys or db.session.get_bind().dialect.name != "postgresql":
        return False
    db.session.connection().execute(_LOCK_IDENTITIES, {
        "space": IDENTITY_LOCK_SPACE, "keys": sorted(f"{kind}:{value}" for kind, value in keys)})
    return True


def _claim_unknown_identities(batch: batch_state.IngestBatch) -> bool:
    """Before the batch creates its first customer: lock every identity the batch found
    unknown, then forget those a concurrent transaction created meanwhile (it held the lock
    until its commit: they are visible now), so they are read again where needed. Whether
    any was forgotten."""
    batch.identities_locked = True
    unknown = [key for key, found in batch.identities.items() if found is None]
    if not _lock_identities(unknown):
        return False
    kinds: dict[str, list[str]] = {}
    for kind, value in unknown:
        kinds.setdefault(kind, []).append(value)
    created = db.session.connection().execute(  # per kind: no row-value IN list to plan
        select(Identity.kind, Identity.value).where(or_(*(
            and_(Identity.kind == kind, Identity.value.in_(values))
            for kind, values in kinds.items())))).all()
    for key in created:
        batch.identities.pop(tuple(key), None)
    return bool(created)


def _remember(identities: list[Identity]) -> None:
    batch = batch_state.current()
    if batch is not None:
        for identity in identities:
            batch.added_identity(identity)


def attach_identity(customer: Customer, ref: IdentityRef) -> Identity | None:
    """Give `customer` this identity unless someone holds it already (a race lost: no-op)."""
    identity = Identity(customer_id=customer.id, kind=ref.kind, value=ref.value,
                        verified=ref.verified)
    try:
        with db.session.begin_nested():
            db.session.add(identity)
    except IntegrityError:
        return None
    _remember([identity])
    return identity
