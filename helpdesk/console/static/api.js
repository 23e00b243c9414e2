// The REST API with the tab's token; JSON errors become ApiError with a readable message.

const KEY = 'helpdesk.token';

export const token = {
  get: () => sessionStorage.getItem(KEY),
  set: (value) => sessionStorage.setItem(KEY, value),
  clear: () => sessionStorage.removeItem(KEY),
};

// An unsent reply, per agent and ticket, in the tab's sessionStorage: it outlives a session
// that ended under the agent (logout in another tab, a password reset, an expired token) and
// comes back after the next login; an explicit logout here forgets every draft.
const DRAFTS = 'helpdesk.draft.';
const draftKey = (agentId, ticketId) => `${DRAFTS}${agentId}.${ticketId}`;
export const drafts = {
  get: (agentId, ticketId) => {
    try { return sessionStorage.getItem(draftKey(agentId, ticketId)) || ''; } catch { return ''; }
  },
  set: (agentId, ticketId, text) => {
    try {
      if (text) sessionStorage.setItem(draftKey(agentId, ticketId), text);
      else sessionStorage.removeItem(draftKey(agentId, ticketId));
    } catch { /* storage full or refused: the draft stays in the page only */ }
  },
  clearAll: () => drafts.keepOnly(null),
  keepOnly: (agentId) => {
    const mine = agentId === null ? null : `${DRAFTS}${agentId}.`;
    for (const key of Object.keys(sessionStorage)) {
      if (key.startsWith(DRAFTS) && !(mine && key.startsWith(mine))) sessionStorage.removeItem(key);
    }
  },
};

let unauthorized = () => {};
export function whenUnauthorized(fn) { unauthorized = fn; }

export class ApiError extends Error {
  constructor(status, code, message, fields) {
    super(message);
    this.status = status;
    this.code = code;
    this.fields = fields || null;
  }

  describe() {
    if (!this.fields) return this.message;
    // (a detail the message already says, as `calendar: unknown time zone`, not twice)
    const details = Object.entries(this.fields)
      .map(([name, problems]) => `${name}: ${[].concat(problems).map(p => typeof p === 'string' ? p : JSON.stringify(p)).join(', ')}`)
      .filter((detail) => !this.message.includes(detail));
    return details.length ? `${this.message} (${details.join('; ')})` : this.message;
  }
}

function query(params) {
  if (!params) return '';
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : '';
}

export async function request(method, path, body, { raw = false, auth = true } = {}) {
  const headers = { Accept: 'application/json' };
  const held = token.get();
  if (auth && held) headers.Authorization = `Bearer ${held}`;
  let payload;
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(`/api/v1${path}`, { method, headers, body: payload, cache: 'no-store' });
  } catch {
    throw new ApiError(0, 'network', 'The server cannot be reached.');
  }
  if (response.status === 401 && auth) {
    token.clear();
    unauthorized();
  }
  if (!response.ok) {
    let error = {};
    try { error = (await response.json()).error || {}; } catch { /* not JSON */ }
    throw new ApiError(response.status, error.code || 'error',
      error.message || response.statusText || `HTTP ${response.status}`, error.fields);
  }
  if (raw) return response;
  if (response.status === 204) return null;
  return response.json();
}

export const get = (path, params) => request('GET', path + query(params));
// Every item of a collection, page after page (`per_page` 200, the API's most): a list the
// console shows whole (channels, agents, teams, my tickets) must not stop at a first page.
export async function getAll(path, params = {}) {
  const items = [];
  for (let page = 1; ; page += 1) {
    const answer = await get(path, { ...params, page, per_page: 200 });
    items.push(...answer.items);
    if (!answer.items.length || items.length >= answer.total) return { items, total: answer.total };
  }
}
export const post = (path, body = {}) => request('POST', path, body);
export const patch = (path, body) => request('PATCH', path, body);
export const put = (path, body) => request('PUT', path, body);
export const del = (path) => request('DELETE', path);

// Saves a protected file (attachment, CSV): fetched with the token, handed over as a blob.
export async function download(path, filename) {
  const response = await request('GET', path, undefined, { raw: true });
  const url = URL.createObjectURL(await response.blob());
  const link = document.createElement('a');
  link.href = url;
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 30000);
}

export { query };
