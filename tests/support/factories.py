"""Small builders for test data, going through the services like a user would."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

_counter = itertools.count(1)


@dataclass
class AgentInfo:
    id: int
    email: str
    token: str
    role: str
    level: int

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def agent(app, role: str = "agent", level: int = 1, **extra) -> AgentInfo:
    from helpdesk.services import auth

    n = next(_counter)
    with app.app_context():
        created = auth.create_agent(email=f"{role}{n}@example.com", name=f"{role.title()} {n}",
                                    role=role, level=level, password="correct horse", **extra)
        token = auth.issue_token(created)
        return AgentInfo(created.id, created.email, token, role, level)


def channel(app, provider: str = "api", kind: str | None = None, settings: dict | None = None,
            secrets: dict | None = None, name: str | None = None):
    from helpdesk.services import channels

    kind = kind or {"api": "api", "raw_mime": "email"}.get(provider, provider)
    if secrets is None:
        secrets = {"signing_secret": "s3cret"} if provider == "api" else {}
    with app.app_context():
        created = channels.create(name or f"{provider} channel", kind, provider, settings or {},
                                  secrets)
        return created
