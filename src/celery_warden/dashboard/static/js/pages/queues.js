// Queues: depth, oldest message age, consumers, depth history; purge (admin) confirms by name.

import { api, enc } from '../api.js';
import { h, section } from '../dom.js';
import * as f from '../format.js';
import { timeChart } from '../chart.js';
import { can } from '../session.js';
import { actionButton, content, showError, table, throttle } from '../ui.js';

let session = null;

async function load() {
  const data = await api('/api/v1/queues');
  const items = data.items || [];
  const columns = [
    { label: 'Queue', cell: (q) => q.name },
    { label: 'Depth', cls: 'num', cell: (q) => (q.depth === null ? 'unknown' : `${f.count(q.depth)} msgs`) },
    { label: 'Oldest message', cls: 'num', cell: (q) => (q.depth ? f.duration(q.oldest_age_s) : f.DASH) },
    { label: 'Consumers', cls: 'num', cell: (q) => f.count(q.consumers) },
  ];
  if (can(session, 'admin')) {
    columns.push({ label: 'Actions', cell: (q) => actionButton('Purge', async () => {
      const r = await api(`/api/v1/queues/${enc(q.name)}/purge`, { method: 'POST', params: { confirm: q.name } });
      return `Purged ${f.count(r.purged ?? r.count ?? 0)} messages from ${q.name}`;
    }, { danger: true, confirm: `Purge queue ${q.name}: delete its ${f.count(q.depth)} waiting messages? This cannot be undone.`, after: load }) });
  }
  const chart = h('div', { class: 'chart' });
  content(table(columns, items, { empty: 'No queue known yet.' }), section('Depth history', chart));
  const series = await Promise.all(items.slice(0, 8).map((q) => api(`/api/v1/queues/${enc(q.name)}/series`)
    .then((s) => ({ name: q.name, points: s.points || [], detail: s.detail })).catch(() => ({ name: q.name, points: [] }))));
  const kept = series.filter((s) => s.points.length);
  if (!kept.length) {
    const how = series.find((s) => s.detail)?.detail;
    chart.replaceChildren(h('p', { class: 'muted empty' }, `No depth history yet${how ? ` (${how})` : ''}.`));
    showError(null);
    return;
  }
  timeChart(chart, {
    xs: kept.length ? kept[0].points.map((p) => f.epoch(p.ts)) : [],
    fmt: f.short,
    series: kept.map((s) => ({ label: s.name, values: s.points.map((p) => p.backlog ?? p.depth) })),
  });
  showError(null);
}

export async function init(ctx) {
  session = ctx.session;
  await load().catch(showError);
  const refresh = throttle(() => load().catch(showError), 5000);
  ctx.live.on('kpis', refresh);
  ctx.live.onPoll(refresh);
}
