// Shared page furniture: tables, pagination, errors, the confirmation dialog, toasts, buttons.

import { ApiError } from './api.js';
import { $, h, replace } from './dom.js';
import { toLogin } from './session.js';

export function showError(exc) {
  const el = $('#error');
  if (!el) return;
  if (exc instanceof ApiError && exc.status === 401) { toLogin(); return; }
  if (!exc) { el.hidden = true; return; }
  const prefix = exc instanceof ApiError && exc.status ? `${exc.status} ${exc.code}: ` : '';
  const where = exc instanceof ApiError && exc.path ? ` (${exc.path})` : '';
  el.textContent = prefix + (exc.message || String(exc)) + where;
  el.hidden = false;
  const box = $('#content');
  if (box && box.hasAttribute('aria-busy')) {
    box.removeAttribute('aria-busy');
    box.replaceChildren();
  }
}

export function toast(text, kind = 'ok') {
  const el = $('#toast');
  if (!el) return;
  el.dataset.kind = kind;
  el.textContent = text;
  el.classList.add('show');
  window.clearTimeout(toast.timer);
  toast.timer = window.setTimeout(() => el.classList.remove('show'), 4000);
}

// columns: [{ label, cell(row) -> node|text, cls }]; empty: text for no rows.
export function table(columns, rows, { empty = 'Nothing here yet.', rowClass, rowProps } = {}) {
  if (!rows || rows.length === 0) return h('p', { class: 'muted empty' }, empty);
  return h('div', { class: 'table-wrap' }, h('table', null,
    h('thead', null, h('tr', null, columns.map((c) => h('th', { class: c.cls, scope: 'col' }, c.label)))),
    h('tbody', null, rows.map((row) => tableRow(columns, row, { rowClass, rowProps }))),
  ));
}

export function tableRow(columns, row, { rowClass, rowProps } = {}) {
  return h('tr', { ...(rowProps ? rowProps(row) : {}), class: rowClass ? rowClass(row) : null },
    columns.map((c) => h('td', { class: c.cls, 'data-label': c.label }, c.cell(row))));
}

// "Newer" (back to the first page) and "Older" links keeping the filters in the query string.
export function pager(nextCursor) {
  const params = new URLSearchParams(window.location.search);
  const hadCursor = params.has('cursor');
  params.delete('cursor');
  const first = `?${params.toString()}`;
  const items = [];
  if (hadCursor) items.push(h('a', { href: window.location.pathname + first, class: 'button secondary' }, '← Newest'));
  if (nextCursor) {
    params.set('cursor', nextCursor);
    items.push(h('a', { href: `${window.location.pathname}?${params.toString()}`, class: 'button secondary', rel: 'next' }, 'Older →'));
  }
  return items.length ? h('nav', { class: 'pager', 'aria-label': 'Pages' }, items) : null;
}

// Resolves true when the viewer confirms; the text is set as text, never as markup.
export function confirmDialog(text, okLabel = 'Confirm', danger = true) {
  const dialog = $('#confirm');
  $('#confirm-text').textContent = text;
  $('#confirm-ok').textContent = okLabel;
  $('#confirm-ok').className = danger ? 'danger' : '';
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
    dialog.returnValue = '';
    dialog.showModal();
  });
}

// A button that asks (optional), runs the action, reports the outcome, then calls after().
export function actionButton(label, run, { confirm, danger = false, after, name } = {}) {
  const button = h('button', { type: 'button', class: danger ? 'danger' : 'secondary', 'data-action': name || label.toLowerCase() }, label);
  button.addEventListener('click', async () => {
    const question = typeof confirm === 'function' ? await confirm() : confirm;
    if (question === null) return;
    if (question && !(await confirmDialog(question, label, danger))) return;
    button.disabled = true;
    try {
      const result = await run();
      toast(typeof result === 'string' ? result : `${label}: done`);
      if (after) await after(result);
    } catch (exc) {
      toast(`${label} failed: ${exc.message}`, 'error');
      showError(exc);
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

export function badge(text, kind) {
  return h('span', { class: `badge ${kind || String(text || '').toLowerCase()}` }, text || '—');
}

export function content(...children) {
  const el = $('#content');
  el.removeAttribute('aria-busy');
  return replace(el, ...children);
}

export function actions(...children) {
  const el = $('#actions');
  return el ? replace(el, ...children) : null;
}

// Run fn at most once per `ms` (trailing call kept): live events can arrive in bursts.
export function throttle(fn, ms) {
  let timer = null;
  let pending = false;
  return () => {
    if (timer) { pending = true; return; }
    fn();
    timer = window.setTimeout(function tick() {
      timer = null;
      if (pending) { pending = false; fn(); timer = window.setTimeout(tick, ms); }
    }, ms);
  };
}

// Query-string parameters of the page (its filters), without empty values.
export function pageParams(allowed) {
  const params = {};
  for (const [key, value] of new URLSearchParams(window.location.search)) {
    if (value !== '' && (!allowed || allowed.includes(key))) params[key] = value;
  }
  return params;
}
