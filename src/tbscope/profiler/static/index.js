// The Profile tab: everything is drawn here, from this plugin's own JSON routes. No library, no
// request to any other origin (except "Open in Perfetto", on the user's click).

import { cssVar, followTheme, themeListeners } from "./theme.js";

const CATEGORIES = ["kernel", "memcpy", "memset", "communication", "runtime", "dataloader", "cpu_exec", "other"];
const COLORS = {
  kernel: "#1f77b4", memcpy: "#ff7f0e", memset: "#bcbd22", communication: "#d62728",
  runtime: "#9467bd", dataloader: "#8c564b", cpu_exec: "#2ca02c", other: "#a0a0a0",
};
// Timeline events are coloured by name, from this palette: mid tones that dark text reads on, on a
// light or a dark page alike.
const PALETTE = ["#8fb8de", "#f2b880", "#9ed69e", "#e8a0a0", "#c3aee0", "#c9a89c", "#eeb5da", "#c4c4c4",
  "#d7d77f", "#86d3dd", "#a6c8a0", "#e0c27c"];
const STYLE = `
  :root { --fg: #212121; --muted: #616161; --bg: #ffffff; --panel: #fafafa; --line: #e0e0e0; --grid: #eeeeee;
    --accent: #f57c00; --advice: #fff3e0; --error: #c62828; --lane: #f5f5f5; --link: #1565c0; --select: #000000; }
  :root.dark { --fg: #e8e8e8; --muted: #a8a8a8; --bg: #303030; --panel: #3a3a3a; --line: #555555; --grid: #444444;
    --accent: #ff9800; --advice: #4a3b28; --error: #ef9a9a; --lane: #383838; --link: #90caf9; --select: #ffffff; }
  html, body { background: var(--bg); color: var(--fg); }
  body { font-family: Roboto, sans-serif; font-size: 13px; margin: 16px; }
  select, button, input { font: inherit; margin-right: 8px; color: var(--fg); background: var(--panel);
    border: 1px solid var(--line); border-radius: 3px; padding: 2px 6px; }
  a, .link { color: var(--link); cursor: pointer; text-decoration: underline; background: none; border: none; padding: 0; margin: 0; }
  .tabs { border-bottom: 1px solid var(--line); margin: 10px 0 12px; }
  .tabs button { border: none; background: none; padding: 6px 12px; cursor: pointer; }
  .tabs button.on { border-bottom: 2px solid var(--accent); font-weight: 500; }
  h3 { font-size: 15px; font-weight: 500; margin: 12px 0 6px; }
  h4 { font-size: 13px; font-weight: 500; margin: 14px 0 4px; }
  .muted { color: var(--muted); }
  table { border-collapse: collapse; margin-top: 8px; }
  th, td { padding: 3px 10px; border-bottom: 1px solid var(--line); text-align: right; white-space: nowrap; }
  th { cursor: pointer; user-select: none; background: var(--panel); font-weight: 500; }
  td.name, th.name, td.text, th.text { text-align: left; max-width: 560px; overflow: hidden; text-overflow: ellipsis; }
  th.stack { text-align: left; }
  td.stack { text-align: left; max-width: 420px; overflow: hidden; text-overflow: ellipsis; font-family: monospace; font-size: 12px; }
  .advice { background: var(--advice); border-left: 3px solid var(--accent); padding: 6px 10px; margin: 6px 0; }
  .legend { margin: 4px 0; }
  .legend span { display: inline-block; margin-right: 14px; }
  .legend i { display: inline-block; width: 10px; height: 10px; margin-right: 4px; vertical-align: -1px; }
  .error { color: var(--error); }
  .cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 8px 0; }
  .card { border: 1px solid var(--line); background: var(--panel); border-radius: 4px; padding: 8px 12px; min-width: 220px; }
  .card dl { display: grid; grid-template-columns: auto auto; gap: 2px 14px; margin: 4px 0 0; }
  .card dt { color: var(--muted); } .card dd { margin: 0; text-align: right; }
  svg text { fill: var(--fg); font-size: 11px; }
  svg .axis line, svg .axis path { stroke: var(--muted); }
  svg .grid { stroke: var(--grid); }
  svg .marker { stroke: var(--muted); stroke-dasharray: 3 3; }
  svg text.step-marker { fill: var(--muted); }
  svg text.readout { font-size: 12px; paint-order: stroke; stroke: var(--bg); stroke-width: 3px; }
  .toolbar .side { width: 56px; }
  .toolbar { display: flex; align-items: center; gap: 8px; margin: 6px 0; flex-wrap: wrap; }
  .timeline { position: relative; border: 1px solid var(--line); }
  .timeline canvas { display: block; cursor: grab; }
  .lanes { position: absolute; left: 0; top: 0; width: 170px; pointer-events: none; }
  .lanes div { position: absolute; left: 6px; width: 160px; font-size: 12px; white-space: nowrap; overflow: hidden;
    text-overflow: ellipsis; color: var(--fg); }
  .tip { position: absolute; display: none; max-width: 320px; background: var(--panel); color: var(--fg); border: 1px solid var(--line);
    padding: 3px 6px; font-size: 12px; pointer-events: none; word-break: break-all; box-shadow: 0 1px 3px rgba(0,0,0,0.3); }
  #event-details { margin-top: 10px; border: 1px solid var(--line); background: var(--panel); padding: 8px 12px; min-height: 40px; }
  #event-details .title { font-weight: 500; word-break: break-all; }
  #event-details table td { text-align: left; }
  .bars { margin-top: 8px; }
  .split { display: flex; gap: 24px; flex-wrap: wrap; align-items: flex-start; }
  .tree td.name { font-family: monospace; font-size: 12px; }
  .tree .toggle { cursor: pointer; display: inline-block; width: 14px; }
`;

const route = (name, params) => {
  const url = new URL(`./${name}`, import.meta.url);
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, value);
  }
  return url;
};

async function get(name, params) {
  const response = await fetch(route(name, params));
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

const SVG_TAGS = new Set(["svg", "rect", "text", "g", "line", "polyline", "path", "title"]);

function element(tag, attributes = {}, ...children) {
  const node = SVG_TAGS.has(tag) ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value !== undefined && value !== null) node.setAttribute(key, value);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

// -- numbers as a user reads them --

const ms = (us) => (us / 1000).toFixed(us < 10000 ? 3 : 1);
const pct = (v) => (v === null || v === undefined ? "-" : `${(100 * v).toFixed(1)}%`);

function duration(us) {
  if (us === 0) return "0";
  const a = Math.abs(us);
  if (a >= 1e6) return `${(us / 1e6).toPrecision(3)} s`;
  if (a >= 1e3) return `${(us / 1e3).toPrecision(3)} ms`;
  return `${us.toPrecision(3)} µs`;
}

// One unit for a whole axis: the one its largest value reads best in.
function timeUnit(us) {
  const a = Math.abs(us);
  return a >= 1e6 ? [1e6, "s"] : a >= 1e3 ? [1e3, "ms"] : [1, "µs"];
}

function byteUnit(bytes) {
  const a = Math.abs(bytes);
  return a >= 1e9 ? [1e9, "GB"] : a >= 1e6 ? [1e6, "MB"] : a >= 1e3 ? [1e3, "KB"] : [1, "B"];
}

function bytes(value) {
  const [scale, unit] = byteUnit(value);
  return `${(value / scale).toFixed(scale === 1 ? 0 : value / scale < 10 ? 2 : 1)} ${unit}`;
}

// Round tick values (1, 2 or 5 times a power of ten) covering [lo, hi], about `count` of them.
function ticks(lo, hi, count = 5) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) || raw;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return out;
}

// Ticks from 0 up to a round value at or above `top`: a chart's highest point never sits above its last tick.
function upTo(top, count = 5) {
  const out = ticks(0, top, count);
  const step = out.length > 1 ? out[1] - out[0] : top || 1;
  while (out[out.length - 1] < top) out.push(out[out.length - 1] + step);
  return out;
}

const tickLabel = (value, scale) => {
  const v = value / scale;
  return Number.isInteger(Math.round(v * 1000) / 1000) ? String(Math.round(v)) : String(parseFloat(v.toPrecision(4)));
};


// -- charts (SVG) --

