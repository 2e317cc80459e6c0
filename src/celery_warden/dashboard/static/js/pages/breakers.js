// Circuit breakers: state, failure rate, window, transitions; force open / closed / reset.

import { api, enc } from '../api.js';
import { h } from '../dom.js';
import * as f from '../format.js';
import { can } from '../session.js';
import { actionButton, badge, content, showError, table, throttle } from '../ui.js';

let session = null;

function controls(b) {
  const base = `/api/v1/breakers/${enc(b.name)}`;
  return h('span', { class: 'buttons' }, ['open', 'close', 'reset'].map((verb) => actionButton(
    verb === 'open' ? 'Force open' : verb === 'close' ? 'Force closed' : 'Reset',
    () => api(`${base}/${verb}`, { method: 'POST' }).then(() => `${b.name}: ${verb} done`),
    { name: verb, danger: verb === 'open', confirm: verb === 'open' ? `Force breaker ${b.name} open? Calls through it fail fast until closed.` : undefined, after: load })));
}

async function load() {
  const data = await api('/api/v1/breakers');
  content(table([
    { label: 'Breaker', cell: (b) => b.name },
    { label: 'State', cell: (b) => h('span', null, badge(b.effective_state || b.state),
      b.retry_after ? h('span', { class: 'muted' }, ` retry in ${f.duration(b.retry_after)}`) : '') },
    { label: 'Failure rate', cls: 'num', cell: (b) => f.pct(b.window?.failure_rate) },
    { label: 'Calls / failures', cls: 'num', cell: (b) => `${f.count(b.window?.calls)} / ${f.count(b.window?.failures)}` },
    { label: 'Window', cls: 'num', cell: (b) => (b.config?.window_size ? `${f.count(b.config.window_size)} calls` : f.DASH) },
    { label: 'Threshold', cls: 'num', cell: (b) => f.pct(b.config?.failure_rate_threshold) },
    { label: 'Trips', cls: 'num', cell: (b) => f.count(b.trips) },
    { label: 'Since', cell: (b) => f.since(b.since) },
    { label: 'Transitions', cls: 'wrap', cell: (b) => (b.history || []).slice(-5).map((t) => `${t.from ?? ''}→${t.to ?? t.state ?? ''} ${f.time(t.at)}`).join(' · ') || f.DASH },
    ...(can(session, 'operate') ? [{ label: 'Actions', cell: controls }] : []),
  ], data.items || [], { empty: 'No circuit breaker has been used yet.' }));
  showError(null);
}

export async function init(ctx) {
  session = ctx.session;
  await load().catch(showError);
  const refresh = throttle(() => load().catch(showError), 2000);
  ctx.live.on('breaker', refresh);
  ctx.live.onPoll(refresh);
}
