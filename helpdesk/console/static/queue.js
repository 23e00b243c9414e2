// The agent's left column: next ticket, the live queue (paged), my tickets.
import { h, replace, ago, until, coalesce } from './dom.js';

const PAGE = 100;  // rows a page of the queue (the API serves up to 200)
const OPEN_STATUSES = ['new', 'open', 'pending'];

function customerName(ticket) {
  return (ticket.customer && ticket.customer.name) || `Customer ${ticket.customer_id}`;
}

// A queue's size per priority, in queue order (the most urgent first), as `queue.updated`
// and `metrics.updated` carry it.
export function priorityCounts(byPriority) {
  return ['urgent', 'high', 'normal', 'low'].filter((p) => (byPriority || {})[p])
    .map((p) => `${p} ${byPriority[p]}`).join(' · ');
}

// The deadline that matters now: first response until one was given, then resolution.
export function dueAt(ticket) {
  const sla = ticket.sla || {};
  return (!ticket.first_response_at && sla.first_response_due_at) || sla.resolution_due_at || null;
}

function queueRow(ticket, open) {
  const link = h('a', { href: `/tickets/${ticket.id}`, class: 'row-link' },
    h('span', { class: `badge prio-${ticket.priority}` }, ticket.priority),
    h('span', { class: 'urgency', title: 'Urgency score' }, String(ticket.urgency ?? '')),
    h('span', { class: 'chan' }, ticket.channel ? ticket.channel.kind : ''),
    h('span', { class: 'who' }, customerName(ticket)),
    h('span', { class: 'age', title: `created ${ticket.created_at}` }, ago(ticket.created_at)),
    h('span', { class: 'subject' }, ticket.subject || '(no subject)'),
    h('span', { class: `sla${ticket.sla && ticket.sla.breached ? ' breached' : ''}` },
      until(dueAt(ticket))));
  link.addEventListener('click', (event) => {
    if (event.ctrlKey || event.metaKey || event.shiftKey) return;
    event.preventDefault();
    open(ticket.id);
  });
  return h('li', { test: 'queue-item', class: 'queue-item',
    data: { 'ticket-id': ticket.id, priority: ticket.priority, urgency: ticket.urgency } }, link);
}

function mineRow(ticket, open) {
  const link = h('a', { href: `/tickets/${ticket.id}`, class: 'row-link' },
    h('span', { class: `badge prio-${ticket.priority}` }, ticket.priority),
    h('span', { class: 'chan' }, ticket.channel ? ticket.channel.kind : ''),
    h('span', { class: 'subject' }, ticket.subject || '(no subject)'),
    h('span', { class: `badge status-${ticket.status}` }, ticket.status));
  link.addEventListener('click', (event) => {
    if (event.ctrlKey || event.metaKey || event.shiftKey) return;
    event.preventDefault();
    open(ticket.id);
  });
  return h('li', { test: 'my-ticket', class: 'my-ticket', data: { 'ticket-id': ticket.id } }, link);
}