// A vertical bar chart of stacked segments, with y ticks in a fitting time unit.
function stepChart(overview) {
  const steps = overview.steps;
  const plot = Math.max(360, steps.length * 56), height = 220, left = 64, bottom = 40, top = 10;
  const longest = Math.max(...steps.map((s) => s.duration_us), 1);
  const yTicks = upTo(longest, 5);
  const yMax = yTicks[yTicks.length - 1];
  const [scale, unit] = timeUnit(yMax);
  const y = (us) => top + height - (us / yMax) * height;
  const svg = element("svg", { id: "step-chart", width: plot + left + 10, height: top + height + bottom });
  const axis = element("g", { class: "axis" });
  for (const t of yTicks) {
    svg.append(element("line", { class: "grid", x1: left, x2: left + plot, y1: y(t), y2: y(t) }));
    axis.append(element("line", { x1: left - 4, x2: left, y1: y(t), y2: y(t) }));
    axis.append(element("text", { class: "tick", x: left - 6, y: y(t) + 4, "text-anchor": "end" }, tickLabel(t, scale)));
  }
  axis.append(element("text", { x: 12, y: top + height / 2, transform: `rotate(-90 12 ${top + height / 2})`, "text-anchor": "middle" }, `step time (${unit})`));
  axis.append(element("line", { x1: left, x2: left + plot, y1: y(0), y2: y(0) }));
  axis.append(element("line", { x1: left, x2: left, y1: top, y2: y(0) }));
  const bar = Math.min(40, (plot / Math.max(steps.length, 1)) * 0.7);
  steps.forEach((step, i) => {
    const x = left + (i + 0.5) * (plot / steps.length) - bar / 2;
    let stacked = 0;
    const label = stepLabel(step);
    for (const category of CATEGORIES) {
      const us = step.breakdown_us[category];
      const rect = element("rect", {
        class: "segment", x, y: y(stacked + us), width: bar, height: Math.max(y(stacked) - y(stacked + us), 0), fill: COLORS[category],
        "data-step": step.step, "data-category": category, "data-us": us,
      });
      rect.append(element("title", {}, `step ${label} ${category}: ${ms(us)} ms`));
      svg.append(rect);
      stacked += us;
    }
    axis.append(element("text", { class: "step-label", x: x + bar / 2, y: y(0) + 16, "text-anchor": "middle" }, label));
  });
  const known = steps.some((s) => s.training_step !== null && s.training_step !== undefined);
  axis.append(element("text", { x: left + plot / 2, y: y(0) + 34, "text-anchor": "middle" },
    known ? "training step" : "profiler step (ProfilerStep#)"));
  svg.append(axis);
  return svg;
}

// The training loop's own step number when the trace knows it, else the profiler's.
const stepLabel = (step) => String(step.training_step ?? step.step);

// A long C++ kernel name as a label: no "void ", no template or argument lists (the tooltip has them).
function shortName(name, room = 48) {
  if (name.length <= room) return name;
  let short = name.replace(/^void /, "");
  let depth = 0, out = "";
  for (const c of short) {
    if (c === "<" || c === "(") { if (depth++ === 0) out += c === "<" ? "<…>" : "(…)"; continue; }
    if (c === ">" || c === ")") { depth = Math.max(depth - 1, 0); continue; }
    if (depth === 0) out += c;
  }
  short = out.replace(/\(…\)$/, "");
  return short.length > room ? `${short.slice(0, room - 1)}…` : short;
}

// Horizontal bars: the top rows of a table by one column.
function barChart(id, rows, value, label, format) {
  const shown = rows.filter((r) => r[value] > 0).slice(0, 10);
  const width = 420, row = 20, left = 300;
  const most = Math.max(...shown.map((r) => r[value]), 1);
  const svg = element("svg", { id, class: "bars", width: left + width + 80, height: shown.length * row + 26 });
  shown.forEach((r, i) => {
    const name = label(r);
    const text = element("text", { x: left - 6, y: i * row + 14, "text-anchor": "end" }, shortName(name));
    text.append(element("title", {}, name));
    const w = (r[value] / most) * width;
    svg.append(text, element("rect", { x: left, y: i * row + 3, width: Math.max(w, 1), height: row - 6, fill: COLORS.kernel }),
      element("text", { x: left + w + 4, y: i * row + 14 }, format(r[value])));
  });
  if (!shown.length) svg.append(element("text", { x: 0, y: 14 }, "nothing to chart"));
  return svg;
}

function sortableTable(id, columns, rows, options = {}) {
  const table = element("table", { id });
  const head = element("tr");
  const body = element("tbody");
  let sortKey = null, ascending = false;
  const cellClass = (key) => (key === "name" ? "name" : key === "call_stack" ? "stack" : options.text && options.text.includes(key) ? "text" : "");
  const fill = () => {
    body.replaceChildren(...rows.slice(0, options.limit || rows.length).map((row) => {
      const tr = element("tr", {}, ...columns.map(([key, , format, title]) => {
        const value = row[key];
        const shown = value === null || value === undefined ? "-" : format ? format(value, row) : String(value);
        const cell = element("td", { class: cellClass(key), title: title ? title(value, row) : String(value ?? "") });
        cell.append(shown);
        return cell;
      }));
      if (options.onRow) {
        tr.style.cursor = "pointer";
        tr.addEventListener("click", () => options.onRow(row));
      }
      return tr;
    }));
  };
  for (const [key, label] of columns) {
    const th = element("th", { class: cellClass(key), "data-key": key }, label);
    th.addEventListener("click", () => {
      ascending = sortKey === key ? !ascending : typeof rows[0]?.[key] === "string";
      sortKey = key;
      rows.sort((a, b) => ((a[key] ?? -Infinity) > (b[key] ?? -Infinity) ? 1 : (a[key] ?? -Infinity) < (b[key] ?? -Infinity) ? -1 : 0) * (ascending ? 1 : -1));
      fill();
    });
    head.append(th);
  }
  table.append(element("thead", {}, head), body);
  fill();
  return table;
}

// A search box above any number of tables: rows whose name holds the text stay.
function searchBox(id, placeholder, onChange) {
  const input = element("input", { id, type: "search", placeholder, size: 40 });
  input.addEventListener("input", () => onChange(input.value.trim().toLowerCase()));
  return input;
}

// -- "called from": the innermost frame of the user's own code, file:line --

function frames(stack) {
  if (!stack) return [];
  const list = Array.isArray(stack) ? stack : String(stack).split(" <- ");
  return list.map((f) => String(f).trim()).filter((f) => f && !/^0x[0-9a-f]+$/i.test(f));
}

function frameText(frame) {
  // torch writes "path/to/file.py(42): function", and "<built-in method conv2d of type object at 0x7f...>"
  const builtin = /^<built-in (?:method|function) (\S+)/.exec(frame);
  if (builtin) return `${builtin[1]} (built-in)`;
  const match = /^(.*)\((\d+)\):\s*(.*)$/.exec(frame);
  if (!match) return frame.replace(/ at 0x[0-9a-f]+/gi, "");
  const file = match[1].split("/").slice(-2).join("/");
  return `${file}:${match[2]} ${match[3]}`;
}

// The innermost frame of the user's own code; else the innermost Python frame of a library.
function calledFrom(stack) {
  const python = frames(stack).filter((f) => /\.py\(\d+\)/.test(f));
  const library = /(^|\/)(torch|site-packages|dist-packages|lightning|pytorch_lightning)\//;
  const own = python.find((f) => !library.test(f)) || python[0];
  return own ? frameText(own) : "-";
}

const stackTitle = (stack) => frames(stack).map(frameText).join("\n");

// -- views --

const span = element("select", { id: "span" }, element("option", { value: "" }, "all steps"));
let showView = null; // set by render(): switch to a view, optionally with a search filled in

function recommendation(item) {
  if (typeof item === "string") return element("div", { class: "advice" }, item);
  const box = element("div", { class: "advice" }, item.text);
  if (item.figure && item.figure.name) {
    const { name, value, unit } = item.figure;
    const shown = unit === "share" ? pct(value) : unit === "count" ? String(Math.round(value)) : `${value}${unit ? ` ${unit}` : ""}`;
    box.append(element("span", { class: "muted figure" }, ` (${name}: ${shown})`));
  }
  const links = (item.events || []).map((e) => {
    const link = element("button", { class: "link", title: `show ${e.name} in ${e.view}` }, shortName(e.name, 60));
    link.addEventListener("click", () => showView(e.view === "kernels" ? "Kernels" : "Operators", e.name));
    return link;
  });
  if (links.length) {
    const line = element("div", {}, "Based on: ");
    links.forEach((link, i) => line.append(...(i ? [", ", link] : [link])));
    box.append(line);
  }
  return box;
}

const IDLE_RULE = "The share of time between the device's first and last kernel, memcpy or memset with none running, "
  + "as Holistic Trace Analysis's temporal breakdown counts it: device work counts by when it was launched, up to the "
  + "start of the last ProfilerStep. Unlike HTA, only what ran on the device counts (HTA also counts host events that "
  + "carry a stream field, such as a Triton kernel's launch operator, 95 us for a kernel that runs 1.76 us), and "
  + "each event keeps its sub-microsecond ends (HTA shrinks each to the whole microseconds inside it, which opens gaps "
  + "between back-to-back kernels: on traces with fractional timestamps it reads up to a percentage point higher).";

