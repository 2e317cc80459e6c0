// Building DOM nodes without innerHTML: every string from the API becomes a text node, so a
// task name like `<script>` or an error message with `[i]` shows literally and never runs.

const SVG_NS = 'http://www.w3.org/2000/svg';

// Only same-origin paths are ever linked (built by the dashboard itself); anything else is inert.
export function safeHref(value) {
  const s = String(value);
  return s.startsWith('/') && !s.startsWith('//') ? s : '#';
}

function setProps(el, props) {
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') el.setAttribute('class', value);
    else if (key === 'text') el.textContent = String(value);
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'href') el.setAttribute('href', safeHref(value));
    else if (key === 'style') throw new Error('inline styles are refused by the CSP');
    else el.setAttribute(key, value === true ? '' : String(value));
  }
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false || child === '') continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  setProps(el, props);
  return append(el, children);
}

export function svg(tag, props, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setProps(el, props);
  return append(el, children);
}

export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];

export function link(path, text, props = {}) {
  return h('a', { ...props, href: path }, text);
}

// A definition list from [label, value] pairs (value: node, text, or null for "—").
export function facts(pairs) {
  return h('dl', { class: 'facts' }, pairs.filter(Boolean).map(([label, value]) => [
    h('dt', null, label),
    h('dd', null, value === null || value === undefined || value === '' ? '—' : value),
  ]));
}

export function section(title, ...children) {
  return h('section', { class: 'card' }, h('h2', null, title), ...children);
}

export function pre(text, cls = 'code') {
  return h('pre', { class: cls }, text === null || text === undefined ? '' : String(text));
}
