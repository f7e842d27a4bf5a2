// The Groups tab: runs grouped by config (seeds together), drawn from this plugin's /summary route.
// No library, no request to any other origin.

import { followTheme } from "./theme.js";

const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
  "#bcbd22", "#17becf"];
const BANDS = { ci: ["ci_low", "ci_high", "95% CI"], std: [null, null, "mean ± std"], sem: [null, null, "mean ± sem"],
  minmax: ["min", "max", "min–max"] };
const STYLE = `
  :root { --fg: #212121; --muted: #616161; --bg: #ffffff; --panel: #fafafa; --line: #e0e0e0; --grid: #eeeeee; }
  :root.dark { --fg: #e8e8e8; --muted: #a8a8a8; --bg: #303030; --panel: #3a3a3a; --line: #555555; --grid: #444444; }
  html, body { background: var(--bg); color: var(--fg); }
  body { font-family: Roboto, sans-serif; font-size: 13px; margin: 16px; }
  select, button, input { font: inherit; margin-right: 8px; color: var(--fg); background: var(--panel);
    border: 1px solid var(--line); border-radius: 3px; padding: 2px 6px; }
  label { margin-right: 12px; }
  .muted { color: var(--muted); }
  .lead { margin: 8px 0; font-weight: 500; }
  .charts { display: flex; flex-wrap: wrap; gap: 16px; }
  .card { border: 1px solid var(--line); border-radius: 4px; padding: 8px; position: relative; }
  .tip { position: absolute; pointer-events: none; background: var(--panel); border: 1px solid var(--line);
    padding: 4px 6px; white-space: nowrap; display: none; z-index: 2; }
  table { border-collapse: collapse; margin-top: 8px; }
  th, td { padding: 3px 10px; border-bottom: 1px solid var(--line); text-align: right; white-space: nowrap; }
  th:first-child, td:first-child { text-align: left; }
  details { margin: 8px 0; }
`;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}

function svg(tag, attrs = {}) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

const fmt = (v) => (v === null || v === undefined ? "–" : Math.abs(v) >= 1000 || Math.abs(v) < 0.001 && v !== 0
  ? v.toExponential(2) : String(parseFloat(v.toPrecision(4))));

function ticks(lo, hi, count = 5) {
  const span = hi - lo || 1;
  const step = 10 ** Math.floor(Math.log10(span / count));
  const nice = [1, 2, 5, 10].map((m) => m * step).find((s) => span / s <= count) || step * 10;
  const out = [];
  for (let t = Math.ceil(lo / nice) * nice; t <= hi + nice * 1e-9; t += nice) out.push(t);
  return out;
}

function bandOf(line, band, i) {
  const [lo, hi] = BANDS[band];
  if (lo) return [line[lo][i], line[hi][i]];
  const spread = line[band][i];
  return spread === null || line.mean[i] === null ? [null, null] : [line.mean[i] - spread, line.mean[i] + spread];
}

function chart(tag, lines, colors, band) {
  const W = 460, H = 260, L = 56, R = 12, T = 10, B = 30;
  const card = el("div", { class: "card", "data-tag": tag }, el("div", {}, tag));
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (const line of Object.values(lines)) {
    line.step.forEach((s, i) => {
      x0 = Math.min(x0, s); x1 = Math.max(x1, s);
      for (const v of [line.mean[i], ...bandOf(line, band, i)]) {
        if (v !== null) { y0 = Math.min(y0, v); y1 = Math.max(y1, v); }
      }
    });
  }
  if (!isFinite(x0)) return card;
  if (y0 === y1) { y0 -= 1; y1 += 1; }
  const px = (s) => L + ((s - x0) / (x1 - x0 || 1)) * (W - L - R);
  const py = (v) => T + (1 - (v - y0) / (y1 - y0)) * (H - T - B);
  const root = svg("svg", { width: W, height: H });
  for (const t of ticks(y0, y1)) {
    root.append(svg("line", { x1: L, x2: W - R, y1: py(t), y2: py(t), stroke: "var(--grid)" }));
    const text = svg("text", { x: L - 4, y: py(t) + 4, "text-anchor": "end", fill: "var(--muted)", "font-size": 11 });
    text.textContent = fmt(t);
    root.append(text);
  }
  for (const t of ticks(x0, x1)) {
    const text = svg("text", { x: px(t), y: H - 10, "text-anchor": "middle", fill: "var(--muted)", "font-size": 11 });
    text.textContent = fmt(t);
    root.append(text);
  }
  // Every band first, then every mean on top: a wide band never hides another group's line.
  const means = [];
  for (const [label, line] of Object.entries(lines)) {
    const upper = [], lower = [], mean = [];
    line.step.forEach((s, i) => {
      const [lo, hi] = bandOf(line, band, i);
      if (lo !== null && hi !== null) { upper.push(`${px(s)},${py(hi)}`); lower.unshift(`${px(s)},${py(lo)}`); }
      if (line.mean[i] !== null) mean.push(`${px(s)},${py(line.mean[i])}`);
    });
    if (upper.length) {
      root.append(svg("polygon", { points: [...upper, ...lower].join(" "), fill: colors[label], "fill-opacity": 0.22,
        class: "band", "data-group": label }));
    }
    means.push(svg("polyline", { points: mean.join(" "), fill: "none", stroke: colors[label], "stroke-width": 1.6,
      class: "mean", "data-group": label }));
  }
  root.append(...means);
  const cursor = svg("line", { y1: T, y2: H - B, stroke: "var(--muted)", visibility: "hidden" });
  root.append(cursor);
  const tip = el("div", { class: "tip" });
  root.addEventListener("mousemove", (event) => {
    const box = root.getBoundingClientRect();
    const step = x0 + ((event.clientX - box.left - L) / (W - L - R)) * (x1 - x0);
    const rows = [el("div", { class: "muted" }, `step ≈ ${Math.round(step)}`)];
    for (const [label, line] of Object.entries(lines)) {
      let best = 0;
      line.step.forEach((s, i) => { if (Math.abs(s - step) < Math.abs(line.step[best] - step)) best = i; });
      const [lo, hi] = bandOf(line, band, best);
      rows.push(el("div", { style: `color: ${colors[label]}` },
        `${label}: ${fmt(line.mean[best])} [${fmt(lo)}, ${fmt(hi)}] n=${line.n[best]}`));
    }
    tip.replaceChildren(...rows);
    tip.style.display = "block";
    tip.style.left = `${Math.min(event.clientX - box.left + 12, W - 200)}px`;
    tip.style.top = `${event.clientY - box.top + 24}px`;
    cursor.setAttribute("x1", event.clientX - box.left);
    cursor.setAttribute("x2", event.clientX - box.left);
    cursor.setAttribute("visibility", "visible");
  });
  root.addEventListener("mouseleave", () => { tip.style.display = "none"; cursor.setAttribute("visibility", "hidden"); });
  card.append(root, tip);
  return card;
}