function card(title, pairs) {
  const list = element("dl");
  for (const [label, value] of pairs) list.append(element("dt", {}, label), element("dd", {}, value ?? "-"));
  return element("div", { class: "card" }, element("h4", {}, title), list);
}

async function showOverview(view, run, worker) {
  const overview = await get("overview", { run, worker });
  const totals = Object.fromEntries(CATEGORIES.map((c) => [c, 0]));
  let all = 0;
  for (const step of overview.steps) {
    all += step.duration_us;
    for (const c of CATEGORIES) totals[c] += step.breakdown_us[c];
  }
  const n = Math.max(overview.steps.length, 1);
  const legend = element("div", { class: "legend" }, ...CATEGORIES.map((c) =>
    element("span", {}, element("i", { style: `background:${COLORS[c]}` }), c)));
  const config = overview.configuration || {};
  const stepsShown = overview.steps.map(stepLabel);
  const configuration = card("Run", [
    ["worker", config.worker || overview.worker],
    ...(config.torch_version ? [["torch", config.torch_version]] : []),
    ["distributed", !config.distributed ? "no" : typeof config.distributed !== "object" ? String(config.distributed)
      : Object.entries(config.distributed).filter(([, v]) => typeof v !== "object").map(([k, v]) => `${k} ${v}`).join(", ")],
    ["steps", stepsShown.length ? `${stepsShown.length} (${stepsShown[0]}${stepsShown.length > 1 ? `–${stepsShown[stepsShown.length - 1]}` : ""})` : "0"],
    ["average step", `${ms(all / n)} ms`],
    // Holistic Trace Analysis's figure, by its rule; where tbscope reads the trace otherwise, the tooltip says so.
    ...(overview.gpu_idle_share === null || overview.gpu_idle_share === undefined ? []
      : [["GPU idle (as HTA counts it)", element("span", { id: "gpu-idle", title: IDLE_RULE }, pct(overview.gpu_idle_share))]]),
    ["trace", String(overview.file || worker).split("/").pop()],
  ]);
  const gpus = overview.gpus || overview.devices || [];
  const share = (v) => (v === null || v === undefined ? "-" : pct(v));
  // A trace lists every GPU of its machine: those with kernels in it get a card, the others one line.
  const perDevice = gpus.some((g) => "sm_efficiency" in g);
  const busy = (g) => !perDevice || ["sm_efficiency", "achieved_occupancy", "tensor_core_share", "peak_allocated_bytes"]
    .some((k) => g[k] !== null && g[k] !== undefined);
  const active = gpus.filter(busy), idle = gpus.filter((g) => !busy(g));
  const figure = (g, key) => (perDevice ? g[key] : overview[key]);
  const gpuCards = active.map((g) => card(`GPU ${g.id ?? ""} ${g.name || ""}`.trim(), [
    ...(active.length === 1 ? [["utilization", pct(overview.gpu_utilization)]] : []),
    ["SM efficiency", share(figure(g, "sm_efficiency"))],
    ["achieved occupancy", (() => { const v = figure(g, "achieved_occupancy"); return v === null || v === undefined ? "-" : `${v.toFixed(1)}%`; })()],
    ["tensor-core share", share(figure(g, "tensor_core_share"))],
    ["peak allocated", g.peak_allocated_bytes ? bytes(g.peak_allocated_bytes) : "-"],
    ["peak reserved", g.peak_reserved_bytes ? bytes(g.peak_reserved_bytes) : overview.memory_peak_share !== null && overview.memory_peak_share !== undefined ? `${pct(overview.memory_peak_share)} of capacity` : "-"],
    ["memory", g.memory_gib ? `${g.memory_gib} GiB` : g.memory_bytes ? bytes(g.memory_bytes) : "-"],
    ["SMs · compute capability", `${g.sms ?? "-"} · ${g.compute_capability ?? "-"}`],
  ]));
  if (idle.length) {
    const names = [...new Set(idle.map((g) => g.name).filter(Boolean))].join(", ");
    gpuCards.push(card(`${idle.length} more GPU${idle.length > 1 ? "s" : ""}`, [
      [`GPU ${idle.map((g) => g.id).join(", ")}`, `no kernels in this trace${names ? ` (${names})` : ""}`]]));
  }
  if (!gpuCards.length) gpuCards.push(card("GPU", [["device", "none in this trace (CPU only)"]]));

  view.replaceChildren(
    element("div", { class: "cards", id: "summary" }, configuration, ...gpuCards),
    element("h3", {}, `Step time · ${overview.steps.length} steps · average ${ms(all / n)} ms`),
    stepChart(overview), legend,
    sortableTable("averages", [["name", "category"], ["ms", "average ms", ms], ["share", "share", (v) => `${(100 * v).toFixed(1)}%`]],
      CATEGORIES.map((c) => ({ name: c, ms: totals[c] / n, share: all ? totals[c] / all : 0 }))),
    element("h3", {}, "Recommendations"),
    ...(overview.recommendations.length ? overview.recommendations.map(recommendation) : [element("p", { class: "muted" }, "Nothing stands out.")]),
    ...overview.notes.map((text) => element("div", { class: "error" }, text)),
  );
}

const opColumns = [["name", "operator"], ["input_shapes", "input shapes"], ["calls", "calls"],
  ["device_self_us", "device self ms", ms], ["device_total_us", "device total ms", ms],
  ["host_self_us", "host self ms", ms], ["host_total_us", "host total ms", ms],
  ["call_stack", "called from", (v, row) => row.called_from || calledFrom(v), (v) => stackTitle(v)]];

async function showOperators(view, run, worker, search = "") {
  const byShapes = element("input", { type: "checkbox", id: "by-shapes" });
  const holder = element("div");
  const query = searchBox("operator-search", "search operators", () => fill());
  query.value = search;
  let rows = [];
  const fill = () => {
    if (!rows.length) {
      holder.replaceChildren(element("p", { id: "operators-empty" }, "No operators in this trace (or this step): torch records them with the CPU activity."));
      return;
    }
    const text = query.value.trim().toLowerCase();
    const shown = rows.filter((r) => !text || r.name.toLowerCase().includes(text));
    const device = rows.some((r) => r.device_self_us > 0);
    const key = device ? "device_self_us" : "host_self_us";
    const stacks = rows.some((r) => (Array.isArray(r.call_stack) ? r.call_stack.length : r.call_stack));
    holder.replaceChildren(
      element("h4", {}, `Top operators by ${device ? "device" : "host"} self time`),
      barChart("operator-bars", [...shown].sort((a, b) => b[key] - a[key]), key,
        (r) => (r.input_shapes ? `${r.name} ${r.input_shapes}` : r.name), (v) => `${ms(v)} ms`),
      element("p", { class: "muted" }, `${shown.length} of ${rows.length} rows`),
      sortableTable("operators", opColumns.filter(([k]) => (k !== "input_shapes" || byShapes.checked) && (k !== "call_stack" || stacks)), shown),
    );
  };
  const draw = async () => {
    rows = await get("operators", { run, worker, step: span.value, group_by: byShapes.checked ? "shapes" : "name" });
    fill();
  };
  byShapes.addEventListener("change", draw);
  view.replaceChildren(element("div", { class: "toolbar" }, query, element("label", {}, byShapes, " group by input shapes")), holder);
  await draw();
}

async function showKernels(view, run, worker, search = "") {
  const byOperator = element("input", { type: "checkbox", id: "by-operator" });
  const holder = element("div");
  const query = searchBox("kernel-search", "search kernels or operators", () => fill());
  query.value = search;
  let rows = [];
  const num = (digits) => (v) => v.toFixed(digits);
  const fill = () => {
    if (!rows.length) {
      holder.replaceChildren(element("p", { id: "kernels-empty" }, "No kernels in this trace: it was recorded without GPU activity (CUDA or ROCm)."));
      return;
    }
    const text = query.value.trim().toLowerCase();
    const shown = rows.filter((r) => !text || r.name.toLowerCase().includes(text) || (r.operator || "").toLowerCase().includes(text));
    const columns = [["operator", "operator"], ["name", "kernel"], ["calls", "calls"], ["total_us", "total ms", ms],
      ["mean_us", "mean µs", num(1)], ["min_us", "min µs", num(1)], ["max_us", "max µs", num(1)],
      ["blocks_per_sm", "blocks/SM", num(2)], ["occupancy_pct", "occupancy", (v) => `${v.toFixed(1)}%`],
      ["tensor_cores", "tensor cores", (v) => (v ? "yes" : "no")]];
    holder.replaceChildren(
      element("h4", {}, "Top kernels by total time"),
      barChart("kernel-bars", [...shown].sort((a, b) => b.total_us - a.total_us), "total_us",
        (r) => (r.operator ? `${r.operator} › ${r.name}` : r.name), (v) => `${ms(v)} ms`),
      element("p", { class: "muted" }, `${shown.length} of ${rows.length} rows`),
      sortableTable("kernels", columns.filter(([k]) => k !== "operator" || byOperator.checked), shown, { text: ["operator"] }),
    );
  };
  const draw = async () => {
    rows = await get("kernels", { run, worker, step: span.value, group_by: byOperator.checked ? "operator" : "" });
    if (byOperator.checked && rows.length && !("operator" in rows[0])) {
      holder.replaceChildren(element("p", { class: "error" }, "This server cannot group kernels by operator."));
      return;
    }
    fill();
  };
  byOperator.addEventListener("change", draw);
  view.replaceChildren(element("div", { class: "toolbar" }, query, element("label", {}, byOperator, " group by operator")), holder);
  await draw();
}

