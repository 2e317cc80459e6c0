// Task types: one row per task name with its rate, failure share, p95 and a sparkline.
// Sorted and paginated by the server (?sort=&order=&cursor=); each row of the page arrives with
// its percentiles and its sparkline (finished per minute), so the page makes one API call.

import { api, enc } from '../api.js';
import { h, link } from '../dom.js';
import * as f from '../format.js';
import { sparkline } from '../chart.js';
import { content, pageParams, showError, table, throttle } from '../ui.js';

// A column header that sorts by `key` (a second click on the current one flips the order).
function sortable(label, key) {
  const params = new URLSearchParams(window.location.search);
  const current = params.get('sort') || 'count';
  const order = params.get('order') || (current === 'name' ? 'asc' : 'desc');
  const next = current === key ? (order === 'desc' ? 'asc' : 'desc') : (key === 'name' ? 'asc' : 'desc');
  params.set('sort', key);
  params.set('order', next);
  params.delete('cursor');
  const mark = current === key ? (order === 'desc' ? ' ↓' : ' ↑') : '';
  return h('a', { href: `${window.location.pathname}?${params.toString()}` }, label + mark);
}

const columns = () => [
  { label: sortable('Task name', 'name'), cell: (t) => link(`/task-types/${enc(t.name)}`, t.name) },
  { label: sortable('Rate', 'rate'), cls: 'num', cell: (t) => f.rate(t.rate_per_min) },
  { label: sortable('Finished', 'count'), cls: 'num', cell: (t) => f.count(t.count) },
  { label: sortable('Failed', 'failed'), cls: 'num', cell: (t) => f.count(t.failed) },
  { label: sortable('Failure', 'failure_rate'), cls: 'num', cell: (t) => f.pct(t.failure_rate_pct) },
  { label: sortable('Retried', 'retried'), cls: 'num', cell: (t) => f.count(t.retried) },
  { label: 'p50', cls: 'num', cell: (t) => f.ms(t.p50_ms) },
  { label: 'p95', cls: 'num', cell: (t) => f.ms(t.p95_ms) },
  { label: 'Trend', cell: (t) => (t.spark && t.spark.length ? sparkline(t.spark, { label: `${t.name} finished per step` }) : '') },
];

// Rows per page: each shown row costs the server a merge of its buckets (its percentiles).
const PAGE = 25;

// "First" and "Next" links keeping the window and the sort in the query string.
function pages(data) {
  const params = new URLSearchParams(window.location.search);
  const items = [];
  if (params.has('cursor')) {
    params.delete('cursor');
    items.push(h('a', { href: `${window.location.pathname}?${params.toString()}`, class: 'button secondary' }, '← First'));
  }
  if (data.next_cursor) {
    params.set('cursor', data.next_cursor);
    items.push(h('a', { href: `${window.location.pathname}?${params.toString()}`, class: 'button secondary', rel: 'next' }, 'Next →'));
  }
  items.push(h('span', { class: 'muted' }, `${f.count(data.total)} task names`));
  return h('nav', { class: 'pager', 'aria-label': 'Pages' }, items);
}

async function load() {
  const data = await api('/api/v1/task-types', { params: { limit: PAGE, ...pageParams(['window', 'cursor', 'sort', 'order']) } });
  content(table(columns(), data.items, { empty: 'No task has run yet.' }), pages(data));
  showError(null);
}

export async function init({ live }) {
  await load().catch(showError);
  const refresh = throttle(() => load().catch(showError), 10000);
  live.on('kpis', refresh);
  live.onPoll(refresh);
}
