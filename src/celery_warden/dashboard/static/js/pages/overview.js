// Overview: the seven KPIs with their trend, finished-task counters, history charts, and the
// fleet's state (workers, DLQ, breakers, alerts); tiles update on each `kpis` stream event.

import { api, enc } from '../api.js';
import { h, link, replace, section } from '../dom.js';
import * as f from '../format.js';
import { sparkline, timeChart } from '../chart.js';
import { badge, content, showError, throttle } from '../ui.js';

const WINDOWS = ['15m', '1h', '24h', '7d'];
const windowParam = () => {
  const w = new URLSearchParams(window.location.search).get('window');
  return WINDOWS.includes(w) ? w : '1h';
};

const els = {};
const history = { queue_depth: [], worker_utilization: [], dlq_size: [], circuit_breaker_trips: [] };
let points = [];

function tile(key, label) {
  const value = h('div', { class: 'tile-value', 'data-kpi': key }, '…');
  const sub = h('div', { class: 'tile-sub' });
  const trend = h('div', { class: 'tile-trend' });
  els[key] = { value, sub, trend };
  return h('article', { class: 'tile', id: `kpi-${key}` }, h('h3', null, label), value, sub, trend);
}

function set(key, value, sub, trendValues) {
  const el = els[key];
  if (!el) return;
  el.value.textContent = value;
  el.sub.textContent = sub || '';
  if (trendValues) replace(el.trend, sparkline(trendValues, { label: `${key} trend` }));
}

function seriesOf(field) {
  return points.map((p) => p[field]);
}

function rateSeries(numerator) {
  return points.map((p) => {
    const total = (p.succeeded || 0) + (p.failed || 0);
    return total ? (100 * numerator(p)) / total : null;
  });
}

function slowest(perTask) {
  const entries = Object.entries(perTask || {}).filter(([, v]) => v !== null);
  if (!entries.length) return [null, null];
  return entries.reduce((a, b) => (b[1] > a[1] ? b : a));
}

function remember(key, value) {
  const list = history[key];
  list.push(value);
  if (list.length > 60) list.shift();
  return list;
}

function renderKpis(k) {
  set('task_success_rate', f.pct(k.task_success_rate?.value), k.window ? `over ${k.window}` : '',
    rateSeries((p) => p.succeeded || 0));
  const [name, seconds] = slowest(k.average_task_duration?.value);
  set('average_task_duration', f.duration(seconds), name ? `slowest: ${name}` : 'no finished tasks',
    seriesOf('p50_ms'));
  const qd = k.queue_depth || {};
  set('queue_depth', qd.value === null || qd.value === undefined ? f.DASH : `${f.count(qd.value)} msgs`,
    qd.per_queue ? `${Object.keys(qd.per_queue).length} queues` : (qd.source || ''),
    remember('queue_depth', qd.value));
  set('worker_utilization', f.pct(k.worker_utilization?.value),
    `${f.noun(Object.keys(k.worker_utilization?.per_worker || {}).length, 'worker', 'workers')} online`,
    remember('worker_utilization', k.worker_utilization?.value));
  set('retry_rate', f.pct(k.retry_rate?.value), 'finished after ≥ 1 retry',
    rateSeries((p) => p.retried || 0));
  set('dlq_size', f.noun(k.dlq_size?.value, 'entry', 'entries'), '', remember('dlq_size', k.dlq_size?.value));
  set('circuit_breaker_trips', f.noun(k.circuit_breaker_trips?.value, 'trip', 'trips'), 'fleet-wide',
    remember('circuit_breaker_trips', k.circuit_breaker_trips?.value));
}

function renderCounts(p) {
  set('finished', f.count(p.count), `${f.rate(p.throughput_per_minute)} · p95 ${f.duration(p.p95)}`);
  set('succeeded', f.count(p.success), 'succeeded');
  set('failed', f.count(p.failure), `${f.count(p.retry)} retries`);
}