// -- Memory: step-shaped curves with ticks in fitting units, step markers, drag to zoom --

function memoryChart(id, curve, steps, onZoom, windowUs) {
  const width = 900, height = 240, left = 70, top = 12, bottom = 44, right = 20;
  const t0 = windowUs ? windowUs[0] : curve.length ? curve[0][0] : 0;
  const t1 = windowUs ? windowUs[1] : curve.length ? curve[curve.length - 1][0] : 1;
  const inView = curve.filter((p) => p[0] >= t0 && p[0] <= t1);
  const most = Math.max(1, ...inView.flatMap((p) => [p[1], p[2]]));
  const yTicks = upTo(most, 5);
  const yMax = yTicks[yTicks.length - 1];
  const [bScale, bUnit] = byteUnit(yMax);
  const xTicks = ticks(0, t1 - t0, 8).map((t) => t + t0);
  const [tScale, tUnit] = timeUnit(t1 - t0 || 1);
  const x = (t) => left + ((t - t0) / (t1 - t0 || 1)) * width;
  const y = (v) => top + height - (v / yMax) * height;
  const svg = element("svg", { id, width: left + width + right, height: top + height + bottom });
  const axis = element("g", { class: "axis" });
  for (const v of yTicks) {
    svg.append(element("line", { class: "grid", x1: left, x2: left + width, y1: y(v), y2: y(v) }));
    axis.append(element("text", { class: "tick y", x: left - 6, y: y(v) + 4, "text-anchor": "end" }, `${tickLabel(v, bScale)} ${bUnit}`));
  }
  for (const t of xTicks) {
    axis.append(element("line", { x1: x(t), x2: x(t), y1: y(0), y2: y(0) + 4 }));
    axis.append(element("text", { class: "tick x", x: x(t), y: y(0) + 16, "text-anchor": "middle" }, tickLabel(t - t0, tScale)));
  }
  axis.append(element("text", { x: left + width / 2, y: y(0) + 34, "text-anchor": "middle" },
    `time (${tUnit}) from ${duration(t0)} into the trace`));
  axis.append(element("line", { x1: left, x2: left + width, y1: y(0), y2: y(0) }), element("line", { x1: left, x2: left, y1: top, y2: y(0) }));
  for (const s of steps) {
    // Memory events are on the host's clock: a step is marked where the host ran it (its ProfilerStep
    // annotation), not where its device work ended, which may be steps later when the host runs ahead.
    const start = s.host_start_us ?? s.start_us, end = s.host_end_us ?? s.end_us;
    if (start === undefined || start > t1 || end < t0) continue;
    // A step already under way where the chart starts is named at its left edge, without a line.
    if (start >= t0) svg.append(element("line", { class: "marker", x1: x(start), x2: x(start), y1: top, y2: y(0) }));
    svg.append(element("text", { class: "step-marker", x: x(Math.max(start, t0)) + 3, y: top + 10 }, `step ${stepLabel(s)}`));
  }
  // Step-shaped: a value holds until the next event changes it.
  for (const [index, color, label] of [[2, "#ff7f0e", "reserved"], [1, "#1f77b4", "allocated"]]) {
    let d = "";
    let previous = null;
    for (const p of curve) {
      if (p[0] < t0) { previous = p; continue; }
      if (p[0] > t1) break;
      if (!d) d = previous ? `M${x(t0)},${y(previous[index])}H${x(p[0])}V${y(p[index])}` : `M${x(p[0])},${y(p[index])}`;
      else d += `H${x(p[0])}V${y(p[index])}`;
      previous = p;
    }
    if (previous) d += d ? `H${x(t1)}` : `M${x(t0)},${y(previous[index])}H${x(t1)}`;
    svg.append(element("path", { d, fill: "none", stroke: color, "stroke-width": 1.5, "data-series": label }));
  }
  svg.append(axis);
  // Drag across the chart to zoom into that span.
  const band = element("rect", { x: 0, y: top, width: 0, height, fill: "rgba(128,128,128,0.25)", visibility: "hidden" });
  svg.append(band);
  let from = null;
  const at = (event) => event.clientX - svg.getBoundingClientRect().left;
  svg.addEventListener("mousedown", (event) => { from = at(event); band.setAttribute("visibility", "visible"); });
  // Hovering reads both curves at the pointer's time: the values hold from one event to the next.
  const cursor = element("line", { class: "marker", y1: top, y2: y(0), visibility: "hidden" });
  const readout = element("text", { class: "readout", y: top + 24, visibility: "hidden" });
  svg.append(cursor, readout);
  svg.addEventListener("mouseleave", () => { cursor.setAttribute("visibility", "hidden"); readout.setAttribute("visibility", "hidden"); });
  svg.addEventListener("mousemove", (event) => {
    const px = at(event);
    if (from === null && px >= left && px <= left + width && curve.length) {
      const t = t0 + ((px - left) / width) * (t1 - t0);
      let lo = 0, hi = curve.length - 1;
      while (lo < hi) { const mid = (lo + hi + 1) >> 1; if (curve[mid][0] <= t) lo = mid; else hi = mid - 1; }
      const p = curve[lo];
      cursor.setAttribute("x1", px); cursor.setAttribute("x2", px); cursor.setAttribute("visibility", "visible");
      readout.textContent = `${duration(t - t0)}: allocated ${bytes(p[1])}, reserved ${bytes(p[2])}`;
      readout.setAttribute("x", px > left + width / 2 ? px - 6 : px + 6);
      readout.setAttribute("text-anchor", px > left + width / 2 ? "end" : "start");
      readout.setAttribute("visibility", "visible");
    }
    if (from === null) return;
    const to = at(event);
    band.setAttribute("x", Math.min(from, to));
    band.setAttribute("width", Math.abs(to - from));
  });
  svg.addEventListener("mouseup", (event) => {
    if (from === null) return;
    const to = at(event);
    band.setAttribute("visibility", "hidden");
    const [a, b] = [Math.min(from, to), Math.max(from, to)].map((px) => t0 + ((px - left) / width) * (t1 - t0));
    const wide = Math.abs(to - from) > 4;
    from = null;
    if (wide) onZoom([Math.max(a, t0), Math.min(b, t1)]);
  });
  return svg;
}

async function showMemory(view, run, worker) {
  const [data, overview] = await Promise.all([
    get("memory", { run, worker, step: span.value }),
    get("overview", { run, worker }).catch(() => ({ steps: [] })),
  ]);
  const charts = element("div");
  let zoom = null;
  const drawCharts = () => {
    const parts = [];
    // GPUs first; every chart over the same span, so that their time axes line up.
    const devices = Object.entries(data.devices).sort(([a], [b]) => (a === "cpu") - (b === "cpu") || a.localeCompare(b));
    for (const [device, d] of devices) {
      const capacity = d.capacity ? ` of ${bytes(d.capacity)}` : "";
      parts.push(element("h3", {}, `${device}: peak allocated ${bytes(d.peak_allocated)}, peak reserved ${bytes(d.peak_reserved)}${capacity}`));
      parts.push(memoryChart(`memory-${device.replace(/[^a-z0-9]/gi, "-")}`, d.curve, overview.steps, (w) => { zoom = w; drawCharts(); }, zoom || data.window_us));
    }
    const reset = element("button", { id: "memory-reset" }, "Reset zoom");
    reset.addEventListener("click", () => { zoom = null; drawCharts(); });
    const legend = element("div", { class: "legend", id: "memory-legend" },
      element("span", {}, element("i", { style: "background:#1f77b4" }), "allocated (tensors in use)"),
      element("span", {}, element("i", { style: "background:#ff7f0e" }), "reserved (held by the caching allocator)"));
    charts.replaceChildren(...(parts.length ? [element("div", { class: "toolbar" }, legend, reset,
      element("span", { class: "muted" }, "drag across a chart to zoom")), ...parts]
      : [element("p", {}, "No memory events in this trace: profile with profile_memory=True (tbscope.profile records them by default).")]));
  };
  drawCharts();
  const windowUs = data.window_us;
  const over = span.value ? `step ${span.selectedOptions[0].textContent.replace("step ", "")}`
    : windowUs ? `the whole trace (${duration(windowUs[1] - windowUs[0])})` : "the whole trace";
  const parts = [charts,
    element("h3", {}, "Allocations by operator"),
    element("p", { class: "muted", id: "allocations-span" }, `Bytes allocated by each operator, summed over ${over}; frees are not subtracted.`),
    sortableTable("allocators", [["name", "operator"], ["allocated_bytes", "allocated", bytes], ["allocations", "allocations"]], data.top_operators),
  ];
  if (data.never_freed) {
    parts.push(element("h3", {}, "Never freed in the window"),
      element("p", { class: "muted" }, `Allocations with no free before ${span.value ? "the step" : "the trace"} ends, largest first: a leak's suspects (or tensors kept across steps on purpose).`),
      data.never_freed.length
        ? sortableTable("never-freed", [["name", "operator"], ["bytes", "size", bytes], ["time_us", "allocated at", (v) => duration(v)], ["device", "device"]],
          data.never_freed.map((r) => ({ ...r, name: r.name || r.operator })))
        : element("p", {}, "Every allocation in the window was freed."));
  }
  view.replaceChildren(...parts);
}

