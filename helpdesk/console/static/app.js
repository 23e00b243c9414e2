// Entry point: login, the header, and which view the path asks for.
import * as api from './api.js';
import * as live from './live.js';
import { h, replace } from './dom.js';
import * as queue from './queue.js';
import * as ticket from './ticket.js';

const root = document.getElementById('app');
const RANK = { agent: 0, supervisor: 1, admin: 2 };
let cleanup = [];
let loggedIn = false;

function route(path = location.pathname) {
  const match = path.match(/^\/tickets\/(\d+)\/?$/);
  if (match) return { view: 'console', ticketId: Number(match[1]) };
  if (path.startsWith('/supervisor')) return { view: 'supervisor' };
  if (path.startsWith('/admin')) return { view: 'admin' };
  return { view: 'console', ticketId: null };
}

function teardown() {
  for (const fn of cleanup.splice(0)) { try { fn(); } catch (err) { console.warn(err); } }
  live.stop();
}

function showLogin(message = '') {
  loggedIn = false;
  teardown();
  // Plain text, not `type=email` nor `required`: the browser's own checks stopped the submit
  // (no request, no `login-error`) for an address it did not like or an empty field.
  const email = h('input', { id: 'login-email', type: 'text', inputmode: 'email', test: 'login-email', autocomplete: 'username', autocapitalize: 'off', spellcheck: 'false' });
  const password = h('input', { id: 'login-password', type: 'password', test: 'login-password', autocomplete: 'current-password' });
  const error = h('p', { class: 'error', test: 'login-error', role: 'alert', hidden: !message }, message);
  const submit = h('button', { type: 'submit', test: 'login-submit', class: 'primary' }, 'Log in');
  const form = h('form', { class: 'login', 'aria-labelledby': 'login-title' },
    h('h1', { id: 'login-title' }, 'Helpdesk'),
    h('p', { class: 'muted' }, 'Log in to work the queue.'),
    h('label', { for: 'login-email' }, 'Email'), email,
    h('label', { for: 'login-password' }, 'Password'), password,
    error, submit);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    submit.disabled = true;
    error.hidden = true;
    try {
      const answer = await api.request('POST', '/auth/login',
        { email: email.value.trim(), password: password.value }, { auth: false });
      api.token.set(answer.token);
      showApp(answer.agent);
    } catch (err) {
      error.textContent = err.status === 401 ? 'Wrong email or password.'
        : err.status === 429 ? 'Too many attempts: wait a minute and try again.'
          : err.describe ? err.describe() : String(err);
      error.hidden = false;
      submit.disabled = false;
    }
  });
  replace(root, h('main', { class: 'login-page' }, form));
  email.focus();
}

function header(me) {
  const rank = RANK[me.role] ?? 0;
  const current = route().view;
  const link = (test, href, label, view) => h('a', { test, href, 'aria-current': current === view ? 'page' : null }, label);
  const presence = h('button', { type: 'button', test: 'presence', class: 'presence online', title: 'Your status: click to toggle' }, 'online');
  presence.addEventListener('click', () => {
    const next = live.getPresence() === 'online' ? 'away' : 'online';
    live.setPresence(next);
    presence.textContent = next;
    presence.className = `presence ${next}`;
  });
  const connection = h('span', { test: 'connection', class: 'connection offline', role: 'status', title: 'Live updates' }, 'offline');
  cleanup.push(live.onStatus((up, synced) => {
    connection.dataset.synced = String(Boolean(synced));
    connection.textContent = up ? 'live' : 'offline';
    connection.className = `connection ${up ? 'live' : 'offline'}`;
  }));
  const logout = h('button', { type: 'button', test: 'logout', class: 'quiet' }, 'Log out');
  logout.addEventListener('click', async () => {
    try { await api.post('/auth/logout'); } catch { /* gone already */ }
    api.token.clear();
    api.drafts.clearAll();
    showLogin();
  });
  return h('header', { class: 'top' },
    h('span', { class: 'brand' }, 'Helpdesk'),
    h('nav', { 'aria-label': 'Views' },
      link('nav-console', '/', 'Console', 'console'),
      rank >= 1 ? link('nav-supervisor', '/supervisor', 'Supervisor', 'supervisor') : null,
      rank >= 2 ? link('nav-admin', '/admin', 'Admin', 'admin') : null),
    h('span', { class: 'spacer' }),
    connection, presence,
    h('span', { class: 'me', title: me.email }, `${me.name} · ${me.role}`),
    logout);
}

