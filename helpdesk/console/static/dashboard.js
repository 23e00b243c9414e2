// The supervisor dashboard: headline figures, grouped table + CSV, Pareto, daily trends,
// the agents board and SLA alerts; everything refetched when events say it changed.
import { h, replace, attr, coalesce, span, when } from './dom.js';
import { pareto, lines, COLORS } from './charts.js';
import { priorityCounts } from './queue.js';

const HEADLINES = [
  ['tickets_created', 'Created', (t) => t.tickets_created, 'count'],
  ['tickets_solved', 'Solved', (t) => t.tickets_solved, 'count'],
  ['aht_seconds', 'AHT', (t) => t.aht_seconds, 'time'],
  ['flr_rate', 'FLR', (t) => t.flr_rate, 'rate'],
  ['fcr_rate', 'FCR', (t) => t.fcr_rate, 'rate'],
  ['frt_p50', 'FRT p50', (t) => t.frt_seconds && t.frt_seconds.p50, 'time'],
  ['frt_p90', 'FRT p90', (t) => t.frt_seconds && t.frt_seconds.p90, 'time'],
  ['sla_compliance', 'SLA met', (t) => t.sla_compliance, 'rate'],
  ['abandoned_call_rate', 'Abandoned calls', (t) => t.abandoned_call_rate, 'rate'],
  ['csat_score', 'CSAT', (t) => t.csat && t.csat.score, 'rate'],
  ['backlog', 'Backlog', (t) => t.backlog, 'count'],
];
const PERIODS = { today: 1, '7d': 7, '30d': 30 };
const GROUPS = ['agent', 'channel', 'team', 'day'];
const NONE = { agent: '(unassigned)', team: '(no team)', channel: '(no channel)' };

export function format(value, kind) {
  if (value === null || value === undefined) return '—';
  if (kind === 'rate') return `${(value * 100).toFixed(1)}%`;
  if (kind === 'time') return value < 60 ? `${value.toFixed(0)} s` : span(value);
  return String(value);
}

function day(offset) {
  const d = new Date();
  d.setUTCHours(0, 0, 0, 0);
  d.setUTCDate(d.getUTCDate() + offset);
  return d.toISOString().slice(0, 10);
}

// UTC days: `today` is the current UTC day; 7d/30d end with it. `to` is exclusive.
export function periodRange(period) {
  return { from: day(1 - PERIODS[period]), to: day(1) };
}