export function mount(el, { api, live, me, open }) {
  let destroyed = false;
  let page = 1;
  let pages = 1;
  let items = [];
  let mine = [];
  const size = h('span', { test: 'queue-size', class: 'count', 'aria-label': 'tickets in the queue' }, '0');
  const list = h('ol', { test: 'queue', class: 'queue', 'aria-label': 'Queue' });
  const mineList = h('ul', { test: 'my-tickets', class: 'my-tickets', 'aria-label': 'My tickets' });
  const empty = h('p', { test: 'next-ticket-empty', class: 'notice', role: 'status', hidden: true }, 'Nothing in the queue for you right now.');
  const full = h('p', { test: 'next-ticket-at-capacity', class: 'notice warn', role: 'status', hidden: true }, 'You are at capacity: solve or hand over a ticket first.');
  const failure = h('p', { class: 'error', role: 'alert', hidden: true });
  const next = h('button', { type: 'button', test: 'next-ticket', class: 'primary next', 'aria-keyshortcuts': 'n' }, 'Next ticket ', h('kbd', {}, 'n'));
  const prev = h('button', { type: 'button', class: 'quiet', 'aria-label': 'Previous page' }, '‹');
  const more = h('button', { type: 'button', class: 'quiet', 'aria-label': 'Next page' }, '›');
  const pageLabel = h('span', { class: 'muted' }, '');
  const byPriority = h('span', { class: 'muted by-priority' });

  // What the lists stand on: `loading` until the first answer, `failed` while the last
  // load failed (the error is said, not shown as an empty queue), else `loaded`.
  const state = { queue: 'loading', mine: 'loading' };
  const queueError = h('p', { test: 'queue-error', class: 'error', role: 'alert', hidden: true });
  const mineError = h('p', { class: 'error', role: 'alert', hidden: true });
  const emptyText = (which, text) => (state[which] === 'loading' ? 'Loading…'
    : state[which] === 'failed' ? 'Not loaded.' : text);

  // A failed load is said beside its list and tried again after a pause (and at the next
  // change or reconnect): one retry waiting per list, however many loads fail meanwhile.
  const retries = {};
  function failed(which, errorEl, err, retry) {
    state[which] = 'failed';
    errorEl.textContent = `Could not load ${which === 'queue' ? 'the queue' : 'your tickets'}: ${err.describe ? err.describe() : String(err)}. Trying again…`;
    errorEl.hidden = false;
    if (retries[which]) return;
    retries[which] = setTimeout(() => { retries[which] = null; if (!destroyed) retry(); }, 5000);
  }

  function drawQueue() {
    replace(list, items.map((t) => queueRow(t, open)));
    if (!items.length) list.append(h('li', { class: 'muted empty' }, emptyText('queue', 'The queue is empty.')));
    pageLabel.textContent = `page ${page} of ${pages}`;
    prev.disabled = page <= 1;
    more.disabled = page >= pages;
  }

  function drawMine() {
    replace(mineList, mine.map((t) => mineRow(t, open)));
    if (!mine.length) mineList.append(h('li', { class: 'muted empty' }, emptyText('mine', 'No tickets assigned to you.')));
  }

  const loadQueue = coalesce(async () => {
    let answer;
    try {
      answer = await api.get('/queue', { page, per_page: PAGE });
    } catch (err) {
      if (err.status === 401) return;  // back to the login form
      failed('queue', queueError, err, () => loadQueue());
      drawQueue();
      return;
    }
    pages = Math.max(1, Math.ceil(answer.total / PAGE));
    if (page > pages) { page = pages; return loadQueue(); }
    items = answer.items;
    state.queue = 'loaded';
    queueError.hidden = true;
    size.textContent = String(answer.total);
    drawQueue();
  });

  const loadMine = coalesce(async () => {
    let answers;
    try {
      answers = await Promise.all(OPEN_STATUSES.map((status) =>
        api.getAll('/tickets', { assignee: 'me', status })));
    } catch (err) {
      if (err.status === 401) return;
      failed('mine', mineError, err, () => loadMine());
      drawMine();
      return;
    }
    mine = answers.flatMap((a) => a.items).sort((a, b) => a.id - b.id);
    state.mine = 'loaded';
    mineError.hidden = true;
    drawMine();
  });

  const refresh = () => { loadQueue(); loadMine(); };

  async function takeNext() {
    if (next.disabled) return; // one request at a time, by button or by key
    empty.hidden = true;
    full.hidden = true;
    failure.hidden = true;
    next.disabled = true;
    try {
      const ticket = await api.post('/queue/next');
      if (ticket === null) empty.hidden = false;
      else open(ticket.id);
      refresh();
    } catch (err) {
      if (err.status === 409) full.hidden = false;
      else { failure.textContent = err.describe ? err.describe() : String(err); failure.hidden = false; }
    } finally {
      next.disabled = false;
    }
  }

  next.addEventListener('click', takeNext);
  prev.addEventListener('click', () => { if (page > 1) { page -= 1; loadQueue(); } });
  more.addEventListener('click', () => { if (page < pages) { page += 1; loadQueue(); } });
  const onKey = (event) => {
    if (event.key !== 'n' || event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
    const target = event.target;
    if (target && (target.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(target.tagName))) return;
    event.preventDefault();
    takeNext();
  };
  document.addEventListener('keydown', onKey);

  el.append(
    h('section', { class: 'panel', 'aria-labelledby': 'next-title' },
      h('h2', { id: 'next-title', class: 'visually-hidden' }, 'Next ticket'),
      next, empty, full, failure),
    h('section', { class: 'panel grow', 'aria-labelledby': 'queue-title' },
      h('h2', { id: 'queue-title' }, 'Queue ', size),
      byPriority, queueError, list,
      h('div', { class: 'pager' }, prev, pageLabel, more)),
    h('section', { class: 'panel', 'aria-labelledby': 'mine-title' },
      h('h2', { id: 'mine-title' }, 'My tickets'), mineError, mineList));
  drawQueue();
  drawMine();

  const off = [
    live.on('queue.updated', (data) => {
      if (data && typeof data.size === 'number') size.textContent = String(data.size);
      if (data && data.by_priority) {
        byPriority.textContent = priorityCounts(data.by_priority);
      }
      loadQueue();
    }),
    live.on('ticket.created', () => loadQueue()),
    live.on('ticket.updated', (t) => {
      // Refetch only what this change can touch: the queue page, or my tickets.
      const queued = !t.assignee_id && ['new', 'open'].includes(t.status);
      if (queued || items.some((i) => i.id === t.id)) loadQueue();
      if (t.assignee_id === me.id || mine.some((i) => i.id === t.id)) loadMine();
    }),
    live.on('refetch', refresh),
  ];
  // What changed between the first loads and this tab's joining its rooms is in no event
  // it will get: load again once the first connection is up (reconnects catch up).
  let wasLive = false;
  let connects = 0;
  off.push(live.onStatus((up) => {
    if (up && !wasLive && ++connects === 1) refresh();
    wasLive = up;
  }));
  const clock = setInterval(drawQueue, 30000);
  refresh();
  return {
    refresh,
    destroy: () => {
      destroyed = true;
      Object.values(retries).forEach((timer) => clearTimeout(timer));
      off.forEach((fn) => fn());
      clearInterval(clock);
      document.removeEventListener('keydown', onKey);
    },
  };
}
