// Errors grouped by fingerprint: count, sparkline, first/last seen, task names, a sample.

import { api, enc } from '../api.js';
import { h, link, pre } from '../dom.js';
import * as f from '../format.js';
import { sparkline } from '../chart.js';
import { content, showError, table, throttle } from '../ui.js';

const columns = [
  { label: 'Error', cls: 'wrap', cell: (g) => h('span', { class: 'stack' }, link(`/errors/${enc(g.fingerprint)}`, g.exc_type || 'Error'), h('span', { class: 'err' }, g.message || g.sample_message || '')) },
  { label: 'Count', cls: 'num', cell: (g) => f.count(g.count) },
  { label: 'Last hour', cell: (g) => h('span', { 'data-spark': g.fingerprint }) },
  { label: 'Tasks', cell: (g) => h('span', { class: 'stack' }, Object.keys(g.task_names || {}).map((n) => link(`/task-types/${enc(n)}`, n))) },
  { label: 'First seen', cell: (g) => f.time(g.first_seen) },
  { label: 'Last seen', cell: (g) => h('time', { title: f.fullTime(g.last_seen) }, f.since(g.last_seen)) },
  { label: 'Sample', cls: 'wrap sample', cell: (g) => (g.sample_traceback ? h('details', null, h('summary', null, 'traceback'), pre(g.sample_traceback)) : '') },
];

const SPARKS = 20;

// The list carries no series: the first groups' per-minute counts are filled in afterwards.
async function sparks(groups) {
  await Promise.all(groups.slice(0, SPARKS).map(async (g) => {
    const cell = document.querySelector(`[data-spark="${CSS.escape(g.fingerprint)}"]`);
    if (!cell) return;
    try {
      const d = await api(`/api/v1/errors/${enc(g.fingerprint)}`, { params: { minutes: 60 } });
      cell.replaceChildren(sparkline((d.series || []).map((p) => p.count), { label: 'errors per minute, last hour' }));
    } catch { /* the group expired meanwhile */ }
  }));
}

async function load() {
  const data = await api('/api/v1/errors', { params: { limit: 50 } });
  const groups = data.items || [];
  content(table(columns, groups, { empty: 'No error recorded. Good.' }));
  showError(null);
  sparks(groups);
}

export async function init({ live }) {
  await load().catch(showError);
  const refresh = throttle(() => load().catch(showError), 3000);
  live.on('task', (t) => { if (t.state === 'FAILURE' || t.state === 'RETRY') refresh(); });
  live.onPoll(refresh);
}
