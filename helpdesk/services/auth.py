"""Agents' credentials: passwords and bearer tokens, both stored hashed."""

from __future__ import annotations

import copy
import hashlib
import logging
import secrets
import threading
import time
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from flask import current_app
from sqlalchemy import Select, bindparam, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import instance_state, manager_of_class
from werkzeug.security import check_password_hash, generate_password_hash

from helpdesk.errors import Conflict, Invalid, NotFound, Unauthorized
from helpdesk.extensions import db
from helpdesk.models import Agent, ApiToken
from helpdesk.models.base import utcnow
from helpdesk.outbox import sockets
from helpdesk.queues import redis_connection
from helpdesk.services import audit, teams
from helpdesk.services.routing import presence
from helpdesk.services.tickets import actions as tickets
from helpdesk.transaction import after_commit, commit, listen

log = logging.getLogger(__name__)

# Compared against when the email is unknown, so both paths cost one hash check.
_DUMMY_HASH = generate_password_hash("not-a-real-password")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(agent: Agent, *, hours: float = 0) -> str:
    """Create a new API token for `agent`, valid for `hours` (0: until revoked); the plain
    token is returned once, never stored."""
    token = "hd_" + secrets.token_urlsafe(32)
    expires_at = utcnow() + timedelta(hours=hours) if hours > 0 else None
    db.session.add(ApiToken(agent_id=agent.id, token_hash=hash_token(token),
                            expires_at=expires_at))
    commit()
    return token


@cache
def _agent_by_token_hash() -> Select:
    """Built once: every authenticated request runs it."""
    return (select(Agent, ApiToken.expires_at).join(ApiToken)
            .where(ApiToken.token_hash == bindparam("token_hash"),
                   ApiToken.revoked_at.is_(None),
                   or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > bindparam("now")),
                   Agent.active.is_(True)))


def agent_for_token(token: str | None, *, fresh: bool = False) -> Agent | None:
    """The active agent this unrevoked token belongs to, else None. Answered from the
    process's token cache while the auth epoch is unchanged (see `TokenCache`); `fresh`
    asks the database whatever the cache holds."""
    found = authenticated(token, fresh=fresh)
    return None if found is None else attach(found)


def authenticated(token: str | None, *, fresh: bool = False) -> Agent | AgentColumns | None:
    """`agent_for_token`, but from the token cache as the cached columns (`AgentColumns`),
    not yet an object of the session: what a request that needs no more than them reads
    (`attach` makes the object when one is needed)."""
    if not token or not isinstance(token, str):  # (a socket's auth may hold any JSON)
        return None
    token_hash = hash_token(token)
    tokens = _token_cache()
    epoch = None if fresh else _auth_epoch()
    if epoch is not None:
        cached = tokens.get(token_hash, epoch)
        if cached is not None:
            return AgentColumns(cached)
    began = db.session().in_transaction()
    found = db.session.execute(_agent_by_token_hash(),
                               {"token_hash": token_hash, "now": utcnow()}).one_or_none()
    agent, expires_at = found if found is not None else (None, None)
    if not began:
        # The lookup's own read-only transaction ends here, with COMMIT: left open, the
        # request's teardown would end it with ROLLBACK, which psycopg 3 follows with
        # DEALLOCATE ALL, and the pooled connection would plan its statements again (the
        # claim's ten times: five before psycopg prepares it, five before PostgreSQL settles
        # on its generic plan). A claim never opens the session otherwise.
        db.session.commit()
    if agent is not None and epoch is not None:
        tokens.put(token_hash, epoch, {name: getattr(agent, name) for name in CACHED_COLUMNS},
                   expires_at)
    return agent


class AgentColumns:
    """A cached agent's columns (CACHED_COLUMNS) as read-only attributes."""

    __slots__ = ("values",)

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    def __getattr__(self, name: str) -> Any:
        try:
            value = self.values[name]
        except KeyError:
            raise AttributeError(name) from None
        return list(value) if isinstance(value, list) else value  # the cache's stays as is


