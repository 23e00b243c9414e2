// Building DOM nodes without HTML strings: every text goes in as a text node.

const PROPS = new Set(['value', 'checked', 'disabled', 'selected', 'hidden', 'open']);

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (PROPS.has(key)) { el[key] = value; continue; }
    if (value === undefined || value === null || value === false) continue;
    if (key === 'test') el.setAttribute('data-test', value);
    else if (key === 'class') el.className = value;
    else if (key === 'data') {
      for (const [name, v] of Object.entries(value)) el.setAttribute(`data-${name}`, attr(v));
    } else if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

// Attribute values per the contract: String(n) for numbers, true/false, empty for null.
export function attr(value) {
  return value === null || value === undefined ? '' : String(value);
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

export function option(value, label = value, selected = false) {
  return h('option', { value, selected }, label);
}

// Relative times: "3 m ago", "in 2 h", for ages and SLA countdowns.
export function span(seconds) {
  const s = Math.abs(seconds);
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.round(s / 60)} m`;
  if (s < 86400) return `${(s / 3600).toFixed(s < 36000 ? 1 : 0)} h`;
  return `${(s / 86400).toFixed(1)} d`;
}

export function ago(iso) {
  if (!iso) return '';
  return `${span((Date.now() - Date.parse(iso)) / 1000)} ago`;
}

export function until(iso) {
  if (!iso) return '';
  const seconds = (Date.parse(iso) - Date.now()) / 1000;
  return seconds >= 0 ? `due in ${span(seconds)}` : `overdue ${span(seconds)}`;
}

export function when(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return d.toISOString().replace('T', ' ').slice(0, 16) + ' UTC';
}

// Runs `fn` soon after the last call, never twice at once, and once more if called meanwhile.
export function coalesce(fn, delay = 150) {
  let timer = null;
  let running = false;
  let again = false;
  const run = async () => {
    timer = null;
    if (running) { again = true; return; }
    running = true;
    try { await fn(); } catch (err) { console.warn(err); } finally {
      running = false;
      if (again) { again = false; schedule(); }
    }
  };
  const schedule = () => { if (!timer) timer = setTimeout(run, delay); };
  return schedule;
}