// -- Timeline: a canvas of lanes, zoomed with the wheel and panned by dragging; the server down-samples --

const LABELS = 170, AXIS = 22, STEPS = 18, ROW = 17, GAP = 8;

function nameColor(name) {
  let h = 0;
  for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) | 0;
  return PALETTE[Math.abs(h) % PALETTE.length];
}

function eventColor(name, lane) {
  if (lane.kind === "stream") {
    if (/^memcpy/i.test(name)) return COLORS.memcpy;
    if (/^memset/i.test(name)) return COLORS.memset;
    if (/nccl|rccl/i.test(name)) return COLORS.communication;
    return /^ProfilerStep/.test(name) ? "#c4c4c4" : PALETTE[0];
  }
  return nameColor(name);
}

async function showTimeline(view, run, worker) {
  const first = await get("timeline", { run, worker, px: 1500 });
  const state = { data: first, a: first.span_us[0], b: first.span_us[1], selected: null, seq: 0 };
  const total = [first.span_us[0], first.span_us[1] > first.span_us[0] ? first.span_us[1] : first.span_us[0] + 1];
  if (span.value) {
    const step = first.steps.find((s) => String(s[0]) === span.value);
    if (step) [state.a, state.b] = [step[1], step[2]];
  }
  const canvas = element("canvas", { id: "timeline", role: "img", "aria-label": `Timeline of ${worker}: host threads and device streams over time` });
  const labels = element("div", { class: "lanes", id: "timeline-lanes" });
  const tip = element("div", { class: "tip", id: "timeline-tip" });
  const box = element("div", { class: "timeline" }, canvas, labels, tip);
  const details = element("div", { id: "event-details" }, element("span", { class: "muted" }, "Click an event to see its details."));
  const perfetto = element("button", { id: "perfetto", title: "Perfetto runs in another browser tab, at ui.perfetto.dev" }, "Open in Perfetto");
  perfetto.addEventListener("click", () => openInPerfetto(run, worker));
  const reset = element("button", { id: "timeline-reset" }, "Show all");
  const windowText = element("span", { class: "muted", id: "timeline-window" });
  view.replaceChildren(
    element("div", { class: "toolbar" }, reset, perfetto, windowText,
      element("span", { class: "muted" }, "wheel or W/S: zoom · drag or A/D: pan · click: details")),
    box, details);

  const layout = () => {
    let y = AXIS + STEPS;
    return state.data.lanes.map((lane) => {
      const top = y;
      y += Math.max(lane.depth, 1) * ROW + GAP;
      return { top, bottom: y - GAP };
    });
  };
  let laneBoxes = layout();
  const plotWidth = () => Math.max(200, box.clientWidth - LABELS);
  const xOf = (t) => LABELS + ((t - state.a) / (state.b - state.a)) * plotWidth();
  const tOf = (x) => state.a + ((x - LABELS) / plotWidth()) * (state.b - state.a);

  const draw = () => {
    const data = state.data;
    const width = plotWidth() + LABELS;
    const height = (laneBoxes.length ? laneBoxes[laneBoxes.length - 1].bottom : AXIS + STEPS) + GAP;
    const ratio = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
      canvas.style.width = `${width}px`;
      canvas.style.height = `${height}px`;
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    const fg = cssVar("--fg"), muted = cssVar("--muted"), bg = cssVar("--bg"), laneBg = cssVar("--lane"), grid = cssVar("--grid");
    ctx.fillStyle = bg;
    ctx.fillRect(0, 0, width, height);
    ctx.font = "11px Roboto, sans-serif";
    laneBoxes.forEach((l, i) => {
      if (i % 2 === 0) {
        ctx.fillStyle = laneBg;
        ctx.fillRect(0, l.top - GAP / 2, width, l.bottom - l.top + GAP);
      }
    });
    // Time axis: offsets from the trace's start, in the unit the tick spacing reads best in.
    const tickValues = ticks(state.a, state.b, Math.max(2, Math.floor(plotWidth() / 110)));
    const [scale, unit] = timeUnit(tickValues.length > 1 ? tickValues[1] - tickValues[0] : state.b - state.a);
    ctx.textAlign = "center";
    for (const t of tickValues) {
      const x = xOf(t);
      ctx.strokeStyle = grid;
      ctx.beginPath(); ctx.moveTo(x, AXIS); ctx.lineTo(x, height); ctx.stroke();
      ctx.fillStyle = fg;
      ctx.fillText(`${tickLabel(t - total[0], scale)} ${unit}`, x, 14);
    }
    ctx.textAlign = "left";
    ctx.fillStyle = muted;
    ctx.fillText("time from trace start", 6, 14);
    // Steps: a band under the axis, and a dashed line across every lane where each starts.
    data.steps.forEach(([, s, e, label], i) => {
      const x0 = Math.max(xOf(s), LABELS), x1 = Math.min(xOf(e), width);
      if (x1 < LABELS || x0 > width) return;
      ctx.fillStyle = i % 2 ? "#b0bec5" : "#90a4ae";
      ctx.fillRect(x0, AXIS, Math.max(x1 - x0, 1), STEPS - 3);
      if (x1 - x0 > 40) {
        ctx.fillStyle = "#102027";
        ctx.fillText(`step ${label}`, x0 + 4, AXIS + 11);
      }
      ctx.strokeStyle = muted;
      ctx.setLineDash([4, 4]);
      ctx.beginPath(); ctx.moveTo(xOf(s), AXIS); ctx.lineTo(xOf(s), height); ctx.stroke();
      ctx.setLineDash([]);
    });
    ctx.fillStyle = muted;
    ctx.fillText("steps", 6, AXIS + 11);
    // Events, clipped to the plot.
    ctx.save();
    ctx.beginPath(); ctx.rect(LABELS, 0, width - LABELS, height); ctx.clip();
    data.lanes.forEach((lane, i) => {
      const top = laneBoxes[i].top;
      for (const [s, e, depth, nameIndex, , merged] of lane.events) {
        const x0 = xOf(s), x1 = xOf(e);
        if (x1 < LABELS || x0 > width) continue;
        const name = data.names[nameIndex];
        const y = top + depth * ROW;
        const w = Math.max(x1 - x0, 1);
        ctx.globalAlpha = merged > 1 ? 0.6 : 1;
        ctx.fillStyle = eventColor(name, lane);
        ctx.fillRect(x0, y, w > 3 ? w - 1 : w, ROW - 2); // a pixel between neighbours that touch
        ctx.globalAlpha = 1;
        if (w > 36) {
          const left = Math.max(x0, LABELS) + 3, room = Math.min(x1, width) - left - 3;
          const chars = Math.floor(room / 6);
          if (chars >= 3) {
            ctx.fillStyle = "#111111";
            ctx.fillText(name.length > chars ? `${name.slice(0, chars - 1)}…` : name, left, y + 11);
          }
        }
      }
    });
    // Flows from a launch to its kernel: all when few, else the selected event's.
    const centre = (lane, depth) => laneBoxes[lane].top + depth * ROW + (ROW - 2) / 2;
    const arrow = (x0, y0, x1, y1) => {
      ctx.beginPath(); ctx.moveTo(x0, y0); ctx.lineTo(x1, y1); ctx.stroke();
      const angle = Math.atan2(y1 - y0, x1 - x0);
      ctx.beginPath(); ctx.moveTo(x1, y1);
      ctx.lineTo(x1 - 7 * Math.cos(angle - 0.4), y1 - 7 * Math.sin(angle - 0.4));
      ctx.lineTo(x1 - 7 * Math.cos(angle + 0.4), y1 - 7 * Math.sin(angle + 0.4));
      ctx.closePath(); ctx.fill();
    };
    if (data.flows.length <= 40) {
      const where = new Map();
      data.lanes.forEach((lane, i) => { for (const ev of lane.events) if (ev[5] === 1) where.set(ev[4], [i, ev[2], ev[0]]); });
      ctx.strokeStyle = ctx.fillStyle = muted;
      ctx.globalAlpha = 0.5;
      for (const [from, to] of data.flows) {
        const a = where.get(from), b = where.get(to);
        if (a && b) arrow(xOf(a[2]), centre(a[0], a[1]), xOf(b[2]), centre(b[0], b[1]));
      }
      ctx.globalAlpha = 1;
    }
    const chosen = state.selected;
    if (chosen && chosen.lane >= 0) {
      ctx.strokeStyle = cssVar("--select");
      ctx.lineWidth = 2;
      const y = laneBoxes[chosen.lane].top + chosen.depth * ROW;
      ctx.strokeRect(xOf(chosen.start_us), y - 1, Math.max(xOf(chosen.end_us) - xOf(chosen.start_us), 2), ROW);
      ctx.lineWidth = 1.5;
      ctx.strokeStyle = ctx.fillStyle = "#e65100";
      for (const other of [chosen.launches, chosen.launched_by]) {
        if (!other || other.lane < 0) continue;
        const [src, dst] = other === chosen.launches ? [chosen, other] : [other, chosen];
        arrow(xOf(src.start_us), centre(src.lane, src.depth), xOf(dst.start_us), centre(dst.lane, dst.depth));
      }
      ctx.lineWidth = 1;
    }
    ctx.restore();
    windowText.textContent = `showing ${duration(state.b - state.a)} from ${duration(state.a - total[0])}`;
  };

  const placeLabels = () => {
    labels.replaceChildren(...state.data.lanes.map((lane, i) => element("div", {
      style: `top:${laneBoxes[i].top}px`, title: lane.name, "data-lane": lane.name,
    }, lane.name)));
  };

  // Fetch what the window shows, with a window on each side to pan into, at a pixel's resolution.
  let timer = null;
  const refetch = () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const seq = ++state.seq;
      const width = state.b - state.a;
      const data = await get("timeline", { run, worker, start_us: state.a - width, end_us: state.b + width, px: plotWidth() * 3 });
      if (seq !== state.seq) return;
      state.data = data;
      laneBoxes = layout();
      placeLabels();
      draw();
    }, 120);
  };
  const needsData = () => {
    const [a, b] = state.data.window_us;
    const shown = state.b - state.a;
    return state.a < a || state.b > b || shown < (b - a) / 6 || shown > (b - a);
  };
  const setWindow = (a, b) => {
    const width = Math.min(Math.max(b - a, 0.05), (total[1] - total[0]) * 1.2);
    const lo = total[0] - (total[1] - total[0]) * 0.1, hi = total[1] + (total[1] - total[0]) * 0.1;
    a = Math.min(Math.max(a, lo), hi - width);
    [state.a, state.b] = [a, a + width];
    draw();
    if (needsData()) refetch();
  };

  canvas.addEventListener("wheel", (event) => {
    event.preventDefault();
    const x = event.offsetX;
    if (event.shiftKey || Math.abs(event.deltaX) > Math.abs(event.deltaY)) {
      const shift = ((event.deltaX || event.deltaY) / plotWidth()) * (state.b - state.a);
      setWindow(state.a + shift, state.b + shift);
      return;
    }
    const t = tOf(Math.max(x, LABELS));
    const factor = Math.exp(Math.max(-1, Math.min(1, event.deltaY * 0.002)));
    setWindow(t - (t - state.a) * factor, t + (state.b - t) * factor);
  }, { passive: false });

  let drag = null;
  canvas.addEventListener("mousedown", (event) => {
    drag = { x: event.clientX, a: state.a, b: state.b, moved: false };
    canvas.style.cursor = "grabbing";
  });
  // Hovering names the event under the pointer, its duration, and how many were merged into it.
  canvas.addEventListener("mousemove", (event) => {
    if (drag && drag.moved) { tip.style.display = "none"; return; }
    const ev = hit(event.offsetX, event.offsetY);
    if (!ev) { tip.style.display = "none"; return; }
    const name = state.data.names[ev[3]];
    tip.textContent = `${name.length > 120 ? `${name.slice(0, 119)}…` : name} · ${duration(ev[1] - ev[0])}${ev[5] > 1 ? ` · ${ev[5]} events merged` : ""}`;
    tip.style.display = "block";
    tip.style.left = `${Math.min(event.offsetX + 12, box.clientWidth - 320)}px`;
    tip.style.top = `${event.offsetY + 14}px`;
  });
  canvas.addEventListener("mouseleave", () => { tip.style.display = "none"; });
  // Listeners on the window end with the view: the first event after it is gone removes them.
  const alive = new AbortController();
  const gone = () => { if (canvas.isConnected) return false; alive.abort(); return true; };
  window.addEventListener("mousemove", (event) => {
    if (gone() || !drag) return;
    const dx = event.clientX - drag.x;
    if (Math.abs(dx) > 3) drag.moved = true;
    if (!drag.moved) return;
    const shift = (-dx / plotWidth()) * (drag.b - drag.a);
    setWindow(drag.a + shift, drag.b + shift);
  }, { signal: alive.signal });
  window.addEventListener("mouseup", (event) => {
    if (gone() || !drag) return;
    const moved = drag.moved;
    drag = null;
    canvas.style.cursor = "";
    if (!moved && event.target === canvas) select(event.offsetX, event.offsetY);
  }, { signal: alive.signal });

  const hit = (x, y) => {
    const lane = laneBoxes.findIndex((l) => y >= l.top && y < l.bottom);
    if (lane < 0 || x < LABELS) return null;
    const depth = Math.floor((y - laneBoxes[lane].top) / ROW);
    let best = null, distance = 4;
    for (const ev of state.data.lanes[lane].events) {
      if (ev[2] !== depth) continue;
      const x0 = xOf(ev[0]), x1 = Math.max(xOf(ev[1]), x0 + 1);
      const d = x < x0 ? x0 - x : x > x1 ? x - x1 : 0;
      if (d < distance || (d === 0 && best && ev[1] - ev[0] < best[1] - best[0])) [best, distance] = [ev, d];
    }
    return best;
  };

  const showDetails = async (id, merged) => {
    const event = await get("event", { run, worker, id });
    state.selected = event;
    draw();
    const rows = [["kind", event.kind], ["lane", event.lane_name ?? "-"], ["start", `${duration(event.start_us - total[0])} from trace start`],
      ["duration", duration(event.duration_us)], ["step", event.step ?? "-"]];
    for (const [key, value] of Object.entries(event.args)) rows.push([key, typeof value === "object" ? JSON.stringify(value) : String(value)]);
    const table = element("table", { id: "event-args" }, ...rows.map(([k, v]) => element("tr", {}, element("td", { class: "muted" }, k), element("td", {}, String(v)))));
    const links = [];
    for (const [key, label] of [["launched_by", "launched by"], ["launches", "launches"]]) {
      const other = event[key];
      if (!other) continue;
      const link = element("button", { class: "link" }, other.name);
      link.addEventListener("click", () => {
        const lo = Math.min(other.start_us, event.start_us), hi = Math.max(other.end_us, event.end_us);
        const pad = (hi - lo) * 0.3 + 10;
        setWindow(lo - pad, hi + pad);
        showDetails(other.id, 1);
      });
      links.push(element("div", {}, `${label}: `, link, ` (${duration(other.end_us - other.start_us)})`));
    }
    const note = merged > 1 ? [element("div", { class: "muted" }, `${merged} events narrower than a pixel are drawn here as one; this is the longest. Zoom in to see each.`)] : [];
    details.replaceChildren(element("div", { class: "title" }, event.name), ...note, ...links, table);
  };

  const select = (x, y) => {
    const ev = hit(x, y);
    if (!ev) {
      state.selected = null;
      draw();
      details.replaceChildren(element("span", { class: "muted" }, "Click an event to see its details."));
      return;
    }
    showDetails(ev[4], ev[5]).catch((error) => details.replaceChildren(element("span", { class: "error" }, error.message)));
  };

  reset.addEventListener("click", () => setWindow(total[0], total[1]));
  // The keys of chrome://tracing and Perfetto: W and S zoom around the middle, A and D pan.
  canvas.tabIndex = 0;
  canvas.addEventListener("keydown", (event) => {
    const width = state.b - state.a, middle = (state.a + state.b) / 2;
    const key = event.key.toLowerCase();
    if (key === "w" || key === "s") {
      const half = (width / 2) * (key === "w" ? 0.8 : 1.25);
      setWindow(middle - half, middle + half);
    } else if (key === "a" || key === "d") {
      const shift = width * 0.2 * (key === "a" ? -1 : 1);
      setWindow(state.a + shift, state.b + shift);
    } else {
      return;
    }
    event.preventDefault();
  });
  const redraw = () => draw();
  themeListeners.add(redraw);
  const resized = new ResizeObserver(() => (box.isConnected ? draw() : resized.disconnect()));
  resized.observe(box);
  placeLabels();
  draw();
  if (span.value) refetch();
}

