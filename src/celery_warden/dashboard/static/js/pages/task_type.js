// One task name: its numbers, throughput and duration charts, error groups and recent tasks.

import { api, enc } from '../api.js';
import { facts, h, link, section } from '../dom.js';
import * as f from '../format.js';
import { timeChart } from '../chart.js';
import { content, showError, table, throttle } from '../ui.js';
import { taskColumns } from './tasks.js';

async function load(name) {
  const window_ = new URLSearchParams(window.location.search).get('window') || '1h';
  const [t, series, errors, tasks] = await Promise.all([
    api(`/api/v1/task-types/${enc(name)}`, { params: { window: window_ } }),
    api('/api/v1/series', { params: { task_name: name, window: window_ } }),
    api('/api/v1/errors', { params: { limit: 50 } }).catch(() => ({ items: [] })),
    api('/api/v1/tasks', { params: { name, limit: 20 } }),
  ]);
  const points = series.points || [];
  const xs = points.map((p) => f.epoch(p.ts));
  const throughput = h('div', { class: 'chart' });
  const latency = h('div', { class: 'chart' });
  const groups = (errors.items || []).filter((g) => g.task_names && name in g.task_names);
  content(
    section('Summary', facts([
      ['Finished', f.count(t.count)], ['Failed', f.count(t.failed)], ['Failure', f.pct(t.failure_rate_pct)],
      ['Retried', f.count(t.retried)], ['Rate', f.rate(t.rate_per_min)], ['p50', f.ms(t.p50_ms)], ['p95', f.ms(t.p95_ms)],
    ])),
    h('div', { class: 'grid2' }, section('Throughput', throughput), section('Duration', latency)),
    section('Error groups', table([
      { label: 'Error', cls: 'wrap', cell: (g) => link(`/errors/${enc(g.fingerprint)}`, `${g.exc_type}: ${g.message || ''}`) },
      { label: 'Count', cls: 'num', cell: (g) => f.count(g.task_names[name]) },
      { label: 'Last seen', cell: (g) => f.time(g.last_seen) },
    ], groups, { empty: 'No errors recorded for this task.' })),
    section('Recent tasks', table(taskColumns, tasks.items, { empty: 'No recent task.' }),
      link(`/tasks?name=${enc(name)}`, 'All tasks of this name →')),
  );
  timeChart(throughput, { xs, fmt: f.short, series: [
    { label: 'succeeded', values: points.map((p) => p.succeeded) },
    { label: 'failed', values: points.map((p) => p.failed) },
    { label: 'retried', values: points.map((p) => p.retried) }] });
  timeChart(latency, { xs, fmt: f.ms, series: [
    { label: 'p50', values: points.map((p) => p.p50_ms) },
    { label: 'p95', values: points.map((p) => p.p95_ms) },
    { label: 'p99', values: points.map((p) => p.p99_ms) }] });
  showError(null);
}

export async function init({ id, live }) {
  await load(id).catch(showError);
  const refresh = throttle(() => load(id).catch(showError), 15000);
  live.onPoll(refresh);
}
