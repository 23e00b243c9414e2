"""metrics roll-up: daily parts and value histograms, bucketed facts, their read orders

Revision ID: 0008
Revises: 0009 (0008 was written beside 0009 and applied after it; its file was renamed to
0010_ so that file order reads as history, and its id kept for databases already upgraded)

The summary reads whole days from `metric_rollups` (additive parts per day and agent or
channel) and `metric_histograms` (resolution and first-response times per value bucket, per
day, and per month and agent or channel) instead of every record. Facts carry the value
buckets of their two times. The upgrade fills all of it from the existing records, with the
definitions of this revision (services/metrics/parts.py and histograms.py hold the
living ones; `helpdesk metrics rebuild` recomputes from those).
"""
from bisect import bisect_right

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0009'
branch_labels = None
depends_on = None

FRT_COUNTED = 'frt_counted'

# The value buckets as this revision defines them (services/metrics/buckets.py holds the living
# definition; a migration never imports live code, which may change after it).
PER_OCTAVE = 8
BOUNDS = (0.0, *(2.0 ** (n / PER_OCTAVE) for n in range(PER_OCTAVE * 40 + 1)))


def bucket_of(value):
    return None if value is None else bisect_right(BOUNDS, value)
INBOUND_ABANDONED = "direction = 'inbound' AND outcome = 'abandoned'"
FACT_INDEXES = {  # name: (columns, INCLUDE, partial index predicate)
    'ix_ticket_facts_frt_order': (['first_response_seconds'], ['first_response_at'],
                                  FRT_COUNTED),
    'ix_ticket_facts_agent_frt_order': (['assignee_id', 'first_response_seconds'],
                                        ['first_response_at'], FRT_COUNTED),
    'ix_ticket_facts_channel_frt_order': (['channel_id', 'first_response_seconds'],
                                          ['first_response_at'], FRT_COUNTED),
}
# A span's facts without the table: PostgreSQL's INCLUDE (SQLite has none to add).
COVERING = {
    'ix_ticket_facts_solved_at': ('solved_at', ['ticket_id', 'assignee_id', 'channel_id',
                                                'resolution_seconds', 'resolution_bucket'], None),
    'ix_ticket_facts_first_response_at': ('first_response_at', [
        'assignee_id', 'channel_id', 'first_response_seconds', 'frt_bucket'], FRT_COUNTED),
}
# Values in order per UTC day: PostgreSQL only (its day expression; SQLite needs none).
DAY_INDEXES = {
    'ix_ticket_facts_day_resolution_order': ('solved_at', 'resolution_seconds', None),
    'ix_ticket_facts_day_frt_order': ('first_response_at', 'first_response_seconds',
                                      FRT_COUNTED),
}
COUNTS = ('created', 'solved', 'flr', 'fcr', 'sla_met', 'sla_n', 'calls', 'abandoned',
          'csat_n', 'csat_good', 'ces_n', 'nps_n', 'promoters', 'detractors')
SUMS = ('handle_sum', 'pending_sum', 'csat_sum', 'ces_sum')


def _where(clause):
    if clause is None:
        return {}
    return {'postgresql_where': sa.text(clause), 'sqlite_where': sa.text(clause)}


def _zero(name, type_=sa.Integer):
    return sa.Column(name, type_(), server_default=sa.text('0'), nullable=False)


def _common(*cell):
    return [sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                      nullable=False),
            *cell, _zero('key'),
            sa.Column('compacted', sa.Boolean(), server_default=sa.false(), nullable=False)]