async function openInPerfetto(run, worker) {
  // The only request to another origin the tab ever makes, and only on this button.
  const buffer = await (await fetch(route("trace", { run, worker }))).arrayBuffer();
  const origin = "https://ui.perfetto.dev";
  const target = window.open(origin);
  const ping = setInterval(() => target.postMessage("PING", origin), 250);
  window.addEventListener("message", function ready(event) {
    if (event.origin !== origin || event.data !== "PONG") return;
    clearInterval(ping);
    window.removeEventListener("message", ready);
    target.postMessage({ perfetto: { buffer, title: worker } }, origin);
  });
}

// Per rank, a bar of its mean step: computation, communication not hidden behind it, and the device idle.
function rankBars(workers) {
  // Room for the longest name, within reason; a longer one is cut, whole in its tooltip.
  const width = 600, row = 22, chars = Math.min(Math.max(...workers.map((w) => w.name.length), 6), 36);
  const left = chars * 6.5 + 12;
  const longest = Math.max(...workers.map((w) => w.step || 0), 1);
  const xTicks = upTo(longest, 5);
  const top = xTicks[xTicks.length - 1];
  const [scale, unit] = timeUnit(top);
  const x = (us) => left + (us / top) * width;
  const svg = element("svg", { id: "rank-bars", width: left + width + 40, height: workers.length * row + 50 });
  const series = [["computation", COLORS.kernel, (w) => w.computation], ["communication", COLORS.communication, (w) => (w.communication ?? 0) - (w.overlap ?? 0)],
    ["idle", COLORS.other, (w) => w.idle]];
  workers.forEach((w, i) => {
    const label = element("text", { x: left - 6, y: i * row + 15, "text-anchor": "end" }, w.name.length > chars ? `${w.name.slice(0, chars - 1)}…` : w.name);
    label.append(element("title", {}, w.name));
    svg.append(label);
    let at = 0;
    for (const [label, color, value] of series) {
      const us = Math.max(value(w) || 0, 0);
      const rect = element("rect", { x: x(at), y: i * row + 3, width: Math.max(x(at + us) - x(at), 0), height: row - 6, fill: color });
      rect.append(element("title", {}, `${w.name} ${label}: ${ms(us)} ms a step`));
      svg.append(rect);
      at += us;
    }
  });
  const axis = element("g", { class: "axis" });
  const base = workers.length * row + 4;
  axis.append(element("line", { x1: left, x2: left + width, y1: base, y2: base }));
  for (const t of xTicks) {
    axis.append(element("line", { x1: x(t), x2: x(t), y1: base, y2: base + 4 }),
      element("text", { class: "tick", x: x(t), y: base + 16, "text-anchor": "middle" }, tickLabel(t, scale)));
  }
  axis.append(element("text", { x: left + width / 2, y: base + 32, "text-anchor": "middle" }, `mean step (${unit})`));
  svg.append(axis);
  const legend = element("div", { class: "legend" }, ...series.map(([label, color]) =>
    element("span", {}, element("i", { style: `background:${color}` }), label === "communication" ? "communication not overlapped" : label === "idle" ? "device idle" : label)));
  return element("div", {}, svg, legend);
}

