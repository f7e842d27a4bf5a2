// The Profile tab: everything is drawn here, from this plugin's own JSON routes. No library, no
// request to any other origin.

const CATEGORIES = ["kernel", "memcpy", "memset", "communication", "runtime", "dataloader", "cpu_exec", "other"];
const COLORS = {
  kernel: "#1f77b4", memcpy: "#ff7f0e", memset: "#bcbd22", communication: "#d62728",
  runtime: "#9467bd", dataloader: "#8c564b", cpu_exec: "#2ca02c", other: "#c7c7c7",
};
const STYLE = `
  body { font-family: Roboto, sans-serif; font-size: 13px; margin: 16px; color: #212121; }
  select, button { font: inherit; margin-right: 8px; }
  .tabs button { border: none; background: none; padding: 6px 12px; cursor: pointer; }
  .tabs button.on { border-bottom: 2px solid #f57c00; font-weight: 500; }
  table { border-collapse: collapse; margin-top: 12px; }
  th, td { padding: 3px 10px; border-bottom: 1px solid #e0e0e0; text-align: right; }
  th { cursor: pointer; user-select: none; background: #fafafa; }
  td.name, th.name { text-align: left; max-width: 640px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
  .advice { background: #fff3e0; border-left: 3px solid #f57c00; padding: 6px 10px; margin: 6px 0; }
  .legend span { display: inline-block; margin-right: 12px; }
  .legend i { display: inline-block; width: 10px; height: 10px; margin-right: 4px; }
  .error { color: #c62828; }
`;

const route = (name, params) => {
  const url = new URL(`./${name}`, import.meta.url);
  for (const [key, value] of Object.entries(params || {})) url.searchParams.set(key, value);
  return url;
};