def upgrade():
    with op.batch_alter_table('ticket_facts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('resolution_bucket', sa.Integer(), nullable=False,
                                      server_default=sa.text('1')))
        batch_op.add_column(sa.Column('frt_bucket', sa.Integer(), nullable=True))
    _fill_buckets()
    with op.batch_alter_table('ticket_facts', schema=None) as batch_op:
        for name, (columns, include, where) in FACT_INDEXES.items():
            batch_op.create_index(name, columns, unique=False, postgresql_include=include,
                                  **_where(where))
    if op.get_bind().dialect.name == 'postgresql':
        _covering(include=True)
        for name, (moment, value, where) in DAY_INDEXES.items():
            op.create_index(name, 'ticket_facts',
                            [sa.text(f"(CAST(timezone('UTC', {moment}) AS DATE))"), value],
                            postgresql_include=[moment], **_where(where))
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.create_index('ix_calls_abandoned_wait', ['wait_seconds'], unique=False,
                              postgresql_include=['started_at', 'agent_id', 'channel_id'],
                              **_where(INBOUND_ABANDONED))
    op.create_table(
        'metric_rollups',
        *_common(sa.Column('dimension', sa.String(length=10), nullable=False),
                 sa.Column('day', sa.Date(), nullable=False)),
        *(_zero(name) for name in COUNTS), *(_zero(name, sa.Float) for name in SUMS),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_metric_rollups')))
    op.create_table(
        'metric_histograms',
        *_common(sa.Column('figure', sa.String(length=20), nullable=False),
                 sa.Column('dimension', sa.String(length=10), nullable=False),
                 sa.Column('start', sa.Date(), nullable=False),
                 sa.Column('bucket', sa.Integer(), nullable=False)),
        _zero('n'), _zero('total', sa.Float),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_metric_histograms')))
    with op.batch_alter_table('metric_rollups', schema=None) as batch_op:
        batch_op.create_index('ix_metric_rollups_cell', ['dimension', 'day', 'key'])
        batch_op.create_index('ix_metric_rollups_uncompacted', ['id'],
                              **_where('NOT compacted'))
    with op.batch_alter_table('metric_histograms', schema=None) as batch_op:
        batch_op.create_index('ix_metric_histograms_cell',
                              ['figure', 'dimension', 'start', 'key', 'bucket'],
                              postgresql_include=['n', 'total'])
        batch_op.create_index('ix_metric_histograms_uncompacted', ['id'],
                              **_where('NOT compacted'))
    _fill_rollups()


def downgrade():
    op.drop_table('metric_histograms')
    op.drop_table('metric_rollups')
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_index('ix_calls_abandoned_wait')
    if op.get_bind().dialect.name == 'postgresql':
        for name in reversed(DAY_INDEXES):
            op.drop_index(name, table_name='ticket_facts')
        _covering(include=False)
    with op.batch_alter_table('ticket_facts', schema=None) as batch_op:
        for name in reversed(FACT_INDEXES):
            batch_op.drop_index(name)
    if op.get_bind().dialect.name == 'sqlite':  # no table copy: ALTER TABLE drops in place
        op.execute('ALTER TABLE ticket_facts DROP COLUMN frt_bucket')
        op.execute('ALTER TABLE ticket_facts DROP COLUMN resolution_bucket')
    else:
        with op.batch_alter_table('ticket_facts', schema=None) as batch_op:
            batch_op.drop_column('frt_bucket')
            batch_op.drop_column('resolution_bucket')


def _covering(include):
    """The facts' moment indexes, with (upgrade) or without (downgrade) their INCLUDE."""
    for name, (moment, columns, where) in COVERING.items():
        op.drop_index(name, table_name='ticket_facts')
        op.create_index(name, 'ticket_facts', [moment],
                        postgresql_include=columns if include else [], **_where(where))


def _fill_buckets(batch=5000):
    conn = op.get_bind()
    facts = sa.table('ticket_facts', sa.column('id'), sa.column('resolution_seconds'),
                     sa.column('first_response_seconds'), sa.column('resolution_bucket'),
                     sa.column('frt_bucket'))
    change = sa.update(facts).where(facts.c.id == sa.bindparam('fact')).values(
        resolution_bucket=sa.bindparam('resolution'), frt_bucket=sa.bindparam('frt'))
    last = 0
    while True:
        rows = conn.execute(sa.select(facts.c.id, facts.c.resolution_seconds,
                                      facts.c.first_response_seconds)
                            .where(facts.c.id > last).order_by(facts.c.id).limit(batch)).all()
        if not rows:
            return
        conn.execute(change, [{'fact': id_, 'resolution': bucket_of(resolution),
                               'frt': bucket_of(frt)} for id_, resolution, frt in rows])
        last = rows[-1][0]


def _day(column, unit='day'):
    """The UTC day (or month's first day) of a timestamp column, as services/metrics_sql."""
    if op.get_bind().dialect.name != 'postgresql':
        return f"strftime('{'%Y-%m-%d' if unit == 'day' else '%Y-%m-01'}', {column})"
    utc = f"timezone('UTC', {column})"
    return f"CAST({utc if unit == 'day' else f'date_trunc({MONTH}, {utc})'} AS DATE)"


MONTH = "'month'"


def _ever():
    """models/rollups.EVER, the `start` of all-time histogram rows."""
    if op.get_bind().dialect.name == 'postgresql':
        return "DATE '0001-01-01'"
    return "'0001-01-01'"


# Each source's parts, as of this revision: (table, moment, agent, channel, where, parts).
SOURCES = [
    ('tickets', 'created_at', 'assignee_id', 'channel_id',
     "NOT (status = 'closed' AND solved_at IS NULL)", {'created': 'count(*)'}),
    ('ticket_facts', 'solved_at', 'assignee_id', 'channel_id', 'true', {
        'solved': 'count(*)', 'handle_sum': 'sum(handle_seconds)',
        'flr': 'sum(CASE WHEN max_level <= 1 THEN 1 ELSE 0 END)',
        'fcr': 'sum(CASE WHEN cycle = 1 AND public_replies <= 1 AND NOT reopened '
               'THEN 1 ELSE 0 END)',
        'pending_sum': 'sum(pending_seconds)',
        'sla_met': 'sum(CASE WHEN sla_met THEN 1 ELSE 0 END)', 'sla_n': 'count(sla_met)'}),
    ('calls', 'started_at', 'agent_id', 'channel_id',
     "direction = 'inbound' AND outcome IS NOT NULL",
     {'calls': 'count(*)', 'abandoned': "sum(CASE WHEN outcome = 'abandoned' THEN 1 ELSE 0 END)"}),
    ('surveys', 'answered_at', 'agent_id', 'channel_id', 'score IS NOT NULL', {
        'csat_n': "sum(CASE WHEN kind = 'csat' THEN 1 ELSE 0 END)",
        'csat_sum': "sum(CASE WHEN kind = 'csat' THEN score ELSE 0 END)",
        'csat_good': "sum(CASE WHEN kind = 'csat' AND score >= 4 THEN 1 ELSE 0 END)",
        'ces_n': "sum(CASE WHEN kind = 'ces' THEN 1 ELSE 0 END)",
        'ces_sum': "sum(CASE WHEN kind = 'ces' THEN score ELSE 0 END)",
        'nps_n': "sum(CASE WHEN kind = 'nps' THEN 1 ELSE 0 END)",
        'promoters': "sum(CASE WHEN kind = 'nps' AND score >= 9 THEN 1 ELSE 0 END)",
        'detractors': "sum(CASE WHEN kind = 'nps' AND score <= 6 THEN 1 ELSE 0 END)"}),
]
FIGURES = [('resolution_seconds', 'resolution_seconds', 'resolution_bucket', 'solved_at',
            'true'),
           ('frt_seconds', 'first_response_seconds', 'frt_bucket', 'first_response_at',
            'frt_counted')]


def _fill_rollups():
    """Both roll-ups from the records, one compacted row per cell."""
    measures = COUNTS + SUMS
    selects = []
    for table, moment, agent, channel, where, parts in SOURCES:
        values = ', '.join(f"{parts.get(m, '0')} AS {m}" for m in measures)
        for dimension, key in (('agent', f'coalesce({agent}, 0)'), ('channel', channel)):
            selects.append(f"SELECT {_day(moment)} AS day, '{dimension}' AS dimension, "
                           f"{key} AS key, {values} FROM {table} WHERE {where} "
                           f"GROUP BY {_day(moment)}, {key}")
    sums = ', '.join(f'sum({m})' for m in measures)
    op.execute(f"INSERT INTO metric_rollups (day, dimension, key, compacted, "
               f"{', '.join(measures)}) SELECT day, dimension, key, true, {sums} FROM "
               f"({' UNION ALL '.join(selects)}) parts GROUP BY day, dimension, key")
    for name, value, bucket, moment, where in FIGURES:
        month = _day(moment, 'month')
        # (the day histograms' buckets are 4 of the facts' (metrics_histograms.DAY_SHIFT);
        # agents' and channels' come per month and over all time, EVER)
        agent, ever = 'coalesce(assignee_id, 0)', _ever()
        for dimension, start, key, wide in (('day', _day(moment), None, f'{bucket} / 4'),
                                            ('agent', month, agent, bucket),
                                            ('channel', month, 'channel_id', bucket),
                                            ('agent', ever, agent, bucket),
                                            ('channel', ever, 'channel_id', bucket)):
            keys = ', '.join(k for k in (start, key, wide) if k is not None and k != ever)
            op.execute(
                f"INSERT INTO metric_histograms (figure, dimension, start, key, bucket, "
                f"compacted, n, total) SELECT '{name}', '{dimension}', {start}, {key or 0}, "
                f"{wide}, true, count(*), sum({value}) FROM ticket_facts "
                f"WHERE {where} AND {value} IS NOT NULL GROUP BY {keys}")
