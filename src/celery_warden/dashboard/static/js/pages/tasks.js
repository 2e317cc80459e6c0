// Tasks: newest first, filtered by the query string; the first page refreshes live.

import { api, enc } from '../api.js';
import { h, link } from '../dom.js';
import * as f from '../format.js';
import { badge, content, pageParams, pager, showError, table, throttle } from '../ui.js';

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
  return { ...params, limit: 50 };
}

export const taskColumns = [
  { label: 'Task', cell: (t) => h('span', { class: 'stack' }, link(`/tasks/${enc(t.task_id)}`, t.name || '(unknown name)'), h('code', { class: 'muted id' }, t.task_id)) },
  { label: 'State', cell: (t) => badge(t.state) },
  { label: 'Queue', cell: (t) => f.plain(t.queue) },
  { label: 'Worker', cell: (t) => f.plain(t.worker) },
  { label: 'Sent', cell: (t) => h('time', { title: f.fullTime(t.sent_at) }, f.time(t.sent_at)) },
  { label: 'Runtime', cls: 'num', cell: (t) => f.duration(t.runtime ?? t.elapsed) },
  { label: 'Retries', cls: 'num', cell: (t) => f.count(t.retries) },
  { label: 'Error', cls: 'wrap', cell: (t) => (t.error ? h('span', { class: 'err' }, `${t.error.type}: ${t.error.message}`) : '') },
];

async function load() {
  const data = await api('/api/v1/tasks', { params: apiParams() });
  const partial = data.complete === false && data.next_cursor
    ? h('p', { class: 'muted' }, `This page stopped after examining ${f.count(data.examined)} records; “Older →” searches on.`) : null;
  content(table(taskColumns, data.items, { empty: data.next_cursor ? 'None among the records examined so far.' : 'No task matches these filters.' }), partial, pager(data.next_cursor));
  showError(null);
}

export async function init({ live }) {
  await load().catch(showError);
  if (new URLSearchParams(window.location.search).has('cursor')) return;
  const refresh = throttle(() => load().catch(showError), 2000);
  live.on('task', refresh);
  live.onPoll(refresh);
}