async function get(name, params) {
  const response = await fetch(route(name, params));
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

function element(tag, attributes = {}, ...children) {
  const svg = ["svg", "rect", "text", "g", "line", "polyline", "title"].includes(tag);
  const node = svg ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  for (const child of children) node.append(child);
  return node;
}

const ms = (us) => (us / 1000).toFixed(us < 10000 ? 3 : 1);

function stepChart(overview) {
  const steps = overview.steps;
  const width = Math.max(320, steps.length * 64), height = 220, left = 56, bottom = 24;
  const longest = Math.max(...steps.map((s) => s.duration_us), 1);
  const svg = element("svg", { id: "step-chart", width: width + left, height: height + bottom });
  const bar = Math.min(40, (width / Math.max(steps.length, 1)) * 0.7);
  steps.forEach((step, i) => {
    const x = left + (i + 0.5) * (width / steps.length) - bar / 2;
    let y = height;
    for (const category of CATEGORIES) {
      const us = step.breakdown_us[category];
      const h = (us / longest) * (height - 10);
      y -= h;
      const rect = element("rect", {
        class: "segment", x, y, width: bar, height: Math.max(h, 0), fill: COLORS[category],
        "data-step": step.step, "data-category": category, "data-us": us,
      });
      rect.append(element("title", {}, `step ${step.step} ${category}: ${ms(us)} ms`));
      svg.append(rect);
    }
    svg.append(element("text", { x: x + bar / 2, y: height + 16, "text-anchor": "middle" }, String(step.step)));
  });
  svg.append(element("text", { x: 0, y: 12 }, `${ms(longest)} ms`));
  svg.append(element("line", { x1: left - 4, x2: left + width, y1: height, y2: height, stroke: "#9e9e9e" }));
  return svg;
}

function sortableTable(id, columns, rows) {
  const table = element("table", { id });
  const head = element("tr");
  const body = element("tbody");
  let sortKey = null, ascending = false;
  const fill = () => {
    body.replaceChildren(...rows.map((row) => element("tr", {}, ...columns.map(([key, , format]) =>
      element("td", { class: key === "name" ? "name" : "", title: String(row[key] ?? "") },
        row[key] === null || row[key] === undefined ? "-" : format ? format(row[key]) : String(row[key]))))));
  };
  for (const [key, label] of columns) {
    const th = element("th", { class: key === "name" ? "name" : "", "data-key": key }, label);
    th.addEventListener("click", () => {
      ascending = sortKey === key ? !ascending : key === "name";
      sortKey = key;
      rows.sort((a, b) => (a[key] > b[key] ? 1 : a[key] < b[key] ? -1 : 0) * (ascending ? 1 : -1));
      fill();
    });
    head.append(th);
  }
  table.append(element("thead", {}, head), body);
  fill();
  return table;
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
  const utilization = overview.gpu_utilization === null ? "-" : `${(100 * overview.gpu_utilization).toFixed(1)}%`;
  view.replaceChildren(
    element("h3", {}, `${overview.device || "CPU"} · ${overview.steps.length} steps · average ${ms(all / n)} ms · GPU utilization ${utilization}`),
    stepChart(overview), legend,
    sortableTable("averages", [["name", "category"], ["ms", "average ms", ms], ["share", "share", (v) => `${(100 * v).toFixed(1)}%`]],
      CATEGORIES.map((c) => ({ name: c, ms: totals[c] / n, share: all ? totals[c] / all : 0 })).map((r) => ({ ...r, ms: r.ms }))),
    ...overview.recommendations.map((text) => element("div", { class: "advice" }, text)),
    ...overview.notes.map((text) => element("div", { class: "error" }, text)),
  );
}

async function showOperators(view, run, worker) {
  const byShapes = element("label", {}, element("input", { type: "checkbox", id: "by-shapes" }), " group by input shapes");
  const holder = element("div");
  const draw = async () => {
    const rows = await get("operators", { run, worker, step: span.value, group_by: byShapes.firstChild.checked ? "shapes" : "name" });
    const columns = [["name", "operator"], ["input_shapes", "input shapes"], ["calls", "calls"],
      ["device_self_us", "device self ms", ms], ["device_total_us", "device total ms", ms],
      ["host_self_us", "host self ms", ms], ["host_total_us", "host total ms", ms], ["call_stack", "called from"]];
    const stacks = rows.some((r) => r.call_stack);
    holder.replaceChildren(sortableTable("operators", columns.filter(([k]) =>
      (k !== "input_shapes" || byShapes.firstChild.checked) && (k !== "call_stack" || stacks)), rows));
  };
  byShapes.firstChild.addEventListener("change", draw);
  view.replaceChildren(byShapes, holder);
  await draw();
}

async function showKernels(view, run, worker) {
  const rows = await get("kernels", { run, worker, step: span.value });
  const pct = (v) => `${v.toFixed(1)}%`;
  view.replaceChildren(sortableTable("kernels", [["name", "kernel"], ["calls", "calls"], ["total_us", "total ms", ms],
    ["mean_us", "mean us", (v) => v.toFixed(1)], ["min_us", "min us", (v) => v.toFixed(1)], ["max_us", "max us", (v) => v.toFixed(1)],
    ["blocks_per_sm", "blocks/SM", (v) => v.toFixed(2)], ["occupancy_pct", "occupancy", pct],
    ["tensor_cores", "tensor cores", (v) => (v ? "yes" : "no")]], rows));
}

function lineChart(id, curve, series) {
  const width = 900, height = 240, left = 70;
  const t0 = curve.length ? curve[0][0] : 0, t1 = curve.length ? curve[curve.length - 1][0] : 1;
  const top = Math.max(1, ...curve.flatMap((p) => series.map(([index]) => p[index])));
  const svg = element("svg", { id, width: width + left, height: height + 20 });
  for (const [index, color, label] of series) {
    const points = curve.map((p) => `${left + ((p[0] - t0) / (t1 - t0 || 1)) * width},${height - (p[index] / top) * (height - 10)}`);
    svg.append(element("polyline", { points: points.join(" "), fill: "none", stroke: color, "data-series": label }));
  }
  svg.append(element("text", { x: 0, y: 12 }, `${(top / 2 ** 30).toFixed(2)} GiB`));
  svg.append(element("text", { x: left, y: height + 16 }, `${ms(t1 - t0)} ms`));
  return svg;
}

async function showMemory(view, run, worker) {
  const data = await get("memory", { run, worker, step: span.value });
  const parts = [];
  for (const [device, d] of Object.entries(data.devices)) {
    const capacity = d.capacity ? ` of ${(d.capacity / 2 ** 30).toFixed(1)} GiB` : "";
    parts.push(element("h3", {}, `${device}: peak allocated ${(d.peak_allocated / 2 ** 30).toFixed(2)} GiB, reserved ${(d.peak_reserved / 2 ** 30).toFixed(2)} GiB${capacity}`));
    parts.push(lineChart(`memory-${device}`, d.curve, [[1, "#1f77b4", "allocated"], [2, "#ff7f0e", "reserved"]]));
  }
  if (!parts.length) parts.push(element("p", {}, "No memory events: profile with profile_memory=True."));
  parts.push(sortableTable("allocators", [["name", "operator"], ["allocated_bytes", "allocated MB", (v) => (v / 1e6).toFixed(1)], ["allocations", "allocations"]], data.top_operators));
  view.replaceChildren(...parts);
}

async function showTimeline(view, run, worker) {
  const data = await get("timeline", { run, worker, step: span.value });
  const width = 1100, lane = 18, left = 170;
  const svg = element("svg", { id: "timeline", width: width + left, height: data.lanes.length * (lane + 4) + 20 });
  data.lanes.forEach((l, row) => {
    const y = row * (lane + 4);
    svg.append(element("text", { x: 0, y: y + 13 }, l.name.slice(0, 24)));
    for (const [start, end, name, merged] of l.segments) {
      const rect = element("rect", { class: "span", x: left + (start / (data.span_us || 1)) * width, y,
        width: Math.max(1, ((end - start) / (data.span_us || 1)) * width), height: lane, fill: COLORS[l.name.startsWith("GPU") ? "kernel" : l.name === "steps" ? "other" : "cpu_exec"] });
      rect.append(element("title", {}, `${name} (${merged} event${merged > 1 ? "s" : ""}, ${ms(end - start)} ms)`));
      svg.append(rect);
    }
  });
  const perfetto = element("button", { id: "perfetto" }, "Open in Perfetto");
  perfetto.addEventListener("click", () => openInPerfetto(run, worker));
  view.replaceChildren(perfetto, element("p", {}, `Lanes are merged on the server to at most a few thousand spans each; Perfetto shows every event.`), svg);
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

async function showDistributed(view, run) {
  const data = await get("distributed", { run });
  view.replaceChildren(
    element("h3", {}, `${data.workers.length} worker(s); slowest: ${data.slowest}`),
    sortableTable("distributed", [["name", "worker"], ["steps", "steps"], ["step_time_us", "step time ms", ms],
      ["computation_us", "computation ms", ms], ["communication_us", "communication ms", ms],
      ["overlap_us", "overlap ms", ms], ["idle_us", "idle ms", ms]], data.workers.map((w) => ({ ...w, name: w.worker }))),
  );
}

async function showModules(view, run, worker) {
  const rows = await get("modules", { run, worker, step: span.value });
  view.replaceChildren(rows.length
    ? sortableTable("modules", [["name", "module"], ["calls", "calls"], ["host_total_us", "host total ms", ms]], rows.map((r) => ({ ...r, name: r.module })))
    : element("p", {}, "No nn.Module events: profile with with_modules=True (with_stack=True in older torch)."));
}

async function showDiff(view, run, worker) {
  const runs = await get("runs");
  const choices = runs.flatMap((r) => r.workers.map((w) => [r.run, w]));
  const other = element("select", { id: "diff-other" }, ...choices.map(([r, w]) => element("option", { value: `${r}\n${w}` }, `${r} / ${w}`)));
  const holder = element("div");
  const draw = async () => {
    holder.replaceChildren(element("p", {}, "Comparing the traces…"));
    const [run2, worker2] = other.value.split("\n");
    const data = await get("diff", { run, worker, run2, worker2 });
    const delta = (v) => `${v >= 0 ? "+" : ""}${ms(v)}`;
    holder.replaceChildren(
      element("h3", {}, `step time ${ms(data.step_time_us.base)} ms → ${ms(data.step_time_us.other)} ms (${delta(data.step_time_us.delta)} ms)`),
      sortableTable("diff-categories", [["name", "category"], ["base", "base ms", ms], ["other", "other ms", ms], ["delta", "change ms", delta]],
        Object.entries(data.categories_us).map(([name, v]) => ({ name, ...v }))),
      sortableTable("diff-operators", [["name", "operator"], ["base_us", "base ms", ms], ["other_us", "other ms", ms], ["delta_us", "change ms", delta]], data.operators),
      sortableTable("diff-kernels", [["name", "kernel"], ["base_us", "base ms", ms], ["other_us", "other ms", ms], ["delta_us", "change ms", delta]], data.kernels),
    );
  };
  other.addEventListener("change", draw);
  view.replaceChildren(element("div", {}, "Compare with ", other), holder);
  if (choices.length) {
    other.selectedIndex = Math.min(1, choices.length - 1);
    await draw();
  }
}

const VIEWS = {
  Overview: showOverview, Operators: showOperators, Kernels: showKernels, Memory: showMemory,
  Timeline: showTimeline, Distributed: showDistributed, Modules: showModules, Diff: showDiff,
};

const span = element("select", { id: "span" }, element("option", { value: "" }, "all steps"));

export async function render() {
  document.head.append(element("style", {}, STYLE));
  const runs = await get("runs");
  const runSelect = element("select", { id: "run" }, ...runs.map((r) => element("option", { value: r.run }, r.run)));
  const workerSelect = element("select", { id: "worker" });
  const tabs = element("div", { class: "tabs" });
  const view = element("div", { id: "view" });
  let current = "Overview";
  const show = async () => {
    for (const button of tabs.children) button.className = button.textContent === current ? "on" : "";
    // Each showing draws into its own box: one that finishes after the user moved on draws unseen.
    const box = element("div", {}, element("p", {}, "Analyzing the trace…"));
    view.replaceChildren(box);
    try {
      await VIEWS[current](box, runSelect.value, workerSelect.value);
    } catch (error) {
      box.replaceChildren(element("p", { class: "error" }, `Could not analyze this trace: ${error.message}`));
    }
  };
  const fillWorkers = () => {
    const run = runs.find((r) => r.run === runSelect.value);
    workerSelect.replaceChildren(...(run ? run.workers : []).map((w) => element("option", { value: w }, w)));
  };
  const fillSpans = async () => {
    const overview = await get("overview", { run: runSelect.value, worker: workerSelect.value }).catch(() => ({ steps: [] }));
    span.replaceChildren(element("option", { value: "" }, "all steps"),
      ...overview.steps.map((s) => element("option", { value: String(s.step) }, `step ${s.step}`)));
  };
  for (const name of Object.keys(VIEWS)) {
    const button = element("button", {}, name);
    button.addEventListener("click", () => { current = name; show(); });
    tabs.append(button);
  }
  runSelect.addEventListener("change", async () => { fillWorkers(); await fillSpans(); show(); });
  workerSelect.addEventListener("change", async () => { await fillSpans(); show(); });
  span.addEventListener("change", show);
  document.body.replaceChildren(element("div", {}, "Run ", runSelect, " Trace ", workerSelect, " Span ", span), tabs, view);
  if (!runs.length) {
    view.replaceChildren(element("p", {}, "No traces yet: profile a run with tbscope.profile(run)."));
    return;
  }
  fillWorkers();
  await fillSpans();
  await show();
}