def attach(found: Agent | AgentColumns) -> Agent:
    """The agent `authenticated` found, as an object of this request's session."""
    return _attached(found.values) if isinstance(found, AgentColumns) else found


# -- the token cache ------------------------------------------------------------------------
#
# Every authenticated request used to read its token and agent from the database (a join
# and an ORM load: about a tenth of a claim's CPU and one round trip). Each process now keeps
# what that lookup found, for at most CACHE_SECONDS, under the auth epoch it was read in: a
# counter in Redis that every commit revoking a token, or changing or deleting an agent or a
# token, increments (first thing after the commit, `_note_auth_change`). A request reads the
# epoch (one Redis GET, ~10x cheaper than the lookup) and uses a cached entry only when it
# was stored under the same epoch, so a revocation is honoured by every process from the next
# request on, as before. Without Redis (the GET fails) nothing is cached. If the increment
# itself fails (Redis unreachable at the moment of the revocation), entries expire after
# CACHE_SECONDS. docs/security.md ("Tokens and live connections") says this for operators.

AUTH_EPOCH = "helpdesk:auth:epoch"
CACHE_SECONDS = 10.0
CACHE_ENTRIES = 10_000
# What a cached agent carries. The others (password hash, presence, last assignment) change
# without touching authentication and are left expired: read from the database when used.
CACHED_COLUMNS = ("id", "email", "name", "role", "level", "languages", "channels", "capacity",
                  "team_id", "active", "created_at")
# Changes to these agent columns do not bump the epoch (they are not cached).
_UNCACHED = frozenset(("password_hash", "presence", "last_assigned_at"))


class TokenCache:
    """token hash -> (epoch, expiry, agent columns, the token's own expiry), bounded,
    shared by a process's requests (greenlets or threads)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: dict[str, tuple[int, float, dict[str, Any], datetime | None]] = {}

    def get(self, token_hash: str, epoch: int) -> dict[str, Any] | None:
        entry = self.entries.get(token_hash)
        if entry is None or entry[0] != epoch or entry[1] < time.monotonic():
            return None
        if entry[3] is not None and entry[3] <= utcnow():
            return None
        return entry[2]

    def put(self, token_hash: str, epoch: int, values: dict[str, Any],
            token_expires_at: datetime | None = None) -> None:
        """Kept CACHE_SECONDS, and never past the token's own expiry (by the wall clock)."""
        with self.lock:
            if len(self.entries) >= CACHE_ENTRIES:
                self.entries.clear()
            self.entries[token_hash] = (epoch, time.monotonic() + CACHE_SECONDS,
                                        copy.deepcopy(values), token_expires_at)


def _token_cache() -> TokenCache:
    app = current_app._get_current_object()
    tokens = app.extensions.get("helpdesk.token_cache")
    if tokens is None:
        tokens = app.extensions.setdefault("helpdesk.token_cache", TokenCache())
    return tokens


def _auth_epoch() -> int | None:
    """The current epoch; None (nothing cached) when Redis is unreachable or has no epoch
    (a new or emptied Redis: it starts again at a random value, so an entry stored before
    the data was lost never matches the new counter)."""
    try:
        client = redis_connection()
        epoch = client.get(AUTH_EPOCH)
        if epoch is None:
            client.set(AUTH_EPOCH, secrets.randbits(62), nx=True)
            return None
        return int(epoch)
    except Exception:  # Redis unreachable: no cache, the database answers
        return None


def _attached(values: dict[str, Any]) -> Agent:
    """The cached agent as a persistent object of this request's session, without a query
    (as if loaded; the columns not cached are expired, loaded on first use)."""
    session = db.session()
    present = session.identity_map.get(session.identity_key(Agent, values["id"]))
    if present is not None:
        return present
    # Built as a load builds it (no attribute events, no history), the lists copied so that a
    # change to this request's object never reaches the cache: cheaper than Agent(**values).
    agent = _AGENTS.new_instance()
    instance_state(agent).dict.update(
        {name: list(value) if isinstance(value, list) else value
         for name, value in values.items()})
    make_transient_to_detached(agent)
    session.add(agent)
    return agent


_AGENTS = manager_of_class(Agent)


