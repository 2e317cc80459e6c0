// One task: its facts, a timeline from sent to its end (each retry with its error and delay),
// its workflow, masked arguments, progress, and the actions the session's scope allows.

import { api, enc } from '../api.js';
import { facts, h, link, pre, replace, section } from '../dom.js';
import * as f from '../format.js';
import { can } from '../session.js';
import { actionButton, actions, badge, content, showError, throttle } from '../ui.js';

const FINAL = ['SUCCESS', 'FAILURE', 'REVOKED', 'REJECTED', 'IGNORED'];

function timeline(t) {
  const events = t.timeline || [];
  if (!events.length) return h('p', { class: 'muted' }, 'No events recorded.');
  return h('ol', { class: 'timeline' }, events.map((e) => {
    const kind = String(e.event || '').toLowerCase();
    const detail = [];
    if (e.error || e.exc_type) {
      const err = e.error || { type: e.exc_type, message: e.exc_msg || e.message };
      detail.push(h('div', { class: 'err' }, `${err.type || 'Error'}: ${err.message || ''}`));
    } else if (e.message) detail.push(h('div', { class: 'muted' }, e.message));
    if (e.countdown !== undefined || e.delay !== undefined) detail.push(h('div', { class: 'muted' }, `retry in ${f.duration(e.countdown ?? e.delay)}`));
    if (e.worker || e.hostname) detail.push(h('div', { class: 'muted' }, `on ${e.worker || e.hostname}`));
    if (e.runtime !== undefined && e.runtime !== null) detail.push(h('div', { class: 'muted' }, `ran ${f.duration(e.runtime)}`));
    if (e.reason) detail.push(h('div', { class: 'muted' }, `reason: ${e.reason}`));
    if (e.queue_wait !== undefined && e.queue_wait !== null) detail.push(h('div', { class: 'muted' }, `waited ${f.duration(e.queue_wait)} in the queue`));
    if (kind === 'republished' && e.retries) detail.push(h('div', { class: 'muted' }, `message of retry ${f.count(e.retries)} sent`));
    if (e.entry) detail.push(h('div', null, link(`/dlq/${enc(e.entry)}`, `DLQ entry ${e.entry}`)));
    const title = kind === 'retry' && e.attempt !== undefined && e.attempt !== null ? `retry ${Number(e.attempt) + 1}` : String(e.event || '').replaceAll('_', ' ');
    return h('li', { class: `ev ev-${kind}`, 'data-event': kind },
      h('time', { title: f.fullTime(e.ts) }, f.preciseTime(e.ts)),
      h('div', null, h('strong', null, title), ...detail));
  }));
}

function member(m) {
  if (!m) return null;
  if (typeof m === 'string') return link(`/tasks/${enc(m)}`, m);
  const id = m.task_id || m.id;
  if (m.known === false) return h('span', null, h('code', null, id), h('span', { class: 'muted' }, ' (no record)'));
  return h('span', null, badge(m.state || 'unknown'), ' ', link(`/tasks/${enc(id)}`, m.name || id),
    m.name ? h('code', { class: 'muted id' }, ` ${id}`) : null);
}

function workflow(t) {
  const w = t.workflow || {};
  const children = w.children || [];
  const group = w.group || null;
  const groupMembers = Array.isArray(group) ? group : (group && typeof group === 'object' && (group.members || group.tasks)) || [];
  const idOf = (m) => (m && typeof m === 'object' ? m.task_id || m.id : m);
  // A retried task is its own parent in Celery's headers: not a workflow.
  const parent = w.parent && idOf(w.parent) !== t.task_id ? w.parent : null;
  const root = w.root && idOf(w.root) !== t.task_id ? w.root : null;
  if (!parent && !root && !children.length && !group) return null;
  return section('Workflow', h('ul', { class: 'tree' },
    root && idOf(root) !== idOf(parent) ? h('li', null, 'root: ', member(root)) : null,
    parent ? h('li', null, 'parent: ', member(parent)) : null,
    h('li', { class: 'self' }, 'this task: ', badge(t.state), ' ', t.name || t.task_id,
      children.length ? h('ul', null, children.map((c) => h('li', null, member(c)))) : null),
    typeof group === 'string' ? h('li', null, 'group: ', h('code', null, group)) : null,
    groupMembers.length ? h('li', null, `group${group.id ? ` ${group.id}` : ''} (${groupMembers.length} members)`,
      h('ul', null, groupMembers.map((c) => h('li', null, member(c))))) : null,
    w.children_complete === false ? h('li', { class: 'muted' }, 'more children may exist (search stopped)') : null));
}

