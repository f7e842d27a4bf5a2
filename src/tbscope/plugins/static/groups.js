// The Groups tab: runs grouped by config (seeds together), drawn from this plugin's /summary route.
// No library, no request to any other origin.

import { BANDS, bandOf, el, fmt, lineChart, seriesColor } from "./charts.js";
import { get } from "./fetch.js";
import { sortableTable } from "./tables.js";
import { followTheme } from "./theme.js";

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
  .card svg { width: 460px; height: 260px; display: block; user-select: none; }
  .card .title { font-weight: 500; margin-bottom: 2px; }
  .note { color: var(--muted); font-size: 11px; }
  .tip { position: absolute; pointer-events: none; background: var(--panel); border: 1px solid var(--line);
    padding: 4px 6px; white-space: nowrap; display: none; z-index: 2; }
  table { border-collapse: collapse; margin-top: 8px; }
  th, td { padding: 3px 10px; border-bottom: 1px solid var(--line); text-align: right; white-space: nowrap; }
  th { cursor: pointer; user-select: none; }
  th:first-child, td:first-child { text-align: left; }
  details { margin: 8px 0; }
`;

// One metric's chart: a mean line and a band per group (the chart itself is charts.js's, shared with the report).
function chart(tag, lines, colors, band) {
  const series = Object.entries(lines).map(([label, line]) => {
    const [low, high] = bandOf(line, band);
    return { name: label, color: colors[label], x: line.step, y: line.mean, low, high, n: line.n, width: 2 };
  });
  return series.length ? lineChart(tag, series, { legend: false }) : el("div", { class: "card", "data-tag": tag }, tag);
}

// A metric's final values per group; a click on a header sorts by it.
function finalsTable(tag, finals) {
  const columns = [["label", "group"], ["n", "n"],
    ["mean", `final ${tag} (${finals.direction === "max" ? "higher" : "lower"} is better)`, fmt], ["std", "std", fmt],
    ["ci_low", "95% CI", (v, r) => `[${fmt(r.ci_low)}, ${fmt(r.ci_high)}]`]];
  return sortableTable(null, columns, finals.rows.slice(), { attributes: { class: "finals", "data-tag": tag } });
}

// Who leads a metric, and whether the lead is real. Against many groups the sentence runs for lines (one
// test a group): folded then, under a line that counts the significant leads.
const UNFOLDED_COMPARISONS = 3;
function leadLine(tag, lead) {
  const comparisons = lead.comparisons || [];
  if (comparisons.length <= UNFOLDED_COMPARISONS) return el("div", { class: "lead" }, lead.sentence);
  const significant = comparisons.filter((c) => c.significant).length;
  return el("details", { class: "lead" }, el("summary", {},
    `${lead.leader} leads ${tag}: significantly (Welch's t-test) over ${significant} of the ${comparisons.length} other groups`),
    el("div", { class: "muted" }, lead.sentence));
}

// How often the open tab asks for the groups again.
const REFRESH_MS = 30_000;
// The band shown first is mean ± std: with a handful of seeds a 95% CI spans far (t = 12.7 at n = 2).
const state = { by: null, band: "std", smoothing: 0, data: null };
const root = el("div");

async function load() {
  state.data = await get("summary", { smoothing: state.smoothing, by: state.by === null ? null : state.by.join(",") });
  draw();
}

function controls(data) {
  const by = el("select", { id: "group-by", onchange: (e) => {
    state.by = e.target.value === "" ? null : [e.target.value];
    load().catch(showError);
  } }, el("option", { value: "" }, "config, seeds together"), ...data.keys.map((k) => el("option", { value: k }, k)));
  by.value = state.by ? state.by[0] : "";
  const band = el("select", { id: "band", onchange: (e) => { state.band = e.target.value; draw(); } },
    ...Object.entries(BANDS).map(([k, v]) => el("option", { value: k }, v)));
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
  data.groups.forEach((g, i) => { colors[g.label] = seriesColor(i); });
  const legend = el("div", {}, ...data.groups.map((g) => el("span", { style: `color: ${colors[g.label]}; margin-right: 14px` },
    `■ ${g.label} (n=${g.n})`)));
  const parts = [controls(data), legend];
  for (const tag of data.metrics) {
    const finals = data.finals[tag];
    if (finals && finals.lead) parts.push(leadLine(tag, finals.lead));
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
  // Runs that are still writing show up without a click: the route answers from its cache while nothing changed.
  setInterval(() => { if (!document.hidden && state.data) load().catch(showError); }, REFRESH_MS);
}
