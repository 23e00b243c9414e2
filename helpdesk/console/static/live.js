// The one Socket.IO connection of the tab: events to subscribers, reconnect with
// `events.since` catch-up, presence, and the work-session signals (focus, blur, heartbeat).
import { io } from './vendor/socket.io.esm.min.js';

const HEARTBEAT_MS = 60000;
const subscribers = new Map();
const statusWatchers = new Set();
const seen = new Set();
let socket = null;
let lastSeq = 0;
let connectedOnce = false;
let synced = false;   // caught up since the last connect
let presence = 'online';
let wanted = null;   // the ticket on screen
let focused = null;  // the ticket we told the server about
let left = null;     // the ticket room left last, and the last event number seen then
let beat = null;

export function on(type, fn) {
  if (!subscribers.has(type)) subscribers.set(type, new Set());
  subscribers.get(type).add(fn);
  return () => subscribers.get(type).delete(fn);
}

function dispatch(type, data, envelope) {
  for (const fn of subscribers.get(type) || []) {
    try { fn(data, envelope); } catch (err) { console.error(err); }
  }
}

// Watchers hear (live, synced): connected, and caught up on what this connection missed.
export function onStatus(fn) {
  statusWatchers.add(fn);
  fn(isLive(), isLive() && synced);
  return () => statusWatchers.delete(fn);
}

export const isLive = () => Boolean(socket && socket.connected);

function status() { for (const fn of statusWatchers) fn(isLive(), isLive() && synced); }

function receive(name, envelope) {
  if (!envelope || typeof envelope !== 'object') return;
  if (typeof envelope.seq === 'number') {
    if (seen.has(envelope.seq)) return;
    seen.add(envelope.seq);
    if (seen.size > 2000) seen.delete(seen.values().next().value);
    lastSeq = Math.max(lastSeq, envelope.seq);
  }
  dispatch(envelope.type || name, envelope.data, envelope);
}

async function since(seq) {
  try {
    return await socket.timeout(10000).emitWithAck('events.since', { seq });
  } catch { return { refetch: true }; }
}

// Where the event log stands when we first connect: asking from beyond its end answers
// "refetch" with the current number, so a later catch-up does not replay older events.
async function baseline() {
  const answer = await since(Number.MAX_SAFE_INTEGER);
  if (answer && typeof answer.seq === 'number') lastSeq = Math.max(lastSeq, answer.seq);
}

async function catchUp(from = lastSeq) {
  const answer = from > 0 ? await since(from) : { refetch: true };
  if (!answer || answer.error || answer.refetch) {
    dispatch('refetch', {});
    return;
  }
  // Each item is an envelope as it was sent; its `type` is the event's name.
  for (const envelope of answer.events || []) receive(envelope.type, envelope);
}

export function start(tokenValue, { refused }) {
  stop();
  socket = io('/agents', { auth: { token: tokenValue }, transports: ['websocket'],
    reconnectionDelayMax: 5000 });
  socket.on('connect', async () => {
    synced = false;
    status();
    // Marked before the first answer: a connection lost before its baseline came back
    // catches up from nothing known (lastSeq 0), which is a refetch, not another baseline.
    const first = !connectedOnce;
    connectedOnce = true;
    // From the last event seen before the drop: joining the ticket's room below announces
    // `ticket.viewers` to it, which may arrive before the catch-up's answer and move lastSeq
    // past what was missed.
    const from = lastSeq;
    // The ticket's room first: the catch-up answers for the rooms this connection is in,
    // and a colleague's ticket tells its messages to its room only.
    focused = null;
    await syncFocus({ catchUp: false });
    if (first) await baseline();
    else await catchUp(from);
    if (presence === 'away') socket.emit('presence', { status: 'away' });
    synced = socket && socket.connected;
    status();
  });
  socket.on('disconnect', (reason) => {
    synced = false;
    status();
    // Socket.IO leaves reconnecting to us when the server closed the connection (a restart,
    // a deploy): try again; a revoked token is refused at connect and ends at the login form.
    if (reason === 'io server disconnect') setTimeout(() => { if (socket) socket.connect(); }, 1000);
  });
  socket.on('connect_error', (err) => {
    status();
    if (!socket.active) refused(err);  // the server said no: the token may be revoked
  });
  socket.onAny(receive);
  document.addEventListener('visibilitychange', onVisibility);
  window.addEventListener('pagehide', leaveTicket);
}

export function retry() { if (socket && !socket.connected) socket.connect(); }

export function stop() {
  document.removeEventListener('visibilitychange', onVisibility);
  window.removeEventListener('pagehide', leaveTicket);
  clearInterval(beat);
  beat = null;
  if (socket) {
    socket.removeAllListeners();
    socket.offAny();
    socket.disconnect();
  }
  socket = null;
  connectedOnce = false;
  synced = false;
  focused = null;
  wanted = null;
  left = null;
  presence = 'online';
  status();
}

export function setPresence(value) {
  presence = value;
  if (socket && socket.connected) socket.emit('presence', { status: value });
}

export const getPresence = () => presence;

export function typing(ticketId) {
  if (socket && socket.connected) socket.emit('typing', { ticket_id: ticketId });
}

// Work sessions: a ticket counts as worked while it is on screen and the tab is visible.
export function showTicket(ticketId) {
  wanted = ticketId;
  syncFocus();
}

function leaveTicket() {
  if (focused !== null && socket && socket.connected) {
    socket.emit('ticket.blur', { ticket_id: focused });
  }
  if (focused !== null) left = { ticket: focused, seq: lastSeq };
  focused = null;
}

// Joins the room of the ticket on screen (and leaves the last one). Once joined, it asks
// for what was said since it left that room (the tab was hidden), or since the last event
// it saw (a ticket just opened): the numbers are global, and events of other rooms it stayed
// in went on arriving meanwhile.
async function syncFocus({ catchUp: thenCatchUp = true } = {}) {
  const target = document.visibilityState === 'visible' ? wanted : null;
  if (target === focused || !socket || !socket.connected) {
    if (!socket || !socket.connected) focused = null;
    return;
  }
  const from = left && left.ticket === target ? Math.min(left.seq, lastSeq) : lastSeq;
  leaveTicket();
  focused = target;
  clearInterval(beat);
  beat = focused === null ? null : setInterval(() => {
    if (socket && socket.connected && focused !== null) {
      socket.emit('heartbeat', { ticket_id: focused });
    }
  }, HEARTBEAT_MS);
  if (target === null) return;
  try {
    await socket.timeout(10000).emitWithAck('ticket.focus', { ticket_id: target });
  } catch { return; }  // not answered: the connection is going; its reconnect catches up
  if (thenCatchUp && connectedOnce && from > 0) await catchUp(from);
}

const onVisibility = () => { syncFocus(); };
