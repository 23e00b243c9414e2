// Administration: channels (webhook URLs to paste into providers), agents, routing mode and
// contact reasons, SLA policies with business hours. Every change goes through the REST API.
import { h, replace, option } from './dom.js';

const PROVIDERS = {
  api: { kinds: ['api'], settings: ['callback_url'], secrets: ['signing_secret'] },
  raw_mime: { kinds: ['email'], settings: ['address'], secrets: ['signing_secret'] },
  postmark: { kinds: ['email'], settings: ['address'], secrets: ['basic_auth_user', 'basic_auth_password'] },
  mailgun: { kinds: ['email'], settings: ['address'], secrets: ['signing_key'] },
  sendgrid: { kinds: ['email'], settings: ['address'], secrets: ['basic_auth_user', 'basic_auth_password'] },
  widget: { kinds: ['chat'], settings: ['website'], secrets: ['identity_secret'] },
  twilio: { kinds: ['sms', 'whatsapp', 'voice'], settings: ['account_sid', 'phone_number'], secrets: ['auth_token'] },
  meta: { kinds: ['whatsapp', 'messenger', 'instagram'], settings: ['phone_number_id', 'page_id', 'instagram_account_id'], secrets: ['app_secret', 'verify_token', 'access_token'] },
  telegram: { kinds: ['telegram'], settings: [], secrets: ['secret_token', 'bot_token'] },
  x: { kinds: ['x'], settings: ['user_id'], secrets: ['consumer_secret', 'access_token'] },
};
const KINDS = ['email', 'chat', 'voice', 'sms', 'whatsapp', 'messenger', 'instagram', 'telegram', 'x', 'api'];
const ROLES = ['agent', 'supervisor', 'admin'];
const PRIORITIES = ['urgent', 'high', 'normal', 'low'];
const DAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];
const list = (text) => text.split(',').map((s) => s.trim()).filter(Boolean);

let uid = 0;
function field(label, control, hint) {
  if (!control.id) control.id = `admin-field-${uid += 1}`;
  return h('div', { class: 'field' }, h('label', { for: control.id }, label), control, hint ? h('span', { class: 'hint' }, hint) : null);
}

function reporter() {
  const el = h('p', { role: 'status', class: 'hint' });
  return {
    el,
    ok: (text) => { el.className = 'ok'; el.textContent = text; },
    fail: (err) => { el.className = 'error'; el.textContent = err.describe ? err.describe() : String(err); },
  };
}

