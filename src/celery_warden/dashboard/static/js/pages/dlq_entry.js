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
      ['Task name', e.name ? link(`/task-types/${enc(e.name)}`, e.name) : null], ['Queue', e.queue], ['Reason', badge(e.reason, 'reason')],
      ['Status', badge(e.status || 'pending')], ['Worker', e.worker],
      ['First failed', f.time(e.first_failed)], ['Last failed', f.time(e.last_failed)],
      ['Failures', f.count(e.failures)], ['Requeued', f.count(e.requeues)],
      (e.requeued_task_ids || []).length ? ['Requeued as', h('span', { class: 'stack' }, e.requeued_task_ids.map((t) => link(`/tasks/${enc(t)}`, t)))] : null,
      e.note ? ['Note', e.note] : null,
      ['Exception', h('span', { class: 'err' }, [e.exc_type, e.exc_message].filter(Boolean).join(': '))],
    ])),
    section('Traceback', pre(e.traceback || 'No traceback was recorded.')),
    section('Retry history', table([
      { label: 'When', cell: (r) => f.time(r.at ?? r.ts) },
      { label: 'Attempt', cls: 'num', cell: (r) => f.plain(r.attempt ?? r.retries) },
      { label: 'Worker', cell: (r) => f.plain(r.worker) },
      { label: 'Error', cls: 'wrap', cell: (r) => h('span', { class: 'err' }, [r.exc_type ?? r.type, r.exc_msg ?? r.message].filter(Boolean).join(': ')) },
      { label: 'Delay', cls: 'num', cell: (r) => f.duration(r.countdown ?? r.delay) },
    ], history, { empty: 'No retry before it died.' })),
    section('Arguments (masked)', pre(JSON.stringify({ args: e.args ?? null, kwargs: e.kwargs ?? null }, null, 2))),
  );
}
