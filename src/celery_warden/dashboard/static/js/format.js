// Numbers with units and times in the viewer's own time zone (Intl uses the browser's locale).

const number = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
const integer = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const compact = new Intl.NumberFormat(undefined, { notation: 'compact', maximumFractionDigits: 1 });
const dateTime = new Intl.DateTimeFormat(undefined, {
  year: 'numeric', month: 'short', day: 'numeric',
  hour: '2-digit', minute: '2-digit', second: '2-digit',
});
const timeOnly = new Intl.DateTimeFormat(undefined, {
  hour: '2-digit', minute: '2-digit', second: '2-digit',
});
const timeMs = new Intl.DateTimeFormat(undefined, {
  hour: '2-digit', minute: '2-digit', second: '2-digit', fractionalSecondDigits: 3,
});

export const DASH = '—';
const missing = (v) => v === null || v === undefined || v === '' || Number.isNaN(v);

// Epoch seconds from an epoch number (s) or an ISO string; null when absent.
export function epoch(value) {
  if (missing(value)) return null;
  if (typeof value === 'number') return value;
  const t = Date.parse(value);
  return Number.isNaN(t) ? null : t / 1000;
}

export function time(value) {
  const t = epoch(value);
  if (t === null) return DASH;
  const d = new Date(t * 1000);
  return d.toDateString() === new Date().toDateString() ? timeOnly.format(d) : dateTime.format(d);
}

// To the millisecond (timelines, where several events share a second).
export function preciseTime(value) {
  const t = epoch(value);
  return t === null ? DASH : timeMs.format(new Date(t * 1000));
}

export function fullTime(value) {
  const t = epoch(value);
  return t === null ? '' : `${dateTime.format(new Date(t * 1000))} (${Intl.DateTimeFormat().resolvedOptions().timeZone})`;
}

// Exact, grouped ("1,000,001"): a live counter must change when one task finishes.
export function count(n) {
  if (missing(n)) return DASH;
  return integer.format(n);
}

// "1.2M": for axes, where exact digits are noise.
export function short(n) {
  if (missing(n)) return DASH;
  return Math.abs(n) >= 10000 ? compact.format(n) : integer.format(n);
}

export function pct(v) {
  return missing(v) ? DASH : `${number.format(v)} %`;
}

// Seconds → "850 ms", "1.24 s", "3 min 5 s", "2 h 10 min".
export function duration(seconds) {
  if (missing(seconds)) return DASH;
  const s = Number(seconds);
  if (s < 1) return `${new Intl.NumberFormat(undefined, { maximumFractionDigits: s < 0.01 ? 2 : 0 }).format(s * 1000)} ms`;
  if (s < 60) return `${new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 }).format(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.round((s % 86400) / 3600)} h`;
}

export function ms(value) {
  return missing(value) ? DASH : duration(Number(value) / 1000);
}

// An age in seconds as "12 s ago".
export function ago(seconds) {
  if (missing(seconds)) return DASH;
  const s = Math.max(0, Number(seconds));
  if (s < 1) return 'just now';
  if (s < 60) return `${Math.round(s)} s ago`;
  return `${duration(s).replace(/ \d+ (s|min|h)$/, '')} ago`;
}

export function since(value) {
  const t = epoch(value);
  return t === null ? DASH : ago(Date.now() / 1000 - t);
}

export function bytes(n) {
  if (missing(n)) return DASH;
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = Number(n);
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return `${number.format(v)} ${units[i]}`;
}

export function rate(perMinute) {
  if (missing(perMinute)) return DASH;
  return perMinute >= 60 ? `${number.format(perMinute / 60)} /s` : `${number.format(perMinute)} /min`;
}

// "1 entry", "3 entries": a count with its noun.
export function noun(n, one, many) {
  return `${count(n)} ${Number(n) === 1 ? one : many}`;
}

export function plain(v) {
  return missing(v) ? DASH : String(v);
}
