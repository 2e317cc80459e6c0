// Tasks: newest first, filtered by the query string; the first page refreshes live.

import { api, enc } from '../api.js';
import { h, link } from '../dom.js';
import * as f from '../format.js';
import { badge, content, pageParams, pager, showError, table, tableRow, throttle } from '../ui.js';

const PAGE_SIZE = 50;
const FILTERS = ['state', 'name', 'queue', 'worker', 'since', 'until', 'id_prefix', 'q', 'cursor'];

// datetime-local values are the viewer's local time: send them as absolute ISO instants.
function apiParams() {
  const params = pageParams(FILTERS);
  for (const key of ['since', 'until']) {
    if (params[key] && !/^\d+(\.\d+)?$/.test(params[key])) {
      const t = new Date(params[key]);
      if (!Number.isNaN(t.getTime())) params[key] = t.toISOString();
    }
  }
  return { ...params, limit: PAGE_SIZE };
}

export const taskColumns = [
  { label: 'Task', cell: (t) => h('span', { class: 'stack' }, link(`/tasks/${enc(t.task_id)}`, t.name || '(unknown name)'), h('code', { class: 'muted id' }, t.task_id)) },
  { label: 'State', cell: (t) => badge(t.state) },
  { label: 'Queue', cls: 'nowrap', cell: (t) => f.plain(t.queue) },
  { label: 'Worker', cls: 'nowrap', cell: (t) => f.plain(t.worker) },
  { label: 'Sent', cls: 'nowrap', cell: (t) => h('time', { title: f.fullTime(t.sent_at) }, f.time(t.sent_at)) },
  { label: 'Runtime', cls: 'num', cell: (t) => f.duration(t.runtime ?? t.elapsed) },
  { label: 'Retries', cls: 'num', cell: (t) => f.count(t.retries) },
  { label: 'Error', cls: 'wrap', cell: (t) => (t.error ? h('span', { class: 'err' }, `${t.error.type}: ${t.error.message}`) : '') },
];

const rowProps = (t) => ({ 'data-task': t.task_id, 'data-state': t.state });
const LIVE_FILTERS = ['state', 'name', 'queue', 'worker'];

// A `task` stream event applied to the first page at once: the row's state changes, or a new
// row appears on top, when the event matches the page's filters. A full reload follows later
// (runtime, error text), throttled.
function applyEvent(e) {
  const filters = pageParams(FILTERS);
  if (Object.keys(filters).some((k) => !LIVE_FILTERS.includes(k))) return false;
  const t = { task_id: e.id, name: e.name, state: e.state, queue: e.queue, worker: e.worker, sent_at: e.ts };
  if (LIVE_FILTERS.some((k) => filters[k] !== undefined && String(t[k]) !== filters[k])) return true;
  const tbody = document.querySelector('#content tbody');
  if (!tbody) return false;
  const old = tbody.querySelector(`tr[data-task="${CSS.escape(String(e.id))}"]`);
  if (old) {
    old.dataset.state = e.state;
    const cells = old.querySelectorAll('td');
    cells[1].replaceChildren(badge(e.state));
    if (e.worker) cells[3].textContent = e.worker;
  } else {
    tbody.prepend(tableRow(taskColumns, t, { rowProps }));
    while (tbody.children.length > PAGE_SIZE) tbody.lastElementChild.remove();
  }
  return true;
}

async function load() {
  const data = await api('/api/v1/tasks', { params: apiParams() });
  const partial = data.complete === false && data.next_cursor
    ? h('p', { class: 'muted' }, `This page stopped after examining ${f.count(data.examined)} records; “Older →” searches on.`) : null;
  content(table(taskColumns, data.items, { rowProps, empty: data.next_cursor ? 'None among the records examined so far.' : 'No task matches these filters.' }), partial, pager(data.next_cursor));
  showError(null);
}

export async function init({ live }) {
  await load().catch(showError);
  if (new URLSearchParams(window.location.search).has('cursor')) return;
  const refresh = throttle(() => load().catch(showError), 5000);
  live.on('task', (e) => { applyEvent(e); refresh(); });
  live.onPoll(refresh);
}
