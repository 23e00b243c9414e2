"""Teams of agents (admin), which metrics can be grouped by."""

from __future__ import annotations

from sqlalchemy import select

from helpdesk.errors import Conflict, Unprocessable
from helpdesk.extensions import db
from helpdesk.models import Team
from helpdesk.transaction import commit


def all_teams() -> list[Team]:
    return list(db.session.execute(select(Team).order_by(Team.id)).scalars())


def create(name: str) -> Team:
    """A new team; names are unique (409)."""
    name = name.strip()
    if db.session.execute(select(Team.id).where(Team.name == name)).first():
        raise Conflict(f"a team named {name!r} exists", "team_exists")
    team = Team(name=name)
    db.session.add(team)
    commit()
    return team


def check_exists(team_id: int | None) -> None:
    """An agent can only join a team that exists (422)."""
    if team_id is not None and db.session.get(Team, team_id) is None:
        raise Unprocessable("no such team", "unknown_team")
