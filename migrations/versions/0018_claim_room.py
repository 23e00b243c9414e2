"""an agent's free capacity, weighed after their other claims commit (PostgreSQL)

Revision ID: 0018
Revises: 0017

`POST /queue/next` is one statement whose snapshot is taken when it starts: two claims of
one agent at once (two tabs, a double click) each saw the load without the other's ticket,
and both took one past the agent's capacity. This function, which the claim statement calls
for the agent's room, first waits for the agent's other claims (an advisory lock per agent,
held until the claim commits), then weighs the agent's tickets on a fresh snapshot (a
VOLATILE function's queries take their own), so the second claim sees the first's ticket.
SQLite runs one writing transaction at a time and needs nothing.
"""
from alembic import op

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None

AGENT_LOCK_SPACE = 0x4841  # "HA": helpdesk.services.routing.assignment.AGENT_LOCK_SPACE


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"""
CREATE FUNCTION helpdesk_claim_room(agent integer, capacity double precision, weights json)
RETURNS double precision LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock({AGENT_LOCK_SPACE}, agent);
    RETURN capacity - COALESCE((
        SELECT SUM(COALESCE(CAST(weights ->> c.kind AS FLOAT),
                            CAST(weights ->> 'default' AS FLOAT), 0.1))
        FROM tickets t JOIN channels c ON c.id = t.channel_id
        WHERE t.assignee_id = agent AND t.status IN ('new', 'open')), 0);
END
$$""")


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP FUNCTION helpdesk_claim_room(integer, double precision, json)")
