// The open ticket: header and actions, messages with live delivery status, the composer,
// the customer panel and the customer's whole cross-channel timeline.
import { h, replace, when, until, span, coalesce } from './dom.js';
import { dueAt } from './queue.js';

const STATUSES = ['new', 'open', 'pending', 'solved', 'closed'];
const PRIORITIES = ['low', 'normal', 'high', 'urgent'];
const TIMELINE_PAGE = 200;
const channelKind = (channel) => (typeof channel === 'string' ? channel : (channel && channel.kind) || '');

function attachmentList(api, attachments) {
  if (!attachments || !attachments.length) return null;
  return h('ul', { class: 'attachments' }, attachments.map((a) => {
    const size = a.size >= 1048576 ? `${(a.size / 1048576).toFixed(1)} MB` : `${Math.max(1, Math.round((a.size || 0) / 1024))} KB`;
    const label = `${a.filename} (${size})`;
    let path = null;
    try {
      const url = new URL(a.url, location.href);
      if (/^\/api\/v1\/attachments\/\d+$/.test(url.pathname)) path = url.pathname.slice('/api/v1'.length);
    } catch { /* not a URL */ }
    if (!path) {
      return h('li', {}, a.url ? h('a', { href: a.url, rel: 'noopener noreferrer', target: '_blank' }, label) : label);
    }
    const button = h('button', { type: 'button', class: 'link' }, `⬇ ${label}`);
    button.addEventListener('click', () => api.download(path, a.filename).catch((err) => alert(err.message)));
    return h('li', {}, button);
  }));
}

function resendButton(api, m) {
  // A public reply that ended `failed` can be sent once more; its row is replaced when the
  // `message.updated` that follows arrives (queued, then sent or failed again).
  if (m.direction !== 'outbound' || m.internal || m.delivery_status !== 'failed') return null;
  const button = h('button', { type: 'button', test: 'message-resend', class: 'link' }, 'Send again');
  button.addEventListener('click', async () => {
    button.disabled = true;
    try {
      await api.post(`/tickets/${m.ticket_id}/messages/${m.id}/resend`, {});
    } catch (err) { // said beside the button, as every other refusal is said in the page
      button.disabled = false;
      button.after(h('span', { class: 'error', role: 'alert' }, ` ${err.describe ? err.describe() : String(err)}`));
    }
  });
  return button;
}

function messageRow(api, m) {
  const author = (m.author && (m.author.name || m.author.type)) || '';
  return h('li', {
    test: 'message', class: `message ${m.direction}${m.internal ? ' internal' : ''}`,
    data: { 'message-id': m.id, direction: m.direction, internal: Boolean(m.internal) },
  },
  h('div', { class: 'message-head' },
    h('span', { class: 'author' }, author),
    m.internal ? h('span', { class: 'badge note' }, 'internal note') : null,
    h('span', { class: 'muted' }, `via ${channelKind(m.channel)}`),
    h('time', { datetime: m.created_at, class: 'muted' }, when(m.created_at)),
    h('span', { class: 'spacer' }),
    h('span', { test: 'delivery-status', class: `delivery ${m.delivery_status || ''}`, title: 'Delivery status' }, m.delivery_status || ''),
  ),
  m.delivery_error || m.delivery_status === 'failed'
    ? h('div', { class: 'message-failure' },
      m.delivery_error ? h('span', { class: 'error' }, m.delivery_error) : null,
      resendButton(api, m))
    : null,
  m.subject ? h('p', { class: 'message-subject' }, m.subject) : null,
  h('p', { class: 'message-text', dir: 'auto' }, m.text || ''),
  attachmentList(api, m.attachments));
}

function timelineBody(item, meId) {
  if (item.type === 'message' && item.message) {
    const m = item.message;
    const who = (m.author && (m.author.name || m.author.type)) || '';
    const text = (m.text || '').length > 400 ? `${m.text.slice(0, 400)}…` : (m.text || '');
    return [h('p', { class: 'tl-who' }, `${who}${m.internal ? ' (internal note)' : ''}`), h('p', { class: 'tl-text' }, text)];
  }
  if (item.type === 'call' && item.call) {
    const c = item.call;
    const facts = [`${c.direction || ''} call`, c.outcome || c.status || '',
      c.wait_seconds != null ? `waited ${span(c.wait_seconds)}` : '',
      c.talk_seconds != null ? `talked ${span(c.talk_seconds)}` : ''].filter(Boolean).join(' · ');
    return [h('p', {}, facts),
      c.recording_url ? h('p', {}, h('a', { href: c.recording_url, rel: 'noopener noreferrer', target: '_blank' }, 'Recording')) : null,
      c.transcript ? h('blockquote', { class: 'tl-text' }, c.transcript) : null];
  }
  return [h('p', { class: 'tl-event' }, describeEvent(item.event || {}, meId))];
}

