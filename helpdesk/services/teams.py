"""Teams of agents (admin), which metrics can be grouped by."""

from __future__ import annotations

from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError

from helpdesk.errors import Conflict, Invalid, Unprocessable
from helpdesk.extensions import db
from helpdesk.models import Team
from helpdesk.transaction import commit


def all_teams_query() -> Select:
    return select(Team).order_by(Team.id)



def create(name: str) -> Team:
    """A new team; names are unique (409)."""
    name = name.strip()
    if not name:
        raise Invalid("a team needs a name", {"name": ["must not be blank"]})
    if db.session.execute(select(Team.id).where(Team.name == name)).first():
        raise Conflict(f"a team named {name!r} exists", "team_exists")
    team = Team(name=name)
    db.session.add(team)
    try:
        commit()
    except IntegrityError as exc:  # created meanwhile by another request
        db.session.rollback()
        raise Conflict(f"a team named {name!r} exists", "team_exists") from exc
    return team


def check_exists(team_id: int | None) -> None:
    """An agent can only join a team that exists (422)."""
    if team_id is not None and db.session.get(Team, team_id) is None:
        raise Unprocessable("no such team", "unknown_team")