def _bump_auth_epoch() -> None:
    try:
        pipe = redis_connection().pipeline(transaction=False)
        pipe.set(AUTH_EPOCH, secrets.randbits(62), nx=True)  # see _auth_epoch
        pipe.incr(AUTH_EPOCH)
        pipe.execute()
    except Exception as exc:  # entries expire after CACHE_SECONDS anyway
        log.warning("auth epoch not incremented (cached tokens expire in %.0f s): %s",
                    CACHE_SECONDS, exc)


def _changes_auth(session: Session) -> bool:
    for obj in session.deleted:
        if isinstance(obj, (Agent, ApiToken)):
            return True
    for obj in session.dirty:
        if isinstance(obj, ApiToken) and session.is_modified(obj):
            return True
        if isinstance(obj, Agent):
            state = db.inspect(obj)
            if any(attr.history.has_changes() for attr in state.attrs
                   if attr.key not in _UNCACHED):
                return True
    return False


def _note_auth_change(session: Session, _context, _instances) -> None:
    """Before a flush that revokes a token or changes or deletes an agent: the epoch moves
    once the transaction commits (first, before the commit's other work such as closing the
    token's sockets)."""
    if _changes_auth(session):
        after_commit(_bump_auth_epoch, once=True, first=True)


def init_app(_app: object) -> None:
    """Wire the flush hook that invalidates every process's token cache."""
    listen(Session, "before_flush", _note_auth_change)


def login(email: str, password: str) -> tuple[str, Agent]:
    agent = db.session.execute(
        select(Agent).where(Agent.email == email.strip().lower())).scalar_one_or_none()
    # An unknown email, or an agent without a password (they log in with a token only),
    # costs the same hash check and never passes: `_DUMMY_HASH` is compared, then refused
    # (it is the hash of a known string: its check passing must not let anyone in).
    usable = agent is not None and agent.active and bool(agent.password_hash)
    matches = check_password_hash(agent.password_hash if usable else _DUMMY_HASH, password)
    if not (usable and matches):
        raise Unauthorized("wrong email or password", "invalid_credentials")
    return issue_token(agent, hours=current_app.config["LOGIN_TOKEN_HOURS"]), agent


def revoke_expired(limit: int = 1000) -> int:
    """The sweeper's step: tokens past their expiry are revoked, as at a logout, so that
    the sockets opened with them close (their requests are refused from the expiry on,
    whether or not this has run); how many."""
    expired = db.session.execute(
        select(ApiToken).where(ApiToken.revoked_at.is_(None), ApiToken.expires_at <= utcnow())
        .order_by(ApiToken.expires_at).limit(limit).with_for_update(skip_locked=True)
    ).scalars().all()
    for row in expired:
        row.revoked_at = row.expires_at
        after_commit(lambda token_hash=row.token_hash: sockets.close_token(token_hash))
    commit()
    return len(expired)


def logout(token: str) -> None:
    """Revoke this token; the sockets opened with it are closed once that is committed."""
    token_hash = hash_token(token)
    row = db.session.execute(
        select(ApiToken).where(ApiToken.token_hash == token_hash)).scalar_one_or_none()
    if row is not None and row.revoked_at is None:
        row.revoked_at = utcnow()
        after_commit(lambda: sockets.close_token(token_hash))
        commit()


MIN_PASSWORD_LENGTH = 8


