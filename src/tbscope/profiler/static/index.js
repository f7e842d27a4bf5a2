// The Profile tab: everything is drawn here, from this plugin's own JSON routes. No library, no
// request to any other origin (except "Open in Perfetto", on the user's click). This module is the page:
// its style, the run, trace and span pickers and the views' tabs; each view is a module of views/, the
// helpers it shares with the Groups tab and the report are served beside this file (charts, tables,
// fetch, theme).

import { el } from "./charts.js";
import { get } from "./fetch.js";
import { stepLabel } from "./format.js";
import { followTheme, themeListeners } from "./theme.js";
import { showDiff } from "./views/diff.js";
import { showDistributed } from "./views/distributed.js";
import { showKernels } from "./views/kernels.js";
import { showMemory } from "./views/memory.js";
import { showModules } from "./views/modules.js";
import { showOperators } from "./views/operators.js";
import { showOverview } from "./views/overview.js";
import { showTimeline } from "./views/timeline.js";

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

// Each view draws into the box it is given, from {run, worker, step, stepText, search, show}: the trace, the
// step of the span picker ("" for all), its name, a search to fill in, and show(view, search) to switch views.
const VIEWS = {
  Overview: showOverview, Operators: showOperators, Kernels: showKernels, Memory: showMemory,
  Timeline: showTimeline, Distributed: showDistributed, Modules: showModules, Diff: showDiff,
};

export async function render() {
  document.head.append(el("style", {}, STYLE));
  const span = el("select", { id: "span" }, el("option", { value: "" }, "all steps"));
  followTheme();
  const runs = await get("runs");
  const runSelect = el("select", { id: "run" }, ...runs.map((r) => el("option", { value: r.run }, r.run)));
  const workerSelect = el("select", { id: "worker" });
  const tabs = el("div", { class: "tabs" });
  const view = el("div", { id: "view" });
  let current = "Overview";
  const show = async (search) => {
    for (const button of tabs.children) button.className = button.textContent === current ? "on" : "";
    themeListeners.clear();
    // Each showing draws into its own box: one that finishes after the user moved on draws unseen.
    const box = el("div", {}, el("p", {}, "Analyzing the trace…"));
    const [name, run, worker] = [current, runSelect.value, workerSelect.value];
    view.replaceChildren(box);
    view.setAttribute("aria-busy", "true");
    try {
      const step = span.value, stepText = span.selectedOptions[0]?.textContent ?? "";
      await VIEWS[name](box, { run, worker, step, stepText, search, show: showView });
    } catch (error) {
      box.replaceChildren(el("p", { class: "error" }, `Could not analyze this trace: ${error.message}`));
    }
    // What the view shows once drawn, for assistive technology (and tests): busy until then.
    if (box.isConnected) {
      Object.assign(view.dataset, { view: name, run, worker });
      view.setAttribute("aria-busy", "false");
    }
  };
  const showView = (name, search) => { current = name; show(search); };
  const fillWorkers = () => {
    const run = runs.find((r) => r.run === runSelect.value);
    workerSelect.replaceChildren(...(run ? run.workers : []).map((w) => el("option", { value: w }, w)));
  };
  const fillSpans = async () => {
    const overview = await get("overview", { run: runSelect.value, worker: workerSelect.value }).catch(() => ({ steps: [] }));
    span.replaceChildren(el("option", { value: "" }, "all steps"),
      ...overview.steps.map((s) => el("option", { value: String(s.step) }, `step ${stepLabel(s)}`)));
  };
  for (const name of Object.keys(VIEWS)) {
    const button = el("button", {}, name);
    button.addEventListener("click", () => { current = name; show(); });
    tabs.append(button);
  }
  runSelect.addEventListener("change", async () => { fillWorkers(); await fillSpans(); show(); });
  workerSelect.addEventListener("change", async () => { await fillSpans(); show(); });
  span.addEventListener("change", () => show());
  document.body.replaceChildren(el("div", { class: "toolbar" }, "Run ", runSelect, " Trace ", workerSelect, " Span ", span), tabs, view);
  if (!runs.length) {
    view.replaceChildren(el("p", {}, "No traces yet: profile a run with tbscope.profile(run)."));
    return;
  }
  fillWorkers();
  await fillSpans();
  await show();
}
