// Renders /api/openapi.json as a list of endpoints. Text goes in with textContent only:
// descriptions come from the server, but nothing here is ever parsed as HTML.
"use strict";

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function describeParams(op) {
  const list = el("ul", "params");
  for (const p of op.parameters || []) {
    const schema = p.schema || {};
    const kind = schema.enum ? schema.enum.join(" | ") : (schema.type || (schema.anyOf || [])
      .map((s) => s.enum ? s.enum.join(" | ") : s.type).filter(Boolean).join(" | "));
    const item = el("li");
    item.append(el("code", "", p.name), el("span", "in", ` (${p.in}${p.required ? ", required" : ""}) `),
      el("span", "type", kind || ""));
    if (p.description) item.append(el("span", "desc", ` — ${p.description}`));
    list.append(item);
  }
  if (op.requestBody) list.append(el("li", "", "JSON body (see the schema)"));
  return list;
}

function render(spec) {
  const main = document.getElementById("endpoints");
  main.textContent = "";
  const groups = new Map();
  for (const [path, methods] of Object.entries(spec.paths || {})) {
    for (const [method, op] of Object.entries(methods)) {
      const tag = (op.tags && op.tags[0]) || "other";
      if (!groups.has(tag)) groups.set(tag, []);
      groups.get(tag).push({ path, method, op });
    }
  }
  for (const [tag, ops] of groups) {
    const section = el("section");
    section.append(el("h2", "", tag));
    for (const { path, method, op } of ops) {
      const box = el("details", "op");
      const summary = el("summary");
      summary.append(el("span", `method ${method}`, method.toUpperCase()), el("code", "path", path),
        el("span", "summary", op.summary || ""));
      box.append(summary);
      if (op.description) box.append(el("p", "description", op.description));
      box.append(describeParams(op));
      section.append(box);
    }
    main.append(section);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  fetch("/api/openapi.json", { credentials: "same-origin" })
    .then((r) => r.json())
    .then(render)
    .catch((err) => {
      const main = document.getElementById("endpoints");
      main.textContent = `Could not load the schema: ${err}`;
    });
});