export function mount(main, { api, live }) {
  const state = { period: 'today', groupBy: 'agent', agents: new Map() };
  const period = h('select', { id: 'period', test: 'period' },
    h('option', { value: 'today' }, 'Today (UTC)'), h('option', { value: '7d' }, 'Last 7 days'), h('option', { value: '30d' }, 'Last 30 days'));
  const groupBy = h('select', { id: 'group-by', test: 'group-by' }, GROUPS.map((g) => h('option', { value: g }, g)));
  const csv = h('button', { type: 'button', test: 'csv-download' }, 'Download CSV');
  const error = h('p', { class: 'error', role: 'alert', hidden: true });
  const updated = h('span', { class: 'muted', role: 'status' });
  const cards = HEADLINES.map(([name, label]) => {
    const value = h('div', { class: 'value' }, '—');
    const card = h('div', { class: 'metric', test: `metric-${name}`, data: { value: null } }, h('div', { class: 'label' }, label), value);
    return { name, card, value };
  });
  const queueCard = h('div', { class: 'metric' }, h('div', { class: 'label' }, 'Queue now'), h('div', { class: 'value' }, '—'), h('div', { class: 'muted by-priority' }));
  const groupTable = h('table', { test: 'group-table' });
  const paretoChart = h('div', { test: 'pareto-chart', class: 'pareto-chart' });
  const paretoTable = h('table', { class: 'pareto-table' });
  const trendCreated = h('div');
  const trendFrt = h('div');
  const trendCsat = h('div');
  const board = h('table', { test: 'agents-board', class: 'agents-board' });
  const alerts = h('ul', { class: 'alerts', 'aria-label': 'SLA alerts', role: 'log' });
  const noAlerts = h('li', { class: 'muted' }, 'No SLA warnings or breaches since you opened this page.');
  alerts.append(noAlerts);

  const panel = (title, ...children) => h('section', { class: 'panel' }, h('h2', {}, title), ...children);
  main.append(h('div', { class: 'dashboard' },
    h('div', { class: 'toolbar' },
      h('h1', {}, 'Supervisor dashboard'),
      h('div', { class: 'field' }, h('label', { for: 'period' }, 'Period'), period),
      h('div', { class: 'field' }, h('label', { for: 'group-by' }, 'Group by'), groupBy),
      csv, updated),
    error,
    h('div', { class: 'metrics' }, cards.map((c) => c.card), queueCard),
    h('div', { class: 'grid-2' },
      panel('Contact reasons (Pareto)', paretoChart,
        h('div', { class: 'legend' },
          h('span', { style: null, class: 'sw-vital' }, 'vital few'), h('span', { class: 'sw-bar' }, 'other reasons'),
          h('span', { class: 'sw-line' }, 'cumulative share')),
        h('div', { class: 'scroll' }, paretoTable)),
      panel('Grouped figures', h('div', { class: 'scroll' }, groupTable))),
    h('div', { class: 'grid-3' },
      panel('Created vs solved', trendCreated, h('div', { class: 'legend' }, h('span', { class: 'sw-a' }, 'created'), h('span', { class: 'sw-b' }, 'solved'))),
      panel('First response time, p50', trendFrt),
      panel('CSAT', trendCsat)),
    h('div', { class: 'grid-2' },
      panel('Agents', h('div', { class: 'scroll' }, board)),
      panel('SLA alerts', alerts))));

  function range() { return periodRange(state.period); }

  function drawHeadlines(totals) {
    for (const { name, card, value } of cards) {
      const [, , pick, kind] = HEADLINES.find((m) => m[0] === name);
      const raw = pick(totals);
      card.setAttribute('data-value', attr(raw ?? null));
      value.textContent = format(raw, kind);
    }
  }

  function drawGroups(groups) {
    const head = h('tr', {}, h('th', {}, state.groupBy), ['Created', 'Solved', 'AHT', 'FRT p50', 'FLR', 'FCR', 'SLA met', 'CSAT', 'Backlog'].map((c) => h('th', { class: 'num' }, c)));
    const rows = groups.map((g) => h('tr', { test: 'group-row', data: { key: g.key } },
      h('td', {}, g.label ?? (g.key === null || g.key === undefined ? NONE[state.groupBy] || '—' : String(g.key))),
      [[g.tickets_created, 'count'], [g.tickets_solved, 'count'], [g.aht_seconds, 'time'],
        [g.frt_seconds && g.frt_seconds.p50, 'time'], [g.flr_rate, 'rate'], [g.fcr_rate, 'rate'],
        [g.sla_compliance, 'rate'], [g.csat && g.csat.score, 'rate'], [g.backlog, 'count']]
        .map(([v, kind]) => h('td', { class: 'num' }, format(v, kind)))));
    replace(groupTable, h('thead', {}, head), h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: 10, class: 'muted' }, 'Nothing in this period.'))));
  }

  function drawPareto(items) {
    replace(paretoChart, pareto(items));
    replace(paretoTable, h('thead', {}, h('tr', {}, h('th', {}, 'Reason'), h('th', { class: 'num' }, 'Count'), h('th', { class: 'num' }, 'Share'), h('th', { class: 'num' }, 'Cumulative'), h('th', {}, ''))),
      h('tbody', {}, items.map((i) => h('tr', { test: 'pareto-row', data: { reason: i.reason, count: i.count, 'vital-few': Boolean(i.vital_few) } },
        h('td', {}, i.reason), h('td', { class: 'num' }, String(i.count)), h('td', { class: 'num' }, format(i.share, 'rate')),
        h('td', { class: 'num' }, format(i.cumulative_share, 'rate')), h('td', {}, i.vital_few ? 'vital few' : '')))));
  }

  function drawTrends(groups) {
    const days = groups.map((g) => String(g.key));
    replace(trendCreated, lines(days, [
      { values: groups.map((g) => g.tickets_created), color: COLORS.a },
      { values: groups.map((g) => g.tickets_solved), color: COLORS.b }], { label: 'Tickets created and solved per day' }));
    replace(trendFrt, lines(days, [{ values: groups.map((g) => g.frt_seconds && g.frt_seconds.p50), color: COLORS.a }],
      { format: (v) => format(v, 'time'), label: 'First response time p50 per day' }));
    replace(trendCsat, lines(days, [{ values: groups.map((g) => g.csat && g.csat.score), color: COLORS.b }],
      { format: (v) => format(v, 'rate'), label: 'CSAT per day' }));
  }

  const loadFigures = coalesce(async () => {
    const { from, to } = range();
    // Trends need more than one point: today shows the last 7 days.
    const trend = state.period === 'today' ? periodRange('7d') : { from, to };
    try {
      const [summary, reasons, daily] = await Promise.all([
        api.get('/metrics/summary', { from, to, group_by: state.groupBy }),
        api.get('/metrics/contact-reasons', { from, to }),
        api.get('/metrics/summary', { ...trend, group_by: 'day' })]);
      error.hidden = true;
      drawHeadlines(summary.totals);
      drawGroups(summary.groups);
      drawPareto(reasons.items);
      drawTrends(daily.groups);
      updated.textContent = `updated ${new Date().toISOString().slice(11, 19)} UTC`;
    } catch (err) {
      error.textContent = err.describe ? err.describe() : String(err);
      error.hidden = false;
    }
  }, 800);

  function agentRow(agent) {
    const load = state.agents.get(agent.id)?.load;
    return h('tr', { test: 'agent-row', data: { 'agent-id': agent.id, presence: agent.presence || 'offline' } },
      h('td', {}, h('span', { class: `dot-${agent.presence || 'offline'}`, 'aria-hidden': 'true' }, '● '), agent.name),
      h('td', { class: 'presence-cell' }, agent.presence || 'offline'),
      h('td', {}, agent.role), h('td', { class: 'num' }, `L${agent.level}`),
      h('td', { class: 'num', title: 'new and open tickets; the share of the agent\'s capacity they use, weighted as routing weighs them (a call 1, a chat ⅓, other tickets 0.1 of an agent by default)' },
        load ? `${load.tickets} · ${load.capacity ? Math.round((100 * load.used) / load.capacity) : 0}%` : '…'));
  }

  function drawBoard() {
    const agents = [...state.agents.values()].map((a) => a.agent).filter((a) => a.active !== false);
    replace(board, h('thead', {}, h('tr', {}, ['Agent', 'Status', 'Role', 'Level', 'Load'].map((c, i) => h('th', { class: i > 2 ? 'num' : null }, c)))),
      h('tbody', {}, agents.map(agentRow)));
  }

  const loadAgents = coalesce(async () => {
    const answer = await api.getAll('/agents');
    state.agents = new Map(answer.items.map((a) => [a.id, { agent: a, load: state.agents.get(a.id)?.load }]));
    drawBoard();
    loadLoads();
  });

  const loadLoads = coalesce(async () => {
    // Every active agent's new and open tickets, in one request (GET /agents/workload).
    const workload = await api.getAll('/agents/workload');
    for (const item of workload.items) {
      const entry = state.agents.get(item.agent_id);
      if (entry) entry.load = { tickets: item.tickets, used: item.load, capacity: item.capacity };
    }
    drawBoard();
  }, 2000);

  function drawQueue(stats) {
    if (!stats) return;
    queueCard.children[1].textContent = String(stats.size);
    queueCard.children[2].textContent = priorityCounts(stats.by_priority);
  }

  function alert(kind, data) {
    const t = data.ticket || {};
    noAlerts.remove();
    const link = h('a', { href: `/tickets/${t.id}` }, `#${t.id} ${t.subject || ''}`);
    alerts.prepend(h('li', { test: 'sla-alert', class: 'sla-alert', data: { 'ticket-id': t.id, kind } },
      h('span', { class: kind }, kind === 'breached' ? 'Breached' : 'Warning'), ' ',
      `${(data.clock || '').replace('_', ' ')} · due ${when(data.due_at)} · `, link));
  }

  period.addEventListener('change', () => { state.period = period.value; loadFigures(); });
  groupBy.addEventListener('change', () => { state.groupBy = groupBy.value; loadFigures(); });
  csv.addEventListener('click', () => {
    const { from, to } = range();
    api.download(`/metrics/summary.csv${api.query({ from, to, group_by: state.groupBy })}`,
      `helpdesk-${state.period}-${state.groupBy}.csv`).catch((err) => { error.textContent = err.message; error.hidden = false; });
  });

  const off = [
    live.on('metrics.updated', (data) => { drawQueue(data && data.queue); if (state.period === 'today') loadFigures(); }),
    live.on('queue.updated', drawQueue),
    live.on('ticket.created', loadFigures),
    live.on('ticket.updated', () => { loadFigures(); loadLoads(); }),
    live.on('agent.presence', (data) => {
      const entry = state.agents.get(data.agent_id);
      if (!entry) return loadAgents();
      entry.agent = { ...entry.agent, presence: data.status };
      drawBoard();
      // Going offline may be a deactivation (it closes the agent's connections): the board
      // lists active agents only.
      if (data.status === 'offline') loadAgents();
    }),
    live.on('sla.warning', (data) => alert('warning', data)),
    live.on('sla.breached', (data) => alert('breached', data)),
    live.on('refetch', () => { loadFigures(); loadAgents(); }),
  ];
  // Agents created or changed by an admin send no event of their own: read again each minute.
  const agentsClock = setInterval(loadAgents, 60000);
  off.push(() => clearInterval(agentsClock));
  drawHeadlines({});
  drawGroups([]);
  drawBoard();
  loadFigures();
  loadAgents();
  api.get('/queue', { per_page: 1 }).then((q) => { queueCard.children[1].textContent = String(q.total); }).catch(() => {});
  return () => off.forEach((fn) => fn());
}
