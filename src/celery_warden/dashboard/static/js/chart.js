// Time-series charts (uPlot, vendored) and tiny SVG sparklines, coloured from the CSS theme.

import { h, svg } from './dom.js';

const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

export const palette = () => [css('--c1'), css('--c2'), css('--c3'), css('--c4'), css('--c5'), css('--c6')];

// series: [{ label, values: [...], color?, unit? }], xs: epoch seconds; fmt(value) for the legend.
export function timeChart(container, { xs, series, fmt, height = 200 }) {
  container.replaceChildren();
  if (!window.uPlot) {
    container.append(h('p', { class: 'muted' }, 'Charts are unavailable (uPlot did not load).'));
    return null;
  }
  if (!xs || xs.length === 0) {
    container.append(h('p', { class: 'muted empty' }, 'No data in this window yet.'));
    return null;
  }
  const colors = palette();
  // One sample (or several at one time) leaves uPlot no span to scale the time axis to: it then
  // spread one point over years. Give such a chart the last five minutes around its samples.
  const lo = Math.min(...xs);
  const hi = Math.max(...xs);
  const x = hi - lo < 60 ? { time: true, range: [lo - 300, hi + 60] } : { time: true };
  const axis = { stroke: css('--muted'), grid: { stroke: css('--grid'), width: 1 }, ticks: { stroke: css('--grid') } };
  const opts = {
    width: Math.max(240, container.clientWidth || 600),
    height,
    legend: { live: true },
    cursor: { drag: { x: false, y: false } },
    scales: { x },
    axes: [axis, { ...axis, size: 64, values: (u, vals) => vals.map((v) => (fmt ? fmt(v) : v)) }],
    series: [
      {},
      ...series.map((s, i) => ({
        label: s.label,
        stroke: s.color || colors[i % colors.length],
        width: 2,
        points: { show: s.values.filter((v) => v !== null && v !== undefined).length < 40, size: 5 },
        value: (u, v) => (v === null || v === undefined ? '—' : (fmt ? fmt(v) : v)),
      })),
    ],
  };
  const plot = new window.uPlot(opts, [xs, ...series.map((s) => s.values)], container);
  const resize = new ResizeObserver(() => {
    const width = Math.max(240, container.clientWidth);
    if (Math.abs(width - plot.width) > 4) plot.setSize({ width, height });
  });
  resize.observe(container);
  return plot;
}

// An inline SVG polyline of numbers (nulls skipped); scales itself to its own min..max.
export function sparkline(values, { width = 96, height = 24, label = 'trend' } = {}) {
  const nums = (values || []).map((v) => (v === null || v === undefined ? null : Number(v)));
  const present = nums.filter((v) => v !== null && !Number.isNaN(v));
  const box = svg('svg', { class: 'spark', viewBox: `0 0 ${width} ${height}`, width, height, role: 'img', 'aria-label': label });
  if (present.length < 2) return box;
  const lo = Math.min(...present);
  const hi = Math.max(...present);
  const span = hi - lo || 1;
  const step = width / (nums.length - 1);
  let d = '';
  let pen = false;
  nums.forEach((v, i) => {
    if (v === null || Number.isNaN(v)) { pen = false; return; }
    const x = (i * step).toFixed(1);
    const y = (height - 2 - ((v - lo) / span) * (height - 4)).toFixed(1);
    d += `${pen ? 'L' : 'M'}${x} ${y} `;
    pen = true;
  });
  box.append(svg('path', { d: d.trim(), class: 'spark-line' }));
  return box;
}
