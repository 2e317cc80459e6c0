// Workers: heartbeat age, active, processed, load, memory; pool grow/shrink and shutdown (admin).

import { api, enc } from '../api.js';
import { h } from '../dom.js';
import * as f from '../format.js';
import { can } from '../session.js';
import { actionButton, badge, content, showError, table, throttle } from '../ui.js';

let session = null;

function controls(w) {
  if (!can(session, 'admin') || w.status !== 'online') return '';
  const base = `/api/v1/workers/${enc(w.hostname)}`;
  return h('span', { class: 'buttons' },
    actionButton('Grow', () => api(`${base}/pool`, { method: 'POST', body: { grow: 1 } }).then(() => `Pool of ${w.hostname} grown by 1`), { after: load }),
    actionButton('Shrink', () => api(`${base}/pool`, { method: 'POST', body: { shrink: 1 } }).then(() => `Pool of ${w.hostname} shrunk by 1`), { after: load }),
    actionButton('Shutdown', () => api(`${base}/shutdown`, { method: 'POST' }).then(() => `Shutdown sent to ${w.hostname}`),
      { danger: true, confirm: `Shut down worker ${w.hostname}? Its ${f.count(w.active)} running tasks finish first (warm shutdown).`, after: load }));
}

async function load() {
  const data = await api('/api/v1/workers');
  const items = data.items || data.workers || [];
  content(table([
    { label: 'Worker', cell: (w) => h('span', { class: 'stack' }, w.hostname, h('span', { class: 'muted' }, (w.queues || []).join(', '))) },
    { label: 'Status', cell: (w) => h('span', null, badge(w.status), w.status !== 'online' ? h('span', { class: 'muted' }, ` ${w.state || ''} since ${f.time(w.last_heartbeat)}`) : '') },
    { label: 'Heartbeat', cls: 'num', cell: (w) => f.ago(w.heartbeat_age) },
    { label: 'Active', cls: 'num', cell: (w) => `${f.count(w.active)} / ${f.count(w.concurrency)}` },
    { label: 'Processed', cls: 'num', cell: (w) => f.count(w.processed) },
    { label: 'Load', cls: 'num', cell: (w) => (w.loadavg || []).map((v) => Number(v).toFixed(2)).join(' ') || f.DASH },
    { label: 'Memory', cls: 'num', cell: (w) => f.bytes(w.rss_bytes) },
    { label: 'Pool', cell: (w) => f.plain(w.pool) },
    ...(can(session, 'admin') ? [{ label: 'Actions', cell: controls }] : []),
  ], items, { empty: 'No worker has sent a heartbeat yet.', rowClass: (w) => (w.status === 'online' ? null : 'dim') }));
  showError(null);
}

export async function init(ctx) {
  session = ctx.session;
  await load().catch(showError);
  const refresh = throttle(() => load().catch(showError), 2000);
  ctx.live.on('worker', refresh);
  ctx.live.on('kpis', refresh);
  ctx.live.onPoll(refresh);
}