def check_password(password: str) -> None:
    """The one password policy (API, CLI): at least MIN_PASSWORD_LENGTH characters."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise Invalid(f"a password has at least {MIN_PASSWORD_LENGTH} characters",
                      {"password": [f"Shorter than minimum length {MIN_PASSWORD_LENGTH}."]})


def revoke_all_tokens(agent: Agent) -> None:
    """Revoke every token of `agent` in the current transaction (a password change, a
    deactivation); once committed, the agent's open sockets are closed. Reactivating the
    agent does not bring the tokens back."""
    now = utcnow()
    for row in db.session.execute(select(ApiToken).where(
            ApiToken.agent_id == agent.id, ApiToken.revoked_at.is_(None))).scalars():
        row.revoked_at = now
    agent_id = agent.id
    after_commit(lambda: sockets.close_agent(agent_id))


def set_password(agent: Agent, password: str) -> None:
    """A new password (admin, CLI): every token issued before it stops working."""
    check_password(password)
    agent.password_hash = generate_password_hash(password)
    revoke_all_tokens(agent)


def create_agent(*, email: str, name: str, role: str = "agent", level: int = 1,
                 password: str | None = None, languages: list[str] | None = None,
                 channels: list[str] | None = None, capacity: float = 1.0,
                 team_id: int | None = None, active: bool = True,
                 actor: Agent | None = None) -> Agent:
    """Create an agent (audited); 409 when the email is taken, 422 for a team that does not
    exist."""
    email = _free_email(email)
    teams.check_exists(team_id)
    if password is not None:
        check_password(password)
    agent = Agent(email=email, name=name, role=role, level=level,
                  languages=languages or [], channels=channels or [], capacity=capacity,
                  team_id=team_id, active=active,
                  password_hash=generate_password_hash(password) if password else None)
    db.session.add(agent)
    try:
        db.session.flush()  # (its id, for the audit entry)
        audit.record(actor, "agent.created", "agent", agent.id, email=email, role=role,
                     level=level, active=active)
        presence.announce(agent)
        commit()
    except IntegrityError as exc:  # the same email created meanwhile by another request
        db.session.rollback()
        raise Conflict(f"an agent with email {email} exists", "agent_exists") from exc
    return agent


def _free_email(email: str, agent_id: int | None = None) -> str:
    """`email` as agents' emails are stored (lower case); 409 when another agent has it."""
    email = email.strip().lower()
    taken = db.session.execute(select(Agent.id).where(Agent.email == email)).scalar()
    if taken is not None and taken != agent_id:
        raise Conflict(f"an agent with email {email} exists", "agent_exists")
    return email


def update_agent(agent_id: int, changes: dict, actor: Agent | None = None) -> Agent:
    """Change an agent's profile, routing attributes or password (admin, audited: the names
    of what changed, and the new role, level and activity; never a password). A new password
    or a deactivation revokes the agent's tokens; a new role closes their sockets. A
    deactivated agent's tickets not yet solved, or those above a lowered level, return to
    the queue."""
    agent = db.session.get(Agent, agent_id)
    if agent is None:
        raise NotFound("agent")
    lets_go = (changes.get("active") is False and agent.active) or (
        changes.get("level", agent.level) < agent.level)
    teams.check_exists(changes.get("team_id"))
    if "email" in changes:
        changes["email"] = _free_email(changes["email"], agent.id)
    password = changes.pop("password", None)
    if password is not None:
        set_password(agent, password)
    if changes.get("active") is False and agent.active:
        revoke_all_tokens(agent)
    elif changes.get("role", agent.role) != agent.role:
        # Rooms are joined at connect (`supervisors`): the consoles reconnect with the
        # token they have and join the rooms of the new role.
        after_commit(lambda: sockets.close_agent(agent_id))
    changed = sorted(key for key, value in changes.items() if getattr(agent, key) != value)
    for key, value in changes.items():
        setattr(agent, key, value)
    if "active" in changed:
        presence.announce(agent)
    if changed or password is not None:
        audit.record(actor, "agent.updated", "agent", agent.id,
                     changed=changed + (["password"] if password is not None else []),
                     **{key: changes[key] for key in ("role", "level", "active")
                        if key in changed})
    try:
        commit()
    except IntegrityError as exc:  # the email given meanwhile to another agent
        db.session.rollback()
        raise Conflict(f"an agent with email {changes.get('email')} exists",
                       "agent_exists") from exc
    if lets_go:
        # Their tickets they may no longer work go back to the queue, in a transaction of
        # their own: the agent's row is committed as changed first, so push routing and
        # claims (which weigh the agent's row after their tickets') give them nothing new,
        # and this one takes ticket rows only (holding the agent's row while waiting for
        # a ticket a routing batch holds could deadlock with it).
        tickets.release_tickets_of(agent, actor)
        commit()
    return agent