async function loadCounts() {
  renderCounts(await api('/api/v1/performance', { params: { window: windowParam() } }));
}

async function loadKpis() {
  renderKpis(await api('/api/v1/kpis', { params: { window: windowParam() } }));
}

async function loadCharts() {
  const data = await api('/api/v1/series', { params: { window: windowParam() } });
  points = data.points || data.items || [];
  const xs = points.map((p) => f.epoch(p.ts));
  timeChart(els.throughput, {
    xs,
    fmt: (v) => f.short(v),
    series: [
      { label: 'succeeded', values: seriesOf('succeeded') },
      { label: 'failed', values: seriesOf('failed') },
      { label: 'retried', values: seriesOf('retried') },
    ],
  });
  timeChart(els.latency, {
    xs,
    fmt: (v) => f.ms(v),
    series: [
      { label: 'p50', values: seriesOf('p50_ms') },
      { label: 'p95', values: seriesOf('p95_ms') },
      { label: 'p99', values: seriesOf('p99_ms') },
    ],
  });
  const waitSeries = [{ label: 'mean wait', values: seriesOf('wait_avg_ms') }];
  for (const q of ['p50', 'p95', 'p99']) {
    const key = `wait_${q}_ms`;
    if (points.some((p) => p[key] !== null && p[key] !== undefined)) waitSeries.push({ label: `${q} wait`, values: seriesOf(key) });
  }
  timeChart(els.wait, { xs, fmt: (v) => f.ms(v), series: waitSeries });
}

async function loadDepths() {
  const queues = (await api('/api/v1/queues')).items || [];
  const all = await Promise.all(queues.slice(0, 6).map((q) => api(`/api/v1/queues/${enc(q.name)}/series`)
    .then((s) => ({ name: q.name, points: s.points || [], detail: s.detail })).catch(() => ({ name: q.name, points: [] }))));
  const withData = all.filter((s) => s.points.length);
  if (!withData.length) {
    const how = all.find((s) => s.detail)?.detail;
    replace(els.depth, h('p', { class: 'muted empty' }, `No depth history yet${how ? ` (${how})` : ''}.`));
    return;
  }
  const xs = withData[0].points.map((p) => f.epoch(p.ts));
  timeChart(els.depth, {
    xs,
    fmt: (v) => f.short(v),
    series: withData.map((s) => ({ label: s.name, values: s.points.map((p) => p.backlog ?? p.depth) })),
  });
}

async function loadFleet() {
  const [workers, dlq, breakers, alerts] = await Promise.allSettled([
    api('/api/v1/workers'), api('/api/v1/dlq/stats'), api('/api/v1/breakers'), api('/api/v1/alerts'),
  ]);
  if (workers.status === 'fulfilled') {
    const list = workers.value.items || workers.value.workers || [];
    const online = list.filter((w) => w.status === 'online').length;
    replace(els.workers, h('p', { class: 'big' }, `${online} online`, h('span', { class: 'muted' }, ` · ${list.length - online} offline`)),
      h('ul', { class: 'plain' }, list.slice(0, 8).map((w) => h('li', null, badge(w.status), ' ', w.hostname,
        h('span', { class: 'muted' }, ` · heartbeat ${f.ago(w.heartbeat_age)}`)))));
  }
  if (dlq.status === 'fulfilled') {
    const d = dlq.value;
    const reasons = Object.entries(d.by_reason || {});
    replace(els.dlq, h('p', { class: 'big' }, link('/dlq', f.noun(d.size ?? 0, 'entry', 'entries'))),
      h('p', { class: 'muted' }, `${f.count(d.ready)} ready · ${f.count(d.claimed)} being handled`),
      h('ul', { class: 'plain' }, reasons.slice(0, 6).map(([r, n]) => h('li', null,
        link(`/dlq?reason=${enc(r)}`, r), ` · ${f.count(n)}`))));
  }
  if (breakers.status === 'fulfilled') {
    const all = breakers.value.items || [];
    const open = all.filter((b) => (b.effective_state || b.state) !== 'closed');
    replace(els.breakers, h('p', { class: 'big' }, link('/breakers', `${open.length} not closed`)),
      h('p', { class: 'muted' }, `of ${f.noun(all.length, 'breaker', 'breakers')}`),
      h('ul', { class: 'plain' }, open.slice(0, 6).map((b) => h('li', null, badge(b.effective_state || b.state), ' ', b.name))));
  }
  if (alerts.status === 'fulfilled') {
    const firing = alerts.value.firing || [];
    const pending = (alerts.value.pending || []).length;
    replace(els.alerts, h('p', { class: 'big' }, link('/alerts', `${firing.length} firing`)),
      pending ? h('p', { class: 'muted' }, `${pending} pending`) : null,
      h('ul', { class: 'plain' }, firing.slice(0, 6).map((a) => h('li', null, badge(a.severity || 'warning'), ' ', a.alertname,
        a.subject ? h('span', { class: 'muted' }, ` · ${a.subject}`) : null))));
  } else {
    replace(els.alerts, h('p', { class: 'muted' }, alerts.reason.message));
  }
}