function progress(t) {
  const p = t.progress;
  if (!p || typeof p !== 'object') return null;
  const done = Number(p.done ?? p.current ?? 0);
  const total = p.total === null || p.total === undefined ? null : Number(p.total);
  // Without a total the bar is indeterminate (no value): the count alone is known.
  const bar = total ? h('progress', { max: total, value: Math.min(done, total) }) : h('progress', null);
  const text = total ? ` ${f.count(done)} / ${f.count(total)} (${f.pct(p.percent ?? (100 * done) / total)})` : ` ${f.count(done)} done`;
  return section('Progress', bar, text, p.message ? h('p', { class: 'muted' }, p.message) : null);
}

function render(t, session) {
  const acts = [];
  if (can(session, 'operate')) {
    if (FINAL.includes(t.state)) {
      acts.push(actionButton('Retry', async () => {
        const r = await api(`/api/v1/tasks/${enc(t.task_id)}/retry`, { method: 'POST' });
        return `Retried as ${r.task_id}`;
      }, { confirm: `Send ${t.name || 'this task'} again with the same arguments?` }));
    } else {
      acts.push(actionButton('Revoke', () => api(`/api/v1/tasks/${enc(t.task_id)}/revoke`, { method: 'POST' }),
        { confirm: 'Revoke this task?', danger: true, after: reload }));
    }
  }
  actions(...acts);
  replace(document.getElementById('title'), `${t.name || 'Task'} `, badge(t.state));
  content(
    h('div', { class: 'grid2' },
      section('Task', facts([
        ['Id', h('code', null, t.task_id)],
        ['State', badge(t.state)],
        ['Name', t.name ? link(`/task-types/${enc(t.name)}`, t.name) : null],
        ['Queue', t.queue], ['Worker', t.worker], ['Priority', f.plain(t.priority)],
        ['Sent', f.time(t.sent_at)], ['Started', f.time(t.started_at)], ['Finished', f.time(t.finished_at)],
        ['Queue wait', f.duration(t.queue_wait)], ['Runtime', f.duration(t.runtime ?? t.elapsed)],
        ['Retries', f.count(t.retries)], ['Deliveries', f.count(t.deliveries)],
        t.dlq_entry ? ['DLQ entry', link(`/dlq/${enc(t.dlq_entry)}`, t.dlq_entry)] : null,
        t.reason ? ['Reason', t.reason] : null,
        t.error ? ['Error', h('span', { class: 'err' }, `${t.error.type}: ${t.error.message}`)] : null,
      ])),
      section('Timeline', timeline(t))),
    progress(t),
    workflow(t),
    section('Arguments (masked)', h('h3', null, 'args'), pre(JSON.stringify(t.args ?? null, null, 2)),
      h('h3', null, 'kwargs'), pre(JSON.stringify(t.kwargs ?? null, null, 2))),
  );
}

let reload = async () => {};

const RUNNING_REFRESH_MS = 2000;

export async function init({ session, id, live }) {
  let state = null;
  reload = async () => {
    const t = await api(`/api/v1/tasks/${enc(id)}`);
    state = t.state;
    render(t, session);
    showError(null);
  };
  await reload().catch(showError);
  const refresh = throttle(() => reload().catch(showError), 1000);
  live.on('task', (e) => { if (e.id === id || e.task_id === id) refresh(); });
  live.onPoll(refresh);
  // Progress and elapsed time change without a state change (no stream event): while the task
  // runs, its page re-reads it every 2 s.
  window.setInterval(() => { if (state === 'STARTED') refresh(); }, RUNNING_REFRESH_MS);
}
