// Alerts: firing and pending now, resolved ones in the history; silences (operate).

import { api } from '../api.js';
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
  const active = now.items || [...(now.firing || []), ...(now.pending || [])];
  const cols = [
    { label: 'Rule', cell: (a) => a.rule || a.name },
    { label: 'State', cell: (a) => badge(a.state || 'firing') },
    { label: 'Severity', cell: (a) => badge(a.severity || 'warning') },
    { label: 'Labels', cls: 'wrap', cell: labels },
    { label: 'Value', cls: 'num', cell: (a) => f.plain(a.value) },
    { label: 'Since', cell: (a) => f.since(a.since ?? a.started_at ?? a.active_at) },
    { label: 'Summary', cls: 'wrap', cell: (a) => a.summary || a.message || '' },
  ];
  if (can(session, 'operate')) {
    cols.push({ label: 'Actions', cell: (a) => actionButton('Silence 1 h', () => api('/api/v1/alerts/silences', {
      method: 'POST', body: { matchers: { alertname: a.rule || a.name, ...(a.labels || {}) }, duration_s: 3600, comment: 'silenced from the dashboard' },
    }).then(() => 'Silenced for 1 h'), { after: load }) });
  }
  content(
    section('Active', table(cols, active, { empty: 'No alert is firing.' })),
    section('History', table([
      { label: 'When', cell: (a) => f.time(a.ts ?? a.resolved_at ?? a.at) },
      { label: 'Rule', cell: (a) => a.rule || a.name },
      { label: 'State', cell: (a) => badge(a.state) },
      { label: 'Labels', cls: 'wrap', cell: labels },
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