function channelsSection(api) {
  const rows = h('tbody');
  const status = reporter();
  const name = h('input', { required: true, placeholder: 'Support email' });
  const provider = h('select', {}, Object.keys(PROVIDERS).map((p) => option(p)));
  const kind = h('select');
  const extra = h('div', { class: 'fields' });
  let inputs = [];
  const drawProvider = () => {
    const spec = PROVIDERS[provider.value];
    replace(kind, spec.kinds.map((k) => option(k)));
    inputs = [
      ...spec.settings.map((key) => ({ key, group: 'settings', el: h('input', { placeholder: key }) })),
      ...spec.secrets.map((key) => ({ key, group: 'secrets', el: h('input', { type: 'password', autocomplete: 'new-password', placeholder: 'write-only' }) }))];
    replace(extra, inputs.map((i) => field(`${i.group === 'secrets' ? 'secret: ' : ''}${i.key}`, i.el)));
  };
  provider.addEventListener('change', drawProvider);
  drawProvider();
  const row = (c) => {
    const remove = h('button', { type: 'button', class: 'quiet' }, 'Delete');
    remove.addEventListener('click', async () => {
      if (!window.confirm(`Delete the channel “${c.name}”? Its webhook URL stops working.`)) return;
      try { await api.del(`/channels/${c.id}`); load(); status.ok(`Deleted ${c.name}.`); } catch (err) { status.fail(err); }
    });
    return h('tr', { test: 'channel-row', data: { 'channel-id': c.id } },
      h('td', {}, h('strong', {}, c.name)), h('td', {}, `${c.kind} · ${c.provider}`),
      h('td', { class: 'webhook' }, c.webhook_url),
      h('td', { class: 'hint' }, Object.entries(c.settings || {}).map(([k, v]) => `${k}: ${v}`).join(', ')),
      h('td', {}, remove));
  };
  async function load() {  // (callers do not wait: a failure is shown here, never unhandled)
    try {
      const answer = await api.getAll('/channels');
      replace(rows, answer.items.map(row));
    } catch (err) { status.fail(err); }
  }
  const form = h('form', { class: 'inline', 'aria-label': 'New channel' },
    field('Name', name), field('Provider', provider), field('Kind', kind), extra,
    h('button', { type: 'submit', class: 'primary' }, 'Create channel'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const body = { name: name.value.trim(), kind: kind.value, provider: provider.value, settings: {}, secrets: {} };
    for (const i of inputs) if (i.el.value.trim()) body[i.group][i.key] = i.el.value.trim();
    try {
      const created = await api.post('/channels', body);
      status.ok(`Created ${created.name}. Paste this webhook URL into the provider: ${created.webhook_url}`);
      name.value = '';
      drawProvider();
      load();
    } catch (err) { status.fail(err); }
  });
  load().catch(status.fail);
  return h('section', { class: 'panel', 'aria-labelledby': 'channels-title' },
    h('h2', { id: 'channels-title' }, 'Channels'),
    h('table', {}, h('thead', {}, h('tr', {}, ['Name', 'Kind · provider', 'Webhook URL', 'Settings', ''].map((c) => h('th', {}, c)))), rows),
    form, status.el);
}

