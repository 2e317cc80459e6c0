// One error group: its per-minute series, the masked sample and the tasks it hit.

import { api, enc } from '../api.js';
import { facts, h, link, pre, replace, section } from '../dom.js';
import * as f from '../format.js';
import { timeChart } from '../chart.js';
import { content, showError } from '../ui.js';

export async function init({ id }) {
  let g;
  try { g = await api(`/api/v1/errors/${enc(id)}`, { params: { minutes: 120 } }); } catch (exc) { content(); showError(exc); return; }
  replace(document.getElementById('title'), `${g.exc_type || 'Error'}`);
  const chart = h('div', { class: 'chart' });
  const series = g.series || [];
  content(
    section('Group', facts([
      ['Fingerprint', h('code', null, g.fingerprint)], ['Message', h('span', { class: 'err' }, g.message || g.sample_message)],
      ['Count', f.count(g.count)], ['First seen', f.time(g.first_seen)], ['Last seen', f.time(g.last_seen)],
      ['Frame', g.frame],
      ['Task names', h('span', { class: 'stack' }, Object.entries(g.task_names || {}).map(([n, c]) => h('span', null, link(`/task-types/${enc(n)}`, n), ` · ${f.count(c)}`)))],
    ])),
    section('Per minute', chart),
    section('Sample traceback (masked)', pre(g.sample_traceback || 'No traceback kept.')),
    section('Recent tasks', h('ul', { class: 'plain' }, (g.recent_task_ids || []).map((t) => h('li', null, link(`/tasks/${enc(t)}`, t))))),
  );
  timeChart(chart, { xs: series.map((p) => f.epoch(p.ts)), fmt: f.short, series: [{ label: 'errors', values: series.map((p) => p.count) }] });
}