function finalsTable(tag, finals) {
  const rows = finals.rows.map((r) => el("tr", {}, el("td", {}, r.label), el("td", {}, String(r.n)),
    el("td", {}, fmt(r.mean)), el("td", {}, fmt(r.std)), el("td", {}, `[${fmt(r.ci_low)}, ${fmt(r.ci_high)}]`)));
  const head = el("tr", {}, ...["group", "n", `final ${tag} (${finals.direction === "max" ? "higher" : "lower"} is better)`,
    "std", "95% CI"].map((h) => el("th", {}, h)));
  return el("table", { class: "finals", "data-tag": tag }, head, ...rows);
}

const state = { by: null, band: "ci", smoothing: 0, data: null };
const root = el("div");

async function load() {
  const params = new URLSearchParams({ smoothing: state.smoothing });
  if (state.by !== null) params.set("by", state.by.join(","));
  const response = await fetch(`./summary?${params}`);
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.statusText);
  state.data = data;
  draw();
}

function controls(data) {
  const by = el("select", { id: "group-by", onchange: (e) => {
    state.by = e.target.value === "" ? null : [e.target.value];
    load().catch(showError);
  } }, el("option", { value: "" }, "config, seeds together"), ...data.keys.map((k) => el("option", { value: k }, k)));
  by.value = state.by ? state.by[0] : "";
  const band = el("select", { id: "band", onchange: (e) => { state.band = e.target.value; draw(); } },
    ...Object.entries(BANDS).map(([k, v]) => el("option", { value: k }, v[2])));
  band.value = state.band;
  const smooth = el("input", { id: "smoothing", type: "range", min: 0, max: 0.99, step: 0.01, value: state.smoothing,
    oninput: (e) => { shown.textContent = e.target.value; },
    onchange: (e) => { state.smoothing = Number(e.target.value); load().catch(showError); } });
  const shown = el("span", { id: "smoothing-value" }, String(state.smoothing));
  return el("div", {}, el("label", {}, "Group by ", by), el("label", {}, "Band ", band),
    el("label", {}, "Smoothing ", smooth, shown),
    el("button", { id: "reload", onclick: () => load().catch(showError) }, "Reload"));
}

function draw() {
  const data = state.data;
  if (!data.groups.length || !data.metrics.length) {
    root.replaceChildren(el("p", { class: "empty" }, data.groups.length
      ? "These runs log no headline metric yet (val/, test/ or metrics/ tags, or metrics= of tbscope.init)."
      : "No runs here yet. Start runs with tbscope.init(experiment, root=<this logdir>, config={...}): runs " +
        "whose config differs only in the seed become one group."));
    return;
  }
  const colors = {};
  data.groups.forEach((g, i) => { colors[g.label] = COLORS[i % COLORS.length]; });
  const legend = el("div", {}, ...data.groups.map((g) => el("span", { style: `color: ${colors[g.label]}; margin-right: 14px` },
    `■ ${g.label} (n=${g.n})`)));
  const parts = [controls(data), legend];
  for (const tag of data.metrics) {
    const finals = data.finals[tag];
    if (finals && finals.lead) parts.push(el("div", { class: "lead" }, finals.lead.sentence));
  }
  parts.push(el("div", { class: "charts" }, ...data.metrics.map((tag) => chart(tag, data.curves[tag] || {}, colors, state.band))));
  for (const tag of data.metrics) if (data.finals[tag]) parts.push(finalsTable(tag, data.finals[tag]));
  parts.push(el("details", {}, el("summary", {}, "Runs behind each group"),
    ...data.groups.map((g) => el("div", { class: "runs" }, el("b", {}, g.label), `: ${g.runs.join(", ")}`))));
  root.replaceChildren(...parts);
}

function showError(error) {
  root.replaceChildren(el("p", { class: "error" }, `Could not load the groups: ${error.message}`));
}

export async function render() {
  document.head.append(el("style", {}, STYLE));
  document.body.append(root);
  followTheme();
  await load().catch(showError);
}