function forbidden(view) {
  return h('section', { class: 'forbidden', test: 'forbidden', role: 'alert' },
    h('h1', {}, 'Not for your role'),
    h('p', {}, `The ${view} view needs ${view === 'admin' ? 'an admin' : 'a supervisor'} role. Ask an admin if you need it.`),
    h('p', {}, h('a', { href: '/' }, 'Back to the console')));
}

async function mountView(main, me) {
  const { view, ticketId } = route();
  const rank = RANK[me.role] ?? 0;
  const ctx = { me, api, live };
  if (view === 'supervisor') {
    if (rank < 1) return main.append(forbidden('supervisor'));
    const dashboard = await import('./dashboard.js');
    cleanup.push(dashboard.mount(main, ctx));
  } else if (view === 'admin') {
    if (rank < 2) return main.append(forbidden('admin'));
    const admin = await import('./admin.js');
    cleanup.push(admin.mount(main, ctx));
  } else {
    mountConsole(main, ctx, ticketId);
  }
}

function mountConsole(main, ctx, ticketId) {
  const side = h('aside', { class: 'queue-column', 'aria-label': 'Queue and my tickets' });
  const center = h('div', { class: 'ticket-column' });
  main.classList.add('console');
  main.append(side, center);
  const view = ticket.create(center, ctx);
  const open = (id, push = true) => {
    if (push && location.pathname !== `/tickets/${id}`) history.pushState({}, '', `/tickets/${id}`);
    view.open(id);
  };
  const q = queue.mount(side, { ...ctx, open });
  view.onChange(() => q.refresh());
  const onPop = () => {
    const now = route();
    if (now.view !== 'console') return location.reload();
    if (now.ticketId) view.open(now.ticketId); else view.close();
  };
  window.addEventListener('popstate', onPop);
  cleanup.push(() => window.removeEventListener('popstate', onPop), () => view.destroy(), q.destroy);
  if (ticketId) view.open(ticketId); else view.close();
}

function showApp(me) {
  teardown();
  loggedIn = true;
  api.drafts.keepOnly(me.id); // another agent's, left by a session that ended in this tab
  const main = h('main', { id: 'main', tabindex: '-1' });
  replace(root, h('a', { class: 'skip', href: '#main' }, 'Skip to content'), header(me), main);
  live.start(api.token.get(), {
    refused: async () => {
      // Refused at connect: a revoked token sends us to login; anything else, try again.
      // (a 401 is handled: the login form; anything else, a server not answering, retries)
      try { await api.get('/auth/me'); setTimeout(live.retry, 2000); } catch (err) { if (!err || err.status !== 401) setTimeout(live.retry, 5000); }
    },
  });
  // Who we are, asked again: a role an admin changed closes this agent's connections, so
  // every reconnect asks, and so does a check each minute (which also notices, even on an
  // idle page, a token revoked elsewhere; any API call that meets a 401 notices at once).
  // A changed role or name redraws the whole page: its views and navigation.
  const recheck = () => api.get('/auth/me').then((now) => {
    if (loggedIn && (now.role !== me.role || now.name !== me.name)) showApp(now);
  }).catch(() => { /* a 401 is handled by whenUnauthorized */ });
  let wasLive = false;
  let connects = 0;
  cleanup.push(live.onStatus((up) => {
    if (up && !wasLive && ++connects > 1) recheck();
    wasLive = up;
  }));
  const check = setInterval(recheck, 60000);
  cleanup.push(() => clearInterval(check));
  mountView(main, me).catch((err) => main.append(h('p', { class: 'error', role: 'alert' }, String(err))));
}

async function boot() {
  api.whenUnauthorized(() => {
    if (loggedIn) showLogin('Your session has ended. Please log in again.');
  });
  if (!api.token.get()) return showLogin();
  try {
    showApp(await api.get('/auth/me'));
  } catch (err) {
    if (err.status !== 401) {
      replace(root, h('p', { class: 'error', role: 'alert' }, `The console cannot start: ${err.message}`));
    } else showLogin();
  }
}

boot();
