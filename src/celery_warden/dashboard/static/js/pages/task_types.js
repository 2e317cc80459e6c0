// Task types: one row per task name with its rate, failure share, p95 and a sparkline.

import { api, enc } from '../api.js';
import { h, link } from '../dom.js';
import * as f from '../format.js';
import { sparkline } from '../chart.js';
import { content, pageParams, pager, showError, table, throttle } from '../ui.js';

const columns = [
  { label: 'Task name', cell: (t) => link(`/task-types/${enc(t.name)}`, t.name) },
  { label: 'Rate', cls: 'num', cell: (t) => f.rate(t.rate_per_min) },
  { label: 'Finished', cls: 'num', cell: (t) => f.count(t.count) },
  { label: 'Failed', cls: 'num', cell: (t) => f.count(t.failed) },
  { label: 'Failure', cls: 'num', cell: (t) => f.pct(t.failure_rate_pct) },
  { label: 'Retried', cls: 'num', cell: (t) => f.count(t.retried) },
  { label: 'p50', cls: 'num', cell: (t) => f.ms(t.p50_ms) },
  { label: 'p95', cls: 'num', cell: (t) => f.ms(t.p95_ms) },
  { label: 'Last hour', cell: (t) => h('span', { 'data-spark': t.name }) },
];

const SPARKS = 25;

// Sparklines (finished per minute, last hour) for the busiest rows, filled in after the table.
async function sparks(rows) {
  await Promise.all(rows.slice(0, SPARKS).map(async (t) => {
    const cell = document.querySelector(`[data-spark="${CSS.escape(t.name)}"]`);
    if (!cell) return;
    try {
      const s = await api('/api/v1/series', { params: { task_name: t.name, window: '1h' } });
      cell.replaceChildren(sparkline((s.points || []).map((p) => p.finished ?? (p.succeeded + p.failed)), { label: `${t.name} finished per minute` }));
    } catch { /* unknown meanwhile */ }
  }));
}

async function load() {
  const data = await api('/api/v1/task-types', { params: pageParams(['window', 'cursor']) });
  content(table(columns, data.items, { empty: 'No task has run yet.' }), pager(data.next_cursor));
  showError(null);
  sparks(data.items || []);
}

export async function init({ live }) {
  await load().catch(showError);
  const refresh = throttle(() => load().catch(showError), 10000);
  live.on('kpis', refresh);
  live.onPoll(refresh);
}