function agentsSection(api) {
  const rows = h('tbody');
  const status = reporter();
  let teams = [];
  const patch = async (agent, changes) => {
    try { const updated = await api.patch(`/agents/${agent.id}`, changes); status.ok(`Saved ${updated.name}.`); return updated; } catch (err) { status.fail(err); load(); return null; }
  };
  const row = (a) => {
    const role = h('select', { 'aria-label': `Role of ${a.name}` }, ROLES.map((r) => option(r, r, r === a.role)));
    const level = h('input', { type: 'number', min: 1, max: 10, value: a.level, 'aria-label': `Level of ${a.name}` });
    const languages = h('input', { value: (a.languages || []).join(', '), placeholder: 'any', size: 8, 'aria-label': `Languages of ${a.name}` });
    const channels = h('input', { value: (a.channels || []).join(', '), placeholder: 'any', size: 10, 'aria-label': `Channels of ${a.name}` });
    const capacity = h('input', { type: 'number', min: 0.1, max: 100, step: 0.1, value: a.capacity, 'aria-label': `Capacity of ${a.name}` });
    const team = h('select', { 'aria-label': `Team of ${a.name}` }, option('', '—', a.team_id == null), teams.map((t) => option(String(t.id), t.name, t.id === a.team_id)));
    const active = h('button', { type: 'button' }, a.active ? 'Deactivate' : 'Activate');
    role.addEventListener('change', () => patch(a, { role: role.value }));
    level.addEventListener('change', () => patch(a, { level: Number(level.value) }));
    languages.addEventListener('change', () => patch(a, { languages: list(languages.value) }));
    channels.addEventListener('change', () => patch(a, { channels: list(channels.value) }));
    capacity.addEventListener('change', () => patch(a, { capacity: Number(capacity.value) }));
    team.addEventListener('change', () => patch(a, { team_id: team.value ? Number(team.value) : null }));
    active.addEventListener('click', async () => { if (await patch(a, { active: !a.active })) load(); });
    return h('tr', { test: 'agent-admin-row', data: { 'agent-id': a.id, active: a.active } },
      h('td', {}, h('strong', {}, a.name), h('br'), h('span', { class: 'hint' }, a.email), a.active ? null : h('span', { class: 'badge' }, 'inactive')),
      h('td', {}, role), h('td', {}, level), h('td', {}, languages), h('td', {}, channels), h('td', {}, capacity), h('td', {}, team), h('td', {}, active));
  };
  async function load() {  // (callers do not wait: a failure is shown here, never unhandled)
    try {
      const [agents, teamList] = await Promise.all([api.getAll('/agents'), api.getAll('/teams')]);
      teams = teamList.items || [];
      replace(rows, agents.items.map(row));
    } catch (err) { status.fail(err); }
  }
  const email = h('input', { type: 'email', required: true });
  const name = h('input', { required: true });
  const role = h('select', {}, ROLES.map((r) => option(r)));
  const level = h('input', { type: 'number', min: 1, max: 10, value: '1' });
  level.defaultValue = '1';
  const password = h('input', { type: 'password', autocomplete: 'new-password', minlength: 8 });
  const languages = h('input', { placeholder: 'en, es', size: 8 });
  const channels = h('input', { placeholder: KINDS.slice(0, 3).join(', '), size: 12 });
  const capacity = h('input', { type: 'number', min: 0.1, max: 100, step: 0.1, value: '1' });
  capacity.defaultValue = '1';
  const form = h('form', { class: 'inline', 'aria-label': 'New agent' },
    field('Email', email), field('Name', name), field('Role', role), field('Level', level),
    field('Password', password), field('Languages', languages), field('Channels', channels), field('Capacity', capacity),
    h('button', { type: 'submit', class: 'primary' }, 'Create agent'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const body = { email: email.value.trim(), name: name.value.trim(), role: role.value, level: Number(level.value),
      languages: list(languages.value), channels: list(channels.value), capacity: Number(capacity.value) };
    if (password.value) body.password = password.value;
    try {
      const created = await api.post('/agents', body);
      status.ok(`Created ${created.name}.`);
      form.reset();
      load();
    } catch (err) { status.fail(err); }
  });
  const teamName = h('input', { placeholder: 'Billing' });
  const teamForm = h('form', { class: 'inline', 'aria-label': 'New team' }, field('New team', teamName), h('button', { type: 'submit' }, 'Create team'));
  teamForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    try { await api.post('/teams', { name: teamName.value.trim() }); teamName.value = ''; status.ok('Team created.'); load(); } catch (err) { status.fail(err); }
  });
  load().catch(status.fail);
  return h('section', { class: 'panel', 'aria-labelledby': 'agents-title' },
    h('h2', { id: 'agents-title' }, 'Agents'),
    h('p', { class: 'hint' }, 'Languages and channels: comma-separated; empty means any. Capacity 1 = one live call, three chats or ten asynchronous tickets.'),
    h('table', {}, h('thead', {}, h('tr', {}, ['Agent', 'Role', 'Level', 'Languages', 'Channels', 'Capacity', 'Team', ''].map((c) => h('th', {}, c)))), rows),
    form, teamForm, status.el);
}

function settingsSection(api) {
  const status = reporter();
  const mode = h('select', {}, option('pull', 'pull: agents take the next ticket'), option('push', 'push: assigned to the freest eligible agent'));
  const reasons = h('textarea', { rows: 4, placeholder: 'one reason per line; empty allows any text' });
  const form = h('form', { class: 'inline', 'aria-label': 'Settings' }, field('Routing mode', mode), field('Contact reasons', reasons),
    h('button', { type: 'submit', class: 'primary' }, 'Save settings'));
  api.get('/settings').then((s) => { mode.value = s.routing_mode; reasons.value = (s.contact_reasons || []).join('\n'); }).catch(status.fail);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      await api.patch('/settings', { routing_mode: mode.value, contact_reasons: reasons.value.split('\n').map((r) => r.trim()).filter(Boolean) });
      status.ok('Settings saved.');
    } catch (err) { status.fail(err); }
  });
  return h('section', { class: 'panel', 'aria-labelledby': 'settings-title' }, h('h2', { id: 'settings-title' }, 'Routing and contact reasons'), form, status.el);
}

