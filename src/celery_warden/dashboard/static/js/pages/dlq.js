// Dead letter queue: entries filtered by reason, task name, status and age; requeue / park /
// discard one, or all that match the filter after a confirmation stating their count.

import { api, enc } from '../api.js';
import { h, link } from '../dom.js';
import * as f from '../format.js';
import { can } from '../session.js';
import { actionButton, actions, badge, content, pageParams, pager, showError, table, throttle, toast } from '../ui.js';

const FILTERS = ['reason', 'task_name', 'status', 'older_than_s'];
let session = null;

const idOf = (e) => e.id || e.entry_id;

function rowActions(e) {
  const base = `/api/v1/dlq/${enc(idOf(e))}`;
  const buttons = [];
  if (can(session, 'operate')) {
    buttons.push(actionButton('Requeue', () => api(`${base}/requeue`, { method: 'POST' }).then(() => `Requeued ${e.name || idOf(e)}`), { after: load }));
    if (e.status !== 'parked') buttons.push(actionButton('Park', () => api(`${base}/park`, { method: 'POST' }).then(() => 'Parked'), { after: load }));
  }
  if (can(session, 'admin')) {
    buttons.push(actionButton('Discard', () => api(`${base}/discard`, { method: 'POST' }).then(() => 'Discarded'),
      { danger: true, confirm: `Discard this ${e.name || ''} entry for good?`, after: load }));
  }
  return h('span', { class: 'buttons' }, buttons);
}

function describe(filters) {
  const parts = Object.entries(filters).map(([k, v]) => `${k}=${v}`);
  return parts.length ? ` matching ${parts.join(', ')}` : '';
}

function bulk(verb, scope) {
  if (!can(session, scope)) return null;
  const label = `${verb[0].toUpperCase()}${verb.slice(1)} all`;
  return actionButton(label, async () => {
    const r = await api(`/api/v1/dlq/${verb}`, { method: 'POST', params: pageParams(FILTERS) });
    return `${label}: ${f.count(r.done)} of ${f.count(r.matched)} done${r.failed ? `, ${f.count(r.failed)} failed` : ''}`;
  }, {
    name: `bulk-${verb}`,
    danger: verb === 'discard',
    confirm: async () => {
      const filters = pageParams(FILTERS);
      const c = await api('/api/v1/dlq/count', { params: filters });
      const n = c.matched ?? c.count ?? 0;
      if (!n) { toast(`No entry${describe(filters)}.`, 'error'); return null; }
      return `${verb[0].toUpperCase()}${verb.slice(1)} ${c.capped ? 'at least ' : ''}${f.count(n)} ${n === 1 ? 'entry' : 'entries'}${describe(filters)}?`;
    },
    after: load,
  });
}

const columns = [
  { label: 'Task', cell: (e) => h('span', { class: 'stack' }, link(`/dlq/${enc(idOf(e))}`, e.name || '(unknown task)'), h('code', { class: 'muted id' }, e.task_id || '')) },
  { label: 'Reason', cell: (e) => badge(e.reason, 'reason') },
  { label: 'Status', cell: (e) => badge(e.status || 'pending') },
  { label: 'Error', cls: 'wrap', cell: (e) => h('span', { class: 'err' }, [e.exc_type, e.exc_message].filter(Boolean).join(': ')) },
  { label: 'Queue', cell: (e) => f.plain(e.queue) },
  { label: 'Failures', cls: 'num', cell: (e) => f.count(e.failures) },
  { label: 'Last failed', cell: (e) => h('time', { title: f.fullTime(e.last_failed) }, f.since(e.last_failed)) },
];

async function load() {
  const data = await api('/api/v1/dlq', { params: { ...pageParams([...FILTERS, 'cursor']), limit: 50 } });
  const cols = can(session, 'operate') ? [...columns, { label: 'Actions', cell: rowActions }] : columns;
  content(table(cols, data.items, { empty: 'The dead letter queue is empty for these filters.' }), pager(data.next_cursor));
  showError(null);
}

export async function init(ctx) {
  session = ctx.session;
  actions(bulk('requeue', 'operate'), bulk('park', 'operate'), bulk('discard', 'admin'));
  await load().catch(showError);
  const refresh = throttle(() => load().catch(showError), 2000);
  ctx.live.on('dlq', refresh);
  ctx.live.onPoll(refresh);
}