async function showDistributed(view, run) {
  const data = await get("distributed", { run });
  // Every figure is a mean per step, as the Overview shows them.
  const perStep = (w, key) => w[key] ?? null;
  const workers = data.workers.map((w) => ({
    name: w.worker, steps: w.steps, step: perStep(w, "step_time_us"), computation: perStep(w, "computation_us"),
    communication: perStep(w, "communication_us"), overlap: perStep(w, "overlap_us"), idle: perStep(w, "idle_us"),
    overlap_share: w.overlap_share ?? (w.communication_us ? w.overlap_us / w.communication_us : null),
  }));
  const slowest = workers.find((w) => w.name === data.slowest);
  const fastest = Math.min(...workers.map((w) => w.step ?? Infinity));
  const headline = workers.length > 1 && slowest
    ? `${workers.length} ranks · slowest: ${slowest.name}, ${ms(slowest.step)} ms a step, ${fastest > 0 ? `${(100 * (slowest.step / fastest - 1)).toFixed(1)}% above the fastest` : ""}`
    : `${workers.length} rank${workers.length === 1 ? "" : "s"}${workers.length === 1 ? " · one rank, nothing to compare it with" : ""}`;
  const parts = [
    element("h3", { id: "distributed-headline" }, headline),
    rankBars(workers),
    element("h4", {}, "Per rank, per step"),
    sortableTable("distributed", [["name", "worker"], ["steps", "steps"], ["step", "step ms", ms],
      ["computation", "computation ms", ms], ["communication", "communication ms", ms],
      ["overlap", "overlapped ms", ms], ["overlap_share", "communication overlapped", pct], ["idle", "device idle ms", ms]], workers),
  ];
  if (data.collectives) {
    // A column for every rank of the run: one that never called a collective shows "-" there.
    const ranks = [...new Set([...workers.map((w) => w.name), ...data.collectives.flatMap((c) => Object.keys(c.per_rank || {}))])].sort();
    const rankTime = (value) => (value === undefined || value === null ? null : typeof value === "object" ? value.total_us : value);
    const rows = data.collectives.map((c) => ({ ...c, mean_us: c.mean_us ?? (c.calls ? c.total_us / c.calls : null),
      ...Object.fromEntries(ranks.map((r) => [`rank:${r}`, rankTime((c.per_rank || {})[r])])) }));
    parts.push(element("h4", {}, "Per collective"),
      rows.length
        ? sortableTable("collectives", [["name", "collective"], ["calls", "calls"], ["bytes", "size", bytes], ["total_us", "total ms", ms],
          ["mean_us", "mean ms", ms], ...ranks.map((r) => [`rank:${r}`, `${r} total ms`, ms])], rows)
        : element("p", { class: "muted" }, "No collectives in these traces."));
  }
  view.replaceChildren(...parts);
}

