// Live updates: one EventSource on /api/v1/stream shared by the page; while the stream is not
// available (an older server, a proxy that buffers), the page's refreshers run every 5 s instead.

const EVENTS = ['kpis', 'task', 'worker', 'dlq', 'breaker', 'alert'];
const POLL_MS = 5000;
const RETRY_STREAM_MS = 60000;

const handlers = new Map(EVENTS.map((name) => [name, new Set()]));
const pollers = new Set();
let source = null;
let pollTimer = null;
let started = false;

function setState(state) {
  const el = document.getElementById('live');
  if (!el) return;
  el.dataset.state = state;
  el.textContent = { live: 'live', polling: 'polling 5 s', connecting: 'connecting', offline: 'offline' }[state] || state;
  document.body.dataset.live = state;
}

function poll() {
  for (const fn of pollers) {
    Promise.resolve().then(fn).catch(() => {});
  }
}

function startPolling() {
  if (pollTimer === null) pollTimer = window.setInterval(poll, POLL_MS);
}

function stopPolling() {
  if (pollTimer !== null) window.clearInterval(pollTimer);
  pollTimer = null;
}

function dispatch(name, event) {
  let data;
  try { data = JSON.parse(event.data); } catch { return; }
  for (const fn of handlers.get(name)) {
    try { fn(data); } catch (exc) { console.warn('live handler failed', name, exc); }
  }
}

function connect() {
  source = new EventSource('/api/v1/stream', { withCredentials: true });
  for (const name of EVENTS) source.addEventListener(name, (e) => dispatch(name, e));
  source.onopen = () => { setState('live'); stopPolling(); };
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) {
      // Refused (no stream route, 401/404): poll, and look for the stream again later.
      source = null;
      setState('polling');
      startPolling();
      window.setTimeout(connect, RETRY_STREAM_MS);
    } else {
      setState(navigator.onLine === false ? 'offline' : 'connecting');
      startPolling();
    }
  };
}

// Call fn(data) for each `name` event of the stream.
export function on(name, fn) {
  handlers.get(name).add(fn);
}

// Call fn() every 5 s while the stream is unavailable.
export function onPoll(fn) {
  pollers.add(fn);
}

export function start({ stream = true } = {}) {
  if (started) return;
  started = true;
  if (stream && 'EventSource' in window) connect();
  else { setState('polling'); startPolling(); }
}

export function isLive() {
  return source !== null && source.readyState === EventSource.OPEN;
}

window.addEventListener('pagehide', () => { if (source) source.close(); });
