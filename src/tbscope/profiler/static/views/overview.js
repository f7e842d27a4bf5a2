// The Overview: the run's configuration, a card per GPU, the step time chart split by category, and advice.

import { el, pct, upTo } from "../charts.js";
import { CATEGORIES, COLORS } from "../categories.js";
import { get } from "../fetch.js";
import { bytes, ms, shortName, stepLabel, tickLabel, timeUnit } from "../format.js";
import { sortableTable } from "../tables.js";

// A vertical bar chart of stacked segments, with y ticks in a fitting time unit.
function stepChart(overview) {
  const steps = overview.steps;
  const plot = Math.max(360, steps.length * 56), height = 220, left = 64, bottom = 40, top = 10;
  const longest = Math.max(...steps.map((s) => s.duration_us), 1);
  const yTicks = upTo(longest, 5);
  const yMax = yTicks[yTicks.length - 1];
  const [scale, unit] = timeUnit(yMax);
  const y = (us) => top + height - (us / yMax) * height;
  const svg = el("svg", { id: "step-chart", width: plot + left + 10, height: top + height + bottom });
  const axis = el("g", { class: "axis" });
  for (const t of yTicks) {
    svg.append(el("line", { class: "grid", x1: left, x2: left + plot, y1: y(t), y2: y(t) }));
    axis.append(el("line", { x1: left - 4, x2: left, y1: y(t), y2: y(t) }));
    axis.append(el("text", { class: "tick", x: left - 6, y: y(t) + 4, "text-anchor": "end" }, tickLabel(t, scale)));
  }
  axis.append(el("text", { x: 12, y: top + height / 2, transform: `rotate(-90 12 ${top + height / 2})`, "text-anchor": "middle" }, `step time (${unit})`));
  axis.append(el("line", { x1: left, x2: left + plot, y1: y(0), y2: y(0) }));
  axis.append(el("line", { x1: left, x2: left, y1: top, y2: y(0) }));
  const bar = Math.min(40, (plot / Math.max(steps.length, 1)) * 0.7);
  steps.forEach((step, i) => {
    const x = left + (i + 0.5) * (plot / steps.length) - bar / 2;
    let stacked = 0;
    const label = stepLabel(step);
    for (const category of CATEGORIES) {
      const us = step.breakdown_us[category];
      const rect = el("rect", {
        class: "segment", x, y: y(stacked + us), width: bar, height: Math.max(y(stacked) - y(stacked + us), 0), fill: COLORS[category],
        "data-step": step.step, "data-category": category, "data-us": us,
      });
      rect.append(el("title", {}, `step ${label} ${category}: ${ms(us)} ms`));
      svg.append(rect);
      stacked += us;
    }
    axis.append(el("text", { class: "step-label", x: x + bar / 2, y: y(0) + 16, "text-anchor": "middle" }, label));
  });
  const known = steps.some((s) => s.training_step !== null && s.training_step !== undefined);
  axis.append(el("text", { x: left + plot / 2, y: y(0) + 34, "text-anchor": "middle" },
    known ? "training step" : "profiler step (ProfilerStep#)"));
  svg.append(axis);
  return svg;
}

function recommendation(item, show) {
  if (typeof item === "string") return el("div", { class: "advice" }, item);
  const box = el("div", { class: "advice" }, item.text);
  if (item.figure && item.figure.name) {
    const { name, value, unit } = item.figure;
    const shown = unit === "share" ? pct(value) : unit === "count" ? String(Math.round(value)) : `${value}${unit ? ` ${unit}` : ""}`;
    box.append(el("span", { class: "muted figure" }, ` (${name}: ${shown})`));
  }
  const links = (item.events || []).map((e) => {
    const link = el("button", { class: "link", title: `show ${e.name} in ${e.view}` }, shortName(e.name, 60));
    link.addEventListener("click", () => show(e.view === "kernels" ? "Kernels" : "Operators", e.name));
    return link;
  });
  if (links.length) {
    const line = el("div", {}, "Based on: ");
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
  const list = el("dl");
  for (const [label, value] of pairs) list.append(el("dt", {}, label), el("dd", {}, value ?? "-"));
  return el("div", { class: "card" }, el("h4", {}, title), list);
}

export async function showOverview(view, { run, worker, show }) {
  const overview = await get("overview", { run, worker });
  const totals = Object.fromEntries(CATEGORIES.map((c) => [c, 0]));
  let all = 0;
  for (const step of overview.steps) {
    all += step.duration_us;
    for (const c of CATEGORIES) totals[c] += step.breakdown_us[c];
  }
  const n = Math.max(overview.steps.length, 1);
  const legend = el("div", { class: "legend" }, ...CATEGORIES.map((c) =>
    el("span", {}, el("i", { style: `background:${COLORS[c]}` }), c)));
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
      : [["GPU idle (as HTA counts it)", el("span", { id: "gpu-idle", title: IDLE_RULE }, pct(overview.gpu_idle_share))]]),
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
    el("div", { class: "cards", id: "summary" }, configuration, ...gpuCards),
    el("h3", {}, `Step time · ${overview.steps.length} steps · average ${ms(all / n)} ms`),
    stepChart(overview), legend,
    sortableTable("averages", [["name", "category"], ["ms", "average ms", ms], ["share", "share", pct]],
      CATEGORIES.map((c) => ({ name: c, ms: totals[c] / n, share: all ? totals[c] / all : 0 }))),
    el("h3", {}, "Recommendations"),
    ...(overview.recommendations.length ? overview.recommendations.map((item) => recommendation(item, show)) : [el("p", { class: "muted" }, "Nothing stands out.")]),
    ...overview.notes.map((text) => el("div", { class: "error" }, text)),
  );
}