// Modules as a tree by qualified name: each row can fold its children.
async function showModules(view, run, worker) {
  const data = await get("modules", { run, worker, step: span.value });
  const rows = Array.isArray(data) ? data : data.modules || [];
  if (!rows.length) {
    view.replaceChildren(element("p", { id: "modules-empty" }, data.hint ||
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
  const body = element("tbody");
  const typed = rows.some((r) => r.type), onDevice = rows.some((r) => r.device_total_us !== undefined && r.device_total_us !== null);
  const fill = () => {
    const out = [];
    const walk = (r, depth) => {
      const kids = children.get(name(r)) || [];
      const toggle = element("span", { class: "toggle" }, kids.length ? (open.has(name(r)) ? "▾" : "▸") : "");
      toggle.addEventListener("click", () => { open.has(name(r)) ? open.delete(name(r)) : open.add(name(r)); fill(); });
      const parent = parentOf(r);
      const short = depth && name(r).startsWith(`${parent}.`) ? name(r).slice(parent.length + 1) : name(r);
      out.push(element("tr", {}, element("td", { class: "name", title: name(r), style: `padding-left:${10 + depth * 16}px` }, toggle, short),
        typed ? element("td", { class: "text" }, r.type || "") : null, element("td", {}, String(r.calls ?? "-")),
        element("td", {}, r.host_total_us === undefined ? "-" : ms(r.host_total_us)),
        onDevice ? element("td", {}, r.device_total_us === undefined || r.device_total_us === null ? "-" : ms(r.device_total_us)) : null));
      if (open.has(name(r))) for (const kid of kids) walk(kid, depth + 1);
    };
    for (const r of roots) walk(r, 0);
    body.replaceChildren(...out);
  };
  fill();
  view.replaceChildren(element("p", { class: "muted" }, "Modules by qualified name; ▸ unfolds a module's children."),
    element("table", { id: "modules", class: "tree" }, element("thead", {}, element("tr", {},
      ...["module", typed ? "type" : null, "calls", "host ms", onDevice ? "device ms" : null].filter(Boolean)
        .map((h, i) => element("th", { class: i ? (h === "type" ? "text" : "") : "name" }, h)))), body));
}

async function showDiff(view, run, worker) {
  const runs = await get("runs");
  const choices = runs.flatMap((r) => r.workers.map((w) => [r.run, w]));
  const label = ([r, w]) => `${r} / ${w}`;
  const side = (id, chosen) => element("select", { id }, ...choices.map((c) => element("option", { value: `${c[0]}\n${c[1]}`, selected: label(c) === label(chosen) ? "" : null }, label(c))));
  const base = side("diff-base", [run, worker]);
  const otherChoice = choices.find((c) => c[0] === run && c[1] !== worker) || choices.find((c) => label(c) !== label([run, worker]));
  const other = side("diff-other", otherChoice || [run, worker]);
  const baseStep = element("select", { id: "diff-base-step" });
  const otherStep = element("select", { id: "diff-other-step" });
  const holder = element("div");
  const fillSteps = async (select, value) => {
    const [r, w] = value.split("\n");
    const overview = await get("overview", { run: r, worker: w }).catch(() => ({ steps: [] }));
    select.replaceChildren(element("option", { value: "" }, "all steps"),
      ...overview.steps.map((s) => element("option", { value: String(s.step) }, `step ${stepLabel(s)}`)));
  };
  const delta = (v) => `${v >= 0 ? "+" : ""}${ms(v)}`;
  const draw = async () => {
    if (base.value === other.value && baseStep.value === otherStep.value) {
      holder.replaceChildren(element("p", { class: "muted" }, "Pick two different traces, or two different steps, to compare."));
      return;
    }
    holder.replaceChildren(element("p", {}, "Comparing the traces…"));
    const [run1, worker1] = base.value.split("\n");
    const [run2, worker2] = other.value.split("\n");
    const data = await get("diff", { run: run1, worker: worker1, run2, worker2, step: baseStep.value, step2: otherStep.value });
    const crumbs = element("div", { class: "toolbar", id: "diff-path" });
    const level = element("div");
    const columns = (what) => [["name", what], ["base", "base ms", ms], ["other", "other ms", ms], ["delta", "change ms", delta]];
    const show = (title, rows, what, next) => {
      const table = sortableTable(`diff-${what}`, columns(what),
        rows.map((r) => ({ name: r.name, base: r.base ?? r.base_us, other: r.other ?? r.other_us, delta: r.delta ?? r.delta_us, row: r })),
        next ? { onRow: (shown) => next(shown.row) } : {});
      level.replaceChildren(element("h4", {}, title), table);
    };
    // Operators by device time where the traces link kernels to operators, else by host time.
    const moved = (rows) => rows.some((r) => (r.base_us ?? 0) > 0 || (r.other_us ?? 0) > 0);
    const device = [data.operators, "device self time"], host = [data.operators_host || data.operators, "host self time"];
    const [opRows, opTime] = moved(data.operators) || !data.operators_host ? device : host;
    // Device categories drill into operators by the device time they launched; host ones by host time.
    const operatorsFor = (category) => (["kernel", "memcpy", "memset", "communication"].includes(category) && moved(data.operators) ? device : host);
    const path = [];
    const breadcrumb = () => crumbs.replaceChildren(...path.map(([text, go], i) => {
      const link = element("button", { class: "link" }, text);
      link.addEventListener("click", () => { path.length = i + 1; go(); breadcrumb(); });
      return i ? element("span", {}, " › ", link) : link;
    }));
    const kernelsOf = (op) => {
      const rows = (data.kernels_by_operator && data.kernels_by_operator[op.name]) || op.kernels;
      if (rows) show(`Kernels ${op.name} launched, per step`, rows, "kernel", null);
      else show(`Kernels that changed most, per step (the traces do not link kernels to ${op.name})`, data.kernels, "kernel", null);
      path.push([op.name, () => kernelsOf(op)]);
      breadcrumb();
    };
    const operatorsOf = (category) => {
      const [rows, time] = operatorsFor(category.name);
      show(`Operators that changed most, ${time} per step (click one to see its kernels)`, rows, "operator", kernelsOf);
      path.push([category.name, () => operatorsOf(category)]);
      breadcrumb();
    };
    const categories = () => {
      show("Categories, per step (click one to see its operators)",
        Object.entries(data.categories_us).map(([name, v]) => ({ name, ...v })), "category", operatorsOf);
      const most = (rows, what) => sortableTable(`diff-top-${what}`, columns(what),
        rows.slice(0, 10).map((r) => ({ name: r.name, base: r.base ?? r.base_us, other: r.other ?? r.other_us, delta: r.delta ?? r.delta_us })));
      level.append(element("h4", {}, `Operators that changed most, ${opTime} per step`), most(opRows, "operator"),
        element("h4", {}, "Kernels that changed most, per step"), most(data.kernels, "kernel"));
    };
    path.push(["all categories", categories]);
    categories();
    breadcrumb();
    holder.replaceChildren(
      element("h3", {}, `step time ${ms(data.step_time_us.base)} ms → ${ms(data.step_time_us.other)} ms (${delta(data.step_time_us.delta)} ms)`),
      crumbs, level);
  };
  for (const [select, steps] of [[base, baseStep], [other, otherStep]]) {
    select.addEventListener("change", async () => { await fillSteps(steps, select.value); draw(); });
    steps.addEventListener("change", draw);
  }
  view.replaceChildren(
    element("div", { class: "toolbar" }, element("span", { class: "side" }, "Base"), base, baseStep),
    element("div", { class: "toolbar" }, element("span", { class: "side" }, "Against"), other, otherStep), holder);
  if (!choices.length) return;
  await Promise.all([fillSteps(baseStep, base.value), fillSteps(otherStep, other.value)]);
  await draw();
}

const VIEWS = {
  Overview: showOverview, Operators: showOperators, Kernels: showKernels, Memory: showMemory,
  Timeline: showTimeline, Distributed: showDistributed, Modules: showModules, Diff: showDiff,
};

export async function render() {
  document.head.append(element("style", {}, STYLE));
  followTheme();
  const runs = await get("runs");
  const runSelect = element("select", { id: "run" }, ...runs.map((r) => element("option", { value: r.run }, r.run)));
  const workerSelect = element("select", { id: "worker" });
  const tabs = element("div", { class: "tabs" });
  const view = element("div", { id: "view" });
  let current = "Overview";
  const show = async (search) => {
    for (const button of tabs.children) button.className = button.textContent === current ? "on" : "";
    themeListeners.clear();
    // Each showing draws into its own box: one that finishes after the user moved on draws unseen.
    const box = element("div", {}, element("p", {}, "Analyzing the trace…"));
    const [name, run, worker] = [current, runSelect.value, workerSelect.value];
    view.replaceChildren(box);
    view.setAttribute("aria-busy", "true");
    try {
      await VIEWS[name](box, run, worker, search);
    } catch (error) {
      box.replaceChildren(element("p", { class: "error" }, `Could not analyze this trace: ${error.message}`));
    }
    // What the view shows once drawn, for assistive technology (and tests): busy until then.
    if (box.isConnected) {
      Object.assign(view.dataset, { view: name, run, worker });
      view.setAttribute("aria-busy", "false");
    }
  };
  showView = (name, search) => { current = name; show(search); };
  const fillWorkers = () => {
    const run = runs.find((r) => r.run === runSelect.value);
    workerSelect.replaceChildren(...(run ? run.workers : []).map((w) => element("option", { value: w }, w)));
  };
  const fillSpans = async () => {
    const overview = await get("overview", { run: runSelect.value, worker: workerSelect.value }).catch(() => ({ steps: [] }));
    span.replaceChildren(element("option", { value: "" }, "all steps"),
      ...overview.steps.map((s) => element("option", { value: String(s.step) }, `step ${stepLabel(s)}`)));
  };
  for (const name of Object.keys(VIEWS)) {
    const button = element("button", {}, name);
    button.addEventListener("click", () => { current = name; show(); });
    tabs.append(button);
  }
  runSelect.addEventListener("change", async () => { fillWorkers(); await fillSpans(); show(); });
  workerSelect.addEventListener("change", async () => { await fillSpans(); show(); });
  span.addEventListener("change", () => show());
  document.body.replaceChildren(element("div", { class: "toolbar" }, "Run ", runSelect, " Trace ", workerSelect, " Span ", span), tabs, view);
  if (!runs.length) {
    view.replaceChildren(element("p", {}, "No traces yet: profile a run with tbscope.profile(run)."));
    return;
  }
  fillWorkers();
  await fillSpans();
  await show();
}