const words = (value) => String(value ?? '—').replace(/[_.]/g, ' ');
const agentName = (id, meId) => (id === meId ? 'you' : `agent #${id}`);

// A ticket event in words ("Priority normal → urgent (urgency 91)"), not its raw data.
function describeEvent(e, meId) {
  const d = e.data || {};
  const by = e.actor && e.actor.type === 'agent' && e.actor.id != null ? ` by ${agentName(e.actor.id, meId)}` : '';
  switch (e.name) {
    case 'ticket.created':
      return `Ticket opened via ${words(d.channel)}${d.previous_ticket_id ? `, following #${d.previous_ticket_id}` : ''}`;
    case 'status.changed':
      return `Status ${words(d.from)} → ${words(d.to)}${by}`;
    case 'ticket.reopened':
      return by ? `Reopened${by}` : 'Reopened by a new message from the customer';
    case 'escalated':
      return `Escalated from level ${d.from} to level ${d.to}${by}${d.reason ? `: ${d.reason}` : ''}`;
    case 'assigned':
      if (d.to == null && d.why === 'below_level') return `Back to the queue: ${agentName(d.from, meId)} ${d.from === meId ? 'are' : 'is'} below its new level`;
      if (d.to == null) return `Unassigned${by}`;
      return `Assigned to ${agentName(d.to, meId)}${by || (d.via === 'queue.next' ? ' (taken from the queue)' : ' by routing')}`;
    case 'priority.changed':
      if (d.manual && d.from === d.to) return `Priority ${words(d.to)} kept by hand${by} (no longer scored)`;
      return `Priority ${words(d.from)} → ${words(d.to)}${by}${d.manual ? ' (set by hand)' : ''}${!d.manual && d.urgency != null ? ` (urgency ${d.urgency})` : ''}`;
    case 'sla.warning':
      return `SLA warning: ${words(d.clock)} due ${d.due_at ? when(d.due_at) : 'soon'}`;
    case 'sla.breached':
      return `SLA breached: ${words(d.clock)}`;
    case 'reply.resent':
      return `A failed reply sent again${by}`;
    default: {
      const data = Object.entries(d).map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : v}`).join(', ');
      return `${e.name || 'event'}${data ? ` — ${data}` : ''}${by}`;
    }
  }
}

function timelineRow(item, currentId, open, meId) {
  const kind = channelKind(item.channel);
  const link = h('a', { href: `/tickets/${item.ticket_id}` }, `#${item.ticket_id}`);
  link.addEventListener('click', (event) => { event.preventDefault(); open(item.ticket_id); });
  return h('li', {
    test: 'timeline-item', class: `timeline-item tl-${item.type}${item.ticket_id === currentId ? ' current' : ''}`,
    data: { type: item.type, channel: kind, 'ticket-id': item.ticket_id },
  },
  h('div', { class: 'tl-head' },
    h('span', { class: `chan chan-${kind}` }, kind || '—'),
    h('span', { class: 'muted' }, item.type),
    h('time', { datetime: item.at, class: 'muted' }, when(item.at)), link),
  timelineBody(item, meId));
}

export function create(center, { api, live, me }) {
  let ticket = null;
  let theirTickets = new Set(); // the open ticket's customer's other tickets (ids)
  let messages = new Map();
  const messageSeq = new Map(); // message id → the event number last shown for it
  let reasons = null; // the configured contact reasons (GET /contact-reasons), read once
  let changeWatchers = [];
  let chain = Promise.resolve();
  let typingTimer = null;
  let lastTyping = 0;
  const parts = {};
  const open = (id) => { history.pushState({}, '', `/tickets/${id}`); load(id); };

  function notifyChange() { changeWatchers.forEach((fn) => fn()); }

  function showError(err) {
    if (!parts.error) return;
    parts.error.textContent = err ? (err.describe ? err.describe() : String(err)) : '';
    parts.error.hidden = !err;
  }

  // Ticket changes go one after another, so two quick edits cannot cross. A refused change
  // puts its `control` back to what is stored (the timeline follows the echoed event).
  function change(fn, control = null) {
    const id = ticket?.id;
    chain = chain.then(async () => {
      showError(null);
      try {
        const updated = await fn();
        if (updated && updated.id === ticket?.id) { ticket = { ...ticket, ...updated }; drawHeader(); }
        notifyChange();
      } catch (err) {
        if (ticket?.id !== id) return; // about a ticket no longer on screen
        showError(err);
        drawHeader({ reset: control });
      }
    });
    return chain;
  }

  function reasonControl() {
    const id = 'ticket-reason';
    if (reasons && reasons.length) {
      const select = h('select', { id, test: 'contact-reason' }, h('option', { value: '' }, '—'),
        reasons.map((r) => h('option', { value: r, selected: r === ticket.contact_reason }, r)));
      return select;
    }
    return h('input', { id, test: 'contact-reason', type: 'text', value: ticket.contact_reason || '', placeholder: 'e.g. billing', maxlength: 200 });
  }

  // `reset`: a control to put back even while the agent is on it (its change was refused).
  function drawHeader({ reset = null } = {}) {
    if (!ticket || !parts.view) return;
    const view = parts.view;
    view.dataset.ticketId = String(ticket.id);
    view.dataset.status = ticket.status;
    view.dataset.priority = ticket.priority;
    const sla = ticket.sla || {};
    replace(parts.title, ticket.subject || '(no subject)');
    replace(parts.meta,
      h('span', {}, `#${ticket.id}`),
      h('span', { class: `chan chan-${channelKind(ticket.channel)}` }, channelKind(ticket.channel)),
      h('span', { class: `badge status-${ticket.status}` }, ticket.status),
      h('span', { class: `badge prio-${ticket.priority}` }, ticket.priority),
      h('span', {}, `level ${ticket.level}`),
      h('span', { title: 'urgency score' }, `urgency ${ticket.urgency}`),
      ticket.assignee_id ? h('span', {}, ticket.assignee_id === me.id ? 'assigned to you' : `assignee #${ticket.assignee_id}`) : h('span', {}, 'unassigned'),
      ticket.identity_verified === false ? h('span', { class: 'badge warn', title: 'The customer claimed this identity; it was not verified' }, 'unverified identity') : null);
    // The countdown beside the deadline it counts to (first response until one was given).
    const counting = dueAt(ticket);
    const countdown = (iso) => (!sla.breached && iso && iso === counting
      ? h('span', { class: 'muted' }, ` (${until(iso)})`) : null);
    replace(parts.sla,
      h('span', {}, `First response due: ${sla.first_response_due_at ? when(sla.first_response_due_at) : '—'}`,
        countdown(sla.first_response_due_at)),
      h('span', {}, `Resolution due: ${sla.resolution_due_at ? when(sla.resolution_due_at) : '—'}`,
        countdown(sla.resolution_due_at)),
      sla.breached ? h('span', { class: 'badge breached' }, 'SLA breached') : null);
    replace(parts.reasons, (ticket.urgency_reasons || []).map((r) => h('li', { test: 'urgency-reason', class: 'urgency-reason' },
      h('strong', {}, r.factor), ` +${r.points}`, r.detail ? ` — ${r.detail}` : '')));
    const free = (control) => control === reset || document.activeElement !== control;
    if (free(parts.status)) parts.status.value = ticket.status;
    if (free(parts.priority)) parts.priority.value = ticket.priority;
    if (free(parts.reason)) parts.reason.value = ticket.contact_reason || '';
    if (free(parts.tags)) parts.tags.value = (ticket.tags || []).join(', ');
    parts.level.min = String(ticket.level + 1);
    if (Number(parts.level.value) <= ticket.level) parts.level.value = String(ticket.level + 1);
  }

  // The list scrolls on its own (the composer stays in view): it follows the latest message
  // unless the agent scrolled up to read.
  function drawMessages({ first = false } = {}) {
    const list = parts.messages;
    const atEnd = first || list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    replace(list, [...messages.values()].sort((a, b) => a.id - b.id).map((m) => messageRow(api, m)));
    if (!messages.size) list.append(h('li', { class: 'muted' }, 'No messages yet.'));
    if (atEnd) list.scrollTop = list.scrollHeight;
  }

  // Events carry a long message cut (`truncated`): keep the whole text already here, or
  // read the whole message once.
  const readWhole = coalesce(async () => {
    if (!ticket) return;
    const id = ticket.id;
    try {
      const { messages: list } = await api.get(`/tickets/${id}`);
      if (ticket && ticket.id === id) {
        list.filter((m) => messages.has(m.id) && messages.get(m.id).truncated).forEach((m) => upsertMessage(m));
      }
    } catch { /* a reload shows it whole */ }
  }, 200);

  function upsertMessage(m, { keep = false } = {}) {
    if (!ticket || m.ticket_id !== ticket.id) return;
    if (keep && messages.has(m.id)) return;
    if (m.truncated) {
      const known = messages.get(m.id);
      if (known && !known.truncated) m = { ...m, text: known.text, html: known.html, truncated: false };
      else readWhole();
    }
    const fresh = !messages.has(m.id);
    messages.set(m.id, m);
    const row = parts.messages.querySelector(`[data-message-id="${m.id}"]`);
    if (row && !fresh) row.replaceWith(messageRow(api, m));
    else drawMessages();
  }

  const loadCustomer = coalesce(async () => {
    if (!ticket) return;
    const id = ticket.customer_id;
    let customer, first, others;
    try {
      [customer, first, others] = await Promise.all([
        api.get(`/customers/${id}`),
        api.get(`/customers/${id}/timeline`, { per_page: TIMELINE_PAGE }),
        api.get('/tickets', { customer: id, per_page: 20 })]);
    } catch (err) { // said where the stale history is, not only in the browser's console
      if (ticket && ticket.customer_id === id) {
        replace(parts.timelineNote, h('span', { role: 'alert', class: 'error' },
          `The history could not be refreshed: ${err.describe ? err.describe() : String(err)}`));
      }
      throw err;
    }
    let items = first.items;
    let lastPage = Math.ceil(first.total / TIMELINE_PAGE);
    if (lastPage > 1) {
      // Long histories: the most recent page (the API lists oldest first), with the page
      // before it when that one holds only a few items (201 items: 1 on the last page).
      items = (await api.get(`/customers/${id}/timeline`, { per_page: TIMELINE_PAGE, page: lastPage })).items;
      if (items.length < TIMELINE_PAGE / 2) {
        const before = await api.get(`/customers/${id}/timeline`, { per_page: TIMELINE_PAGE, page: lastPage - 1 });
        items = [...before.items, ...items];
        lastPage -= 1;
      }
    }
    if (!ticket || ticket.customer_id !== id) return;
    // (the tickets listed, and those the timeline shows: a long history's older ones too)
    theirTickets = new Set([...others.items.map((t) => t.id), ...items.map((i) => i.ticket_id)]);
    drawCustomer(customer, others.items);
    const row = (item) => timelineRow(item, ticket.id, open, me.id);
    replace(parts.timeline, items.map(row));
    if (!items.length) parts.timeline.append(h('li', { class: 'muted' }, 'Nothing yet.'));
    // Long histories open at their latest page; earlier pages are read on request.
    let shown = items.length;
    let from = lastPage;
    const earlier = h('button', { type: 'button', test: 'timeline-earlier', class: 'quiet link' }, 'Show earlier');
    const note = () => replace(parts.timelineNote, first.total > shown
      ? [`The latest ${shown} of ${first.total} items. `, earlier] : `${first.total} items across every channel.`);
    earlier.addEventListener('click', async () => {
      earlier.disabled = true;
      try {
        const page = await api.get(`/customers/${id}/timeline`, { per_page: TIMELINE_PAGE, page: from - 1 });
        if (!ticket || ticket.customer_id !== id) return;
        from -= 1;
        parts.timeline.prepend(...page.items.map(row));
        shown += page.items.length;
        note();
      } catch (err) { showError(err); } finally { earlier.disabled = false; }
    });
    note();
  }, 100);

  function drawCustomer(customer, others) {
    replace(parts.customer,
      h('h2', {}, customer.name || `Customer ${customer.id}`,
        customer.tier === 'vip' ? h('span', { class: 'badge vip' }, 'VIP') : h('span', { class: 'badge' }, customer.tier || 'standard')),
      h('ul', { class: 'identities', 'aria-label': 'Identities' },
        (customer.identities || []).map((i) => h('li', { test: 'identity', title: i.verified ? 'verified' : 'not verified' }, `${i.kind}: ${i.value}`))),
      h('h3', {}, 'Tickets'),
      h('ul', { class: 'other-tickets' }, others.map((t) => {
        const link = h('a', { href: `/tickets/${t.id}`, 'aria-current': t.id === ticket.id ? 'page' : null },
          `#${t.id} ${t.subject || '(no subject)'} · ${t.status}`);
        link.addEventListener('click', (event) => { event.preventDefault(); open(t.id); });
        return h('li', {}, link);
      })));
  }

  function build() {
    parts.title = h('h1', { id: 'ticket-title' });
    parts.meta = h('div', { class: 'meta' });
    parts.sla = h('div', { class: 'meta sla-times' });
    parts.reasons = h('ul', { class: 'reasons', 'aria-label': 'Why this urgency' });
    parts.viewers = h('div', { test: 'viewers', class: 'viewers muted', role: 'status' });
    parts.typing = h('div', { class: 'typing muted', role: 'status' });
    parts.error = h('p', { class: 'error', role: 'alert', hidden: true });
    parts.status = h('select', { id: 'ticket-status', test: 'set-status' }, STATUSES.map((s) => h('option', { value: s }, s)));
    parts.priority = h('select', { id: 'ticket-priority', test: 'set-priority' }, PRIORITIES.map((p) => h('option', { value: p }, p)));
    parts.reason = reasonControl();
    parts.tags = h('input', { id: 'ticket-tags', type: 'text', placeholder: 'tag, tag', class: 'tags' });
    parts.level = h('input', { id: 'escalate-level', test: 'escalate-level', type: 'number', min: 2, max: 10, value: 2 });
    parts.escalateReason = h('input', { id: 'escalate-reason', test: 'escalate-reason', type: 'text', required: true });
    const escalateForm = h('form', { class: 'escalate-form', hidden: true, 'aria-label': 'Escalate' },
      h('label', { for: 'escalate-level' }, 'Level'), parts.level,
      h('label', { for: 'escalate-reason' }, 'Reason'), parts.escalateReason,
      h('button', { type: 'submit', test: 'escalate-submit' }, 'Escalate'));
    const escalate = h('button', { type: 'button', test: 'escalate', 'aria-expanded': 'false' }, 'Escalate…');
    escalate.addEventListener('click', () => {
      escalateForm.hidden = !escalateForm.hidden;
      escalate.setAttribute('aria-expanded', String(!escalateForm.hidden));
      if (!escalateForm.hidden) parts.escalateReason.focus();
    });
    escalateForm.addEventListener('submit', (event) => {
      event.preventDefault();
      const id = ticket.id;
      change(async () => {
        const updated = await api.post(`/tickets/${id}/escalate`, { level: Number(parts.level.value), reason: parts.escalateReason.value });
        parts.escalateReason.value = '';
        escalateForm.hidden = true;
        escalate.setAttribute('aria-expanded', 'false');
        return updated;
      });
    });
    parts.status.addEventListener('change', () => {
      const id = ticket.id;
      const body = { status: parts.status.value };
      const reason = parts.reason.value.trim();
      if (reason && reason !== (ticket.contact_reason || '')) body.contact_reason = reason;
      change(() => api.patch(`/tickets/${id}`, body), parts.status);
    });
    parts.priority.addEventListener('change', () => {
      const id = ticket.id;
      change(() => api.patch(`/tickets/${id}`, { priority: parts.priority.value }), parts.priority);
    });
    parts.reason.addEventListener('change', () => {
      const id = ticket.id;
      const value = parts.reason.value.trim() || null;
      if (value === (ticket.contact_reason || null)) return;
      change(() => api.patch(`/tickets/${id}`, { contact_reason: value }), parts.reason);
    });
    parts.tags.addEventListener('change', () => {
      const id = ticket.id;
      const tags = parts.tags.value.split(',').map((t) => t.trim()).filter(Boolean);
      change(() => api.patch(`/tickets/${id}`, { tags }), parts.tags);
    });

    parts.messages = h('ol', { class: 'messages', 'aria-label': 'Messages' });
    const text = h('textarea', { id: 'composer-text', test: 'composer-text', rows: 4, dir: 'auto', placeholder: 'Write a reply to the customer, or an internal note for colleagues' });
    parts.composer = text;
    const send = (internal) => async () => {
      const body = text.value;
      showError(null);
      if (!body.trim() || !ticket) return;
      const id = ticket.id;
      try {
        const message = await api.post(`/tickets/${id}/messages`, { text: body, internal });
        // (what was typed while it went out stays, as the draft)
        const rest = text.value.startsWith(body) ? text.value.slice(body.length).trimStart() : text.value;
        text.value = rest;
        api.drafts.set(me.id, id, rest);
        upsertMessage(message, { keep: true });
        loadCustomer();
        notifyChange();
      } catch (err) { showError(err); }
    };
    const reply = h('button', { type: 'button', test: 'send-reply', class: 'primary' }, 'Send reply');
    const note = h('button', { type: 'button', test: 'send-note' }, 'Add internal note');
    reply.addEventListener('click', send(false));
    note.addEventListener('click', send(true));
    text.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) { event.preventDefault(); send(false)(); }
    });
    text.addEventListener('input', () => {
      if (ticket) api.drafts.set(me.id, ticket.id, text.value);
      if (ticket && Date.now() - lastTyping > 2000) { lastTyping = Date.now(); live.typing(ticket.id); }
    });
    parts.customer = h('section', { test: 'customer-panel', class: 'customer-panel panel', 'aria-label': 'Customer' });
    parts.timeline = h('ol', { class: 'timeline', 'aria-label': 'Customer timeline' });
    parts.timelineNote = h('p', { class: 'muted' });
    const field = (label, control) => h('div', { class: 'field' }, h('label', { for: control.id }, label), control);
    parts.view = h('section', { test: 'ticket-view', class: 'ticket-view', 'aria-labelledby': 'ticket-title' },
      h('div', { class: 'conversation' },
        h('header', { class: 'ticket-head' }, parts.title, parts.meta, parts.sla, parts.reasons,
          h('div', { class: 'presence-line' }, parts.viewers, parts.typing)),
        h('div', { class: 'actions' },
          field('Status', parts.status), field('Priority', parts.priority),
          field('Contact reason', parts.reason), field('Tags', parts.tags),
          h('div', { class: 'field' }, h('span', { class: 'label' }, ' '), escalate)),
        escalateForm, parts.error, parts.messages,
        h('div', { class: 'composer' },
          h('label', { for: 'composer-text', class: 'visually-hidden' }, 'Message'), text,
          h('div', { class: 'composer-actions' }, h('span', { class: 'muted' }, 'Ctrl+Enter sends the reply'), note, reply))),
      h('aside', { class: 'ticket-side' }, parts.customer,
        h('section', { class: 'panel', 'aria-labelledby': 'timeline-title' },
          h('h2', { id: 'timeline-title' }, 'Timeline'), parts.timelineNote, parts.timeline)));
    return parts.view;
  }

  let wanted = null; // the ticket asked for last: an answer for another is not shown

  async function load(id) {
    wanted = id;
    showError(null);
    if (reasons === null) {
      try { reasons = (await api.getAll('/contact-reasons')).items; } catch { reasons = []; }
    }
    let data;
    try {
      data = await api.get(`/tickets/${id}`);
    } catch (err) {
      if (wanted !== id) return;
      ticket = null;
      live.showTicket(null);
      replace(center, h('section', { class: 'placeholder', role: 'alert' },
        h('h1', {}, err.status === 404 ? `Ticket #${id} does not exist` : 'The ticket could not be loaded'),
        h('p', {}, err.describe ? err.describe() : String(err))));
      return;
    }
    if (wanted !== id) return;
    const { messages: list, ...rest } = data;
    // The same ticket again (a click on it, a refetch): who else views it is told only when
    // that changes, and a draft is the agent's own; both stay.
    const kept = ticket && ticket.id === rest.id && parts.view && parts.view.isConnected
      ? { viewers: parts.viewers.textContent, draft: parts.composer.value } : null;
    ticket = rest;
    messages = new Map(list.map((m) => [m.id, m]));
    replace(center, build());
    drawHeader();
    drawMessages({ first: true });
    parts.viewers.textContent = kept ? kept.viewers : '';
    parts.composer.value = (kept && kept.draft) || api.drafts.get(me.id, ticket.id);
    live.showTicket(ticket.id);
    loadCustomer();
    parts.title.setAttribute('tabindex', '-1');
    // Stacked under the queue (a narrow window): a ticket just opened is scrolled to.
    if (!kept && window.matchMedia('(max-width: 820px)').matches) parts.view.scrollIntoView();
  }

  function close() {
    wanted = null;
    ticket = null;
    live.showTicket(null);
    replace(center, h('section', { class: 'placeholder' },
      h('h1', {}, 'No ticket open'),
      h('p', {}, 'Press ', h('kbd', {}, 'n'), ' or the Next ticket button to take the most urgent ticket you can work, or pick one from the queue.')));
  }

  const refetch = coalesce(async () => { if (wanted !== null) await load(wanted); }, 200);
  // Events from different processes (a web request, a routing job) are published after their
  // commits, in no guaranteed order: a job's event about an older state can arrive after a
  // newer one. So an update is shown at once and then settled on the ticket as stored now
  // (header only: the messages and a draft in the composer stay as they are).
  const settle = coalesce(async () => {
    if (!ticket) return;
    const id = ticket.id;
    try {
      const { messages: _unused, ...stored } = await api.get(`/tickets/${id}`);
      if (ticket && ticket.id === id) { ticket = { ...ticket, ...stored }; drawHeader(); }
    } catch { /* the next event or a reload shows it */ }
  }, 250);
  // After a reconnect, the missed events are replayed once live ones may already have
  // arrived: an older state of a message (`sent`) must not overwrite a newer one (`delivered`).
  function newest(m, env) {
    if (!env || typeof env.seq !== 'number') return true;
    if ((messageSeq.get(m.id) ?? -1) > env.seq) return false;
    messageSeq.set(m.id, env.seq);
    return true;
  }
  const off = [
    live.on('ticket.updated', (t) => { if (ticket && t.id === ticket.id) { ticket = { ...ticket, ...t }; drawHeader(); settle(); loadCustomer(); } }),
    live.on('message.created', (m, env) => { if (ticket && m.ticket_id === ticket.id && newest(m, env)) { upsertMessage(m); loadCustomer(); } }),
    live.on('message.updated', (m, env) => { if (ticket && m.ticket_id === ticket.id && newest(m, env)) { upsertMessage(m); loadCustomer(); } }),
    live.on('ticket.viewers', (data) => {
      if (!ticket || data.ticket_id !== ticket.id) return;
      const others = (data.viewers || []).filter((v) => v.id !== me.id);
      parts.viewers.textContent = others.length ? `Also viewing: ${others.map((v) => v.name).join(', ')}` : '';
    }),
    live.on('typing', (data) => {
      if (!ticket || data.ticket_id !== ticket.id || data.agent_id === me.id) return;
      parts.typing.textContent = `${data.name || (data.customer_id ? 'The customer' : 'Someone')} is typing…`;
      clearTimeout(typingTimer);
      typingTimer = setTimeout(() => { parts.typing.textContent = ''; }, 4000);
    }),
    live.on('refetch', refetch),
    // The customer's whole timeline: what they say or are told on their other tickets, and
    // a new ticket of theirs (another channel), show up too.
    live.on('ticket.created', (t) => { if (ticket && t.customer_id === ticket.customer_id) loadCustomer(); }),
    live.on('ticket.updated', (t) => { if (ticket && t.id !== ticket.id && t.customer_id === ticket.customer_id) loadCustomer(); }),
    live.on('message.created', (m) => { if (ticket && m.ticket_id !== ticket.id && theirTickets.has(m.ticket_id)) loadCustomer(); }),
  ];

  return {
    open: load,
    close,
    onChange: (fn) => changeWatchers.push(fn),
    destroy: () => { off.forEach((fn) => fn()); live.showTicket(null); changeWatchers = []; },
  };
}