function policyRow(api, priority, policy, status, reload) {
  const cal = (policy && policy.calendar) || null;
  const firstSpan = cal && Object.values(cal.hours || {}).find((spans) => spans && spans.length);
  const first = h('input', { type: 'number', min: 1, value: policy && policy.first_response_seconds ? policy.first_response_seconds / 60 : '', 'aria-label': `${priority}: first response, minutes` });
  const resolution = h('input', { type: 'number', min: 1, step: 0.5, value: policy && policy.resolution_seconds ? policy.resolution_seconds / 3600 : '', 'aria-label': `${priority}: resolution, hours` });
  const business = h('input', { type: 'checkbox', checked: Boolean(cal), 'aria-label': `${priority}: business hours only` });
  const zone = h('input', { value: cal ? cal.timezone : 'UTC', size: 12, 'aria-label': `${priority}: time zone` });
  const opens = h('input', { type: 'time', value: firstSpan ? firstSpan[0][0] : '09:00', 'aria-label': `${priority}: opens` });
  const closes = h('input', { type: 'time', value: firstSpan ? firstSpan[0][1] : '17:00', 'aria-label': `${priority}: closes` });
  const days = DAYS.map((d) => h('label', { class: 'hint' }, h('input', { type: 'checkbox', value: d, checked: cal ? Boolean(cal.hours && cal.hours[d] && cal.hours[d].length) : DAYS.indexOf(d) < 5 }), d));
  const save = h('button', { type: 'button', class: 'primary' }, 'Save');
  const remove = h('button', { type: 'button', class: 'quiet', disabled: !policy }, 'Remove');
  save.addEventListener('click', async () => {
    const body = {
      first_response_seconds: first.value ? Math.round(Number(first.value) * 60) : null,
      resolution_seconds: resolution.value ? Math.round(Number(resolution.value) * 3600) : null,
      calendar: null,
    };
    if (business.checked) {
      const hours = {};
      days.forEach((label) => { const box = label.querySelector('input'); if (box.checked) hours[box.value] = [[opens.value, closes.value]]; });
      body.calendar = { timezone: zone.value.trim(), hours, ...(cal && cal.holidays ? { holidays: cal.holidays } : {}) };
    }
    try { await api.put(`/sla-policies/${priority}`, body); status.ok(`SLA for ${priority} saved.`); reload(); } catch (err) { status.fail(err); }
  });
  remove.addEventListener('click', async () => {
    try { await api.del(`/sla-policies/${priority}`); status.ok(`SLA for ${priority} removed.`); reload(); } catch (err) { status.fail(err); }
  });
  return h('tr', { data: { priority } }, h('td', {}, h('span', { class: `badge prio-${priority}` }, priority)),
    h('td', {}, first), h('td', {}, resolution), h('td', {}, business), h('td', {}, zone), h('td', {}, opens, ' – ', closes), h('td', {}, days), h('td', {}, save, remove));
}

function slaSection(api) {
  const rows = h('tbody');
  const status = reporter();
  async function load() {  // (callers do not wait: a failure is shown here, never unhandled)
    try {
      const answer = await api.get('/sla-policies');
      const byPriority = Object.fromEntries(answer.items.map((p) => [p.priority, p]));
      replace(rows, PRIORITIES.map((p) => policyRow(api, p, byPriority[p], status, load)));
    } catch (err) { status.fail(err); }
  }
  load();
  return h('section', { class: 'panel', 'aria-labelledby': 'sla-title' },
    h('h2', { id: 'sla-title' }, 'SLA policies'),
    h('table', {}, h('thead', {}, h('tr', {}, ['Priority', 'First response (min)', 'Resolution (h)', 'Business hours', 'Time zone', 'Open', 'Days', ''].map((c) => h('th', {}, c)))), rows),
    status.el);
}

export function mount(main, { api }) {
  main.append(h('div', { class: 'admin' }, h('h1', {}, 'Administration'),
    channelsSection(api), agentsSection(api), settingsSection(api), slaSection(api)));
  return () => {};
}
