// Alerts: firing and pending now, resolved ones in the history; silences (operate).

import { api, enc } from '../api.js';
import { h, section } from '../dom.js';
import * as f from '../format.js';
import { can } from '../session.js';
import { actionButton, badge, content, showError, table, throttle } from '../ui.js';

let session = null;

const labels = (a) => Object.entries(a.labels || {}).map(([k, v]) => `${k}=${v}`).join(' ');

async function load() {
  const [now, past] = await Promise.all([
    api('/api/v1/alerts'), api('/api/v1/alerts/history').catch(() => ({ items: [] })),
  ]);
  const active = [...(now.firing || []), ...(now.pending || [])];
  const cols = [
    { label: 'Alert', cell: (a) => h('span', { class: 'stack' }, a.alertname, h('span', { class: 'muted' }, a.subject || '')) },
    { label: 'State', cell: (a) => badge(a.state || 'firing') },
    { label: 'Severity', cell: (a) => badge(a.severity || 'warning') },
    { label: 'Value', cls: 'num', cell: (a) => f.plain(a.value) },
    { label: 'Since', cell: (a) => h('time', { title: f.fullTime(a.active_at) }, f.since(a.active_at)) },
    { label: 'Description', cls: 'wrap', cell: (a) => a.annotations?.description || a.annotations?.summary || '' },
    { label: 'Labels', cls: 'wrap', cell: labels },
  ];
  if (can(session, 'operate')) {
    cols.push({ label: 'Actions', cell: (a) => actionButton('Silence 1 h', () => api('/api/v1/alerts/silences', {
      method: 'POST', body: { rule: a.alertname, scope: a.subject || '*', duration: '1h', comment: 'silenced from the dashboard' },
    }).then(() => `Silenced ${a.alertname} for 1 h`), { name: 'silence', after: load }) });
  }
  content(
    section('Active', table(cols, active, { empty: 'No alert is firing.' })),
    (now.silences || []).length ? section('Silences', table([
      { label: 'Rule', cell: (s) => s.rule },
      { label: 'Scope', cell: (s) => s.scope },
      { label: 'Until', cell: (s) => f.time(s.until ?? s.ends_at) },
      { label: 'Comment', cls: 'wrap', cell: (s) => s.comment || '' },
      ...(can(session, 'operate') ? [{ label: 'Actions', cell: (s) => actionButton('Remove', () => api(`/api/v1/alerts/silences/${enc(s.id)}`, { method: 'DELETE' })
        .then(() => 'Silence removed'), { name: 'unsilence', after: load }) }] : []),
    ], now.silences)) : null,
    section('History', table([
      { label: 'When', cell: (a) => h('time', { title: f.fullTime(a.ts ?? a.at) }, f.time(a.ts ?? a.at)) },
      { label: 'Alert', cell: (a) => h('span', { class: 'stack' }, a.alertname, h('span', { class: 'muted' }, a.subject || '')) },
      { label: 'Change', cell: (a) => h('span', null, badge(a.from), ' → ', badge(a.to)) },
      { label: 'Value', cls: 'num', cell: (a) => f.plain(a.value) },
      { label: 'Summary', cls: 'wrap', cell: (a) => a.summary || '' },
    ], past.items || [], { empty: 'No alert history yet.' })),
  );
  showError(null);
}

export async function init(ctx) {
  session = ctx.session;
  await load().catch(showError);
  const refresh = throttle(() => load().catch(showError), 2000);
  ctx.live.on('alert', refresh);
  ctx.live.onPoll(refresh);
}
