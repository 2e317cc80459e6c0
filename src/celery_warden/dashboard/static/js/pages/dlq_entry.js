// One DLQ entry: exception, traceback, retry history, the original message's facts; actions.

import { api, enc } from '../api.js';
import { facts, h, link, pre, section } from '../dom.js';
import * as f from '../format.js';
import { can } from '../session.js';
import { actionButton, actions, badge, content, showError, table } from '../ui.js';

export async function init({ session, id }) {
  const base = `/api/v1/dlq/${enc(id)}`;
  let e;
  try { e = await api(base); } catch (exc) { content(); showError(exc); return; }
  const gone = () => window.setTimeout(() => window.location.assign('/dlq'), 800);
  const acts = [];
  if (can(session, 'operate')) {
    acts.push(actionButton('Requeue', () => api(`${base}/requeue`, { method: 'POST' }).then((r) => `Requeued${r && r.task_id ? ` as ${r.task_id}` : ''}`), { after: gone }));
    acts.push(actionButton('Park', () => api(`${base}/park`, { method: 'POST' }).then(() => 'Parked'), { after: () => window.location.reload() }));
  }
  if (can(session, 'admin')) {
    acts.push(actionButton('Discard', () => api(`${base}/discard`, { method: 'POST' }).then(() => 'Discarded'),
      { danger: true, confirm: 'Discard this entry for good?', after: gone }));
  }
  actions(...acts);
  const history = e.history || e.retry_history || [];
  content(
    section('Entry', facts([
      ['Entry id', h('code', null, e.id || id)],
      ['Task', e.task_id ? link(`/tasks/${enc(e.task_id)}`, e.task_id) : null],
      ['Task name', e.task_name], ['Queue', e.queue], ['Reason', badge(e.reason, 'reason')],
      ['Status', badge(e.status || 'pending')], ['Dead since', f.time(e.dead_at ?? e.ts)],
      ['Retries', f.count(e.retries)], ['Requeued', f.count(e.requeues ?? e.requeue_count)],
      ['Exception', h('span', { class: 'err' }, [e.exc_type, e.exc_msg ?? e.message].filter(Boolean).join(': '))],
    ])),
    section('Traceback', pre(e.traceback || 'No traceback was recorded.')),
    section('Retry history', table([
      { label: 'When', cell: (r) => f.time(r.ts ?? r.at) },
      { label: 'Attempt', cls: 'num', cell: (r) => f.plain(r.attempt ?? r.retries) },
      { label: 'Error', cls: 'wrap', cell: (r) => h('span', { class: 'err' }, [r.exc_type ?? r.type, r.exc_msg ?? r.message].filter(Boolean).join(': ')) },
      { label: 'Delay', cls: 'num', cell: (r) => f.duration(r.countdown ?? r.delay) },
    ], history, { empty: 'No retry before it died.' })),
    section('Arguments (masked)', pre(JSON.stringify({ args: e.args ?? null, kwargs: e.kwargs ?? null }, null, 2))),
  );
}
