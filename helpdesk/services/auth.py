"""Agents' credentials: passwords and bearer tokens, both stored hashed."""

from __future__ import annotations

import hashlib
import secrets
from functools import cache

from sqlalchemy import Select, bindparam, select
from werkzeug.security import check_password_hash, generate_password_hash

from helpdesk.errors import Conflict, Invalid, NotFound, Unauthorized
from helpdesk.extensions import db
from helpdesk.models import Agent, ApiToken
from helpdesk.models.base import utcnow
from helpdesk.outbox import sockets
from helpdesk.services import teams
from helpdesk.transaction import after_commit, commit

# Compared against when the email is unknown, so both paths cost one hash check.
_DUMMY_HASH = generate_password_hash("not-a-real-password")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(agent: Agent) -> str:
    """Create a new API token for `agent`; the plain token is returned once, never stored."""
    token = "hd_" + secrets.token_urlsafe(32)
    db.session.add(ApiToken(agent_id=agent.id, token_hash=hash_token(token)))
    commit()
    return token


@cache
def _agent_by_token_hash() -> Select:
    """Built once: every authenticated request runs it."""
    return select(Agent).join(ApiToken).where(ApiToken.token_hash == bindparam("token_hash"),
                                              ApiToken.revoked_at.is_(None),
                                              Agent.active.is_(True))


def agent_for_token(token: str | None) -> Agent | None:
    if not token:
        return None
    return db.session.execute(_agent_by_token_hash(),
                              {"token_hash": hash_token(token)}).scalar_one_or_none()


def login(email: str, password: str) -> tuple[str, Agent]:
    agent = db.session.execute(
        select(Agent).where(Agent.email == email.strip().lower())).scalar_one_or_none()
    hashed = agent.password_hash if agent and agent.password_hash else _DUMMY_HASH
    if not check_password_hash(hashed, password) or agent is None or not agent.active:
        raise Unauthorized("wrong email or password", "invalid_credentials")
    return issue_token(agent), agent


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
                 channels: list[str] | None = None, capacity: float = 1.0) -> Agent:
    """Create an agent; 409 when the email is taken."""
    email = email.strip().lower()
    if db.session.execute(select(Agent.id).where(Agent.email == email)).first():
        raise Conflict(f"an agent with email {email} exists", "agent_exists")
    if password is not None:
        check_password(password)
    agent = Agent(email=email, name=name, role=role, level=level,
                  languages=languages or [], channels=channels or [], capacity=capacity,
                  password_hash=generate_password_hash(password) if password else None)
    db.session.add(agent)
    commit()
    return agent


def update_agent(agent_id: int, changes: dict) -> Agent:
    """Change an agent's profile, routing attributes or password (admin)."""
    agent = db.session.get(Agent, agent_id)
    if agent is None:
        raise NotFound("agent")
    teams.check_exists(changes.get("team_id"))
    password = changes.pop("password", None)
    if password is not None:
        set_password(agent, password)
    if changes.get("active") is False and agent.active:
        revoke_all_tokens(agent)
    for key, value in changes.items():
        setattr(agent, key, value)
    commit()
    return agent