function layout() {
  const current = windowParam();
  const picker = h('nav', { class: 'segmented', 'aria-label': 'Window' }, WINDOWS.map((w) => h('a', {
    href: `?window=${w}`, 'aria-current': w === current ? 'true' : null,
  }, w)));
  for (const key of ['throughput', 'latency', 'wait', 'depth', 'workers', 'dlq', 'breakers', 'alerts']) {
    els[key] = h('div', { class: key === 'throughput' || key === 'latency' || key === 'wait' || key === 'depth' ? 'chart' : 'panel', id: key });
  }
  content(
    h('div', { class: 'toolbar' }, picker),
    h('div', { class: 'tiles' },
      tile('finished', 'Tasks finished'), tile('succeeded', 'Succeeded'), tile('failed', 'Failed'),
      tile('task_success_rate', 'Success rate'), tile('average_task_duration', 'Avg duration'),
      tile('queue_depth', 'Queue depth'), tile('worker_utilization', 'Utilization'),
      tile('retry_rate', 'Retry rate'), tile('dlq_size', 'DLQ size'),
      tile('circuit_breaker_trips', 'Breaker trips')),
    h('div', { class: 'grid2' },
      section('Throughput', els.throughput), section('Duration', els.latency),
      section('Queue wait', els.wait), section('Queue depth', els.depth)),
    h('div', { class: 'grid4' },
      section('Workers', els.workers), section('Dead letter queue', els.dlq),
      section('Breakers', els.breakers), section('Alerts', els.alerts)),
  );
}

export async function init({ live }) {
  layout();
  const guard = (fn) => () => fn().then(() => showError(null)).catch(showError);
  // The KPI tiles fill in when /kpis answers (it reads the cross-name summaries, 15-24 hashes
  // for 1 h); the rest of the page does not wait for it.
  loadKpis().then(() => performance.mark('warden:kpis')).catch(showError);
  await Promise.all([loadCharts(), loadCounts(), loadFleet(), loadDepths()].map((p) => p.catch(showError)));
  const counts = throttle(guard(loadCounts), 1000);
  const charts = throttle(guard(loadCharts), 15000);
  const fleet = throttle(guard(loadFleet), 3000);
  live.on('kpis', (k) => {
    if (windowParam() === '1h') renderKpis(k); else guard(loadKpis)();
    counts();
    charts();
  });
  live.on('task', (t) => { if (['SUCCESS', 'FAILURE', 'REVOKED', 'REJECTED'].includes(t.state)) counts(); });
  live.on('worker', fleet);
  live.on('dlq', fleet);
  live.on('breaker', fleet);
  live.on('alert', fleet);
  live.onPoll(guard(async () => { await Promise.all([loadKpis(), loadCounts(), loadFleet()]); charts(); }));
}
