// Modules: the model's nn.Modules as a tree by qualified name, with their calls and host and device times.

import { el } from "../charts.js";
import { get } from "../fetch.js";
import { ms } from "../format.js";

// Each row can fold its children.
export async function showModules(view, { run, worker, step }) {
  const data = await get("modules", { run, worker, step });
  const rows = Array.isArray(data) ? data : data.modules || [];
  if (!rows.length) {
    view.replaceChildren(el("p", { id: "modules-empty" }, data.hint ||
      "No nn.Module events in this trace. Record them with tbscope.profile(run, model=model) (each module by its qualified name, as layer3.1.conv2) or tbscope.profile(run, with_stack=True) (by class, as Conv2d_3)."));
    return;
  }
  const name = (r) => r.module || r.name;
  const parentOf = (r) => ("parent" in r ? r.parent ?? "" : name(r).includes(".") ? name(r).slice(0, name(r).lastIndexOf(".")) : "");
  const children = new Map();
  for (const r of rows) {
    const parent = parentOf(r);
    if (!children.has(parent)) children.set(parent, []);
    children.get(parent).push(r);
  }
  const known = new Set(rows.map(name));
  const roots = rows.filter((r) => !known.has(parentOf(r)));
  const open = new Set(roots.map(name));
  const body = el("tbody");
  const typed = rows.some((r) => r.type), onDevice = rows.some((r) => r.device_total_us !== undefined && r.device_total_us !== null);
  const fill = () => {
    const out = [];
    const walk = (r, depth) => {
      const kids = children.get(name(r)) || [];
      const toggle = el("span", { class: "toggle" }, kids.length ? (open.has(name(r)) ? "▾" : "▸") : "");
      toggle.addEventListener("click", () => { open.has(name(r)) ? open.delete(name(r)) : open.add(name(r)); fill(); });
      const parent = parentOf(r);
      const short = depth && name(r).startsWith(`${parent}.`) ? name(r).slice(parent.length + 1) : name(r);
      out.push(el("tr", {}, el("td", { class: "name", title: name(r), style: `padding-left:${10 + depth * 16}px` }, toggle, short),
        typed ? el("td", { class: "text" }, r.type || "") : null, el("td", {}, String(r.calls ?? "-")),
        el("td", {}, r.host_total_us === undefined ? "-" : ms(r.host_total_us)),
        onDevice ? el("td", {}, r.device_total_us === undefined || r.device_total_us === null ? "-" : ms(r.device_total_us)) : null));
      if (open.has(name(r))) for (const kid of kids) walk(kid, depth + 1);
    };
    for (const r of roots) walk(r, 0);
    body.replaceChildren(...out);
  };
  fill();
  view.replaceChildren(el("p", { class: "muted" }, "Modules by qualified name; ▸ unfolds a module's children."),
    el("table", { id: "modules", class: "tree" }, el("thead", {}, el("tr", {},
      ...["module", typed ? "type" : null, "calls", "host ms", onDevice ? "device ms" : null].filter(Boolean)
        .map((h, i) => el("th", { class: i ? (h === "type" ? "text" : "") : "name" }, h)))), body));
}
