// Distributed: per rank, its mean step split into computation, communication not overlapped and idle; per
// collective, its calls, size and time on each rank.

import { el, pct, upTo } from "../charts.js";
import { COLORS } from "../categories.js";
import { get } from "../fetch.js";
import { bytes, ms, tickLabel, timeUnit } from "../format.js";
import { sortableTable } from "../tables.js";

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
  const svg = el("svg", { id: "rank-bars", width: left + width + 40, height: workers.length * row + 50 });
  const series = [["computation", COLORS.kernel, (w) => w.computation], ["communication", COLORS.communication, (w) => (w.communication ?? 0) - (w.overlap ?? 0)],
    ["idle", COLORS.other, (w) => w.idle]];
  workers.forEach((w, i) => {
    const label = el("text", { x: left - 6, y: i * row + 15, "text-anchor": "end" }, w.name.length > chars ? `${w.name.slice(0, chars - 1)}…` : w.name);
    label.append(el("title", {}, w.name));
    svg.append(label);
    let at = 0;
    for (const [label, color, value] of series) {
      const us = Math.max(value(w) || 0, 0);
      const rect = el("rect", { x: x(at), y: i * row + 3, width: Math.max(x(at + us) - x(at), 0), height: row - 6, fill: color });
      rect.append(el("title", {}, `${w.name} ${label}: ${ms(us)} ms a step`));
      svg.append(rect);
      at += us;
    }
  });
  const axis = el("g", { class: "axis" });
  const base = workers.length * row + 4;
  axis.append(el("line", { x1: left, x2: left + width, y1: base, y2: base }));
  for (const t of xTicks) {
    axis.append(el("line", { x1: x(t), x2: x(t), y1: base, y2: base + 4 }),
      el("text", { class: "tick", x: x(t), y: base + 16, "text-anchor": "middle" }, tickLabel(t, scale)));
  }
  axis.append(el("text", { x: left + width / 2, y: base + 32, "text-anchor": "middle" }, `mean step (${unit})`));
  svg.append(axis);
  const legend = el("div", { class: "legend" }, ...series.map(([label, color]) =>
    el("span", {}, el("i", { style: `background:${color}` }), label === "communication" ? "communication not overlapped" : label === "idle" ? "device idle" : label)));
  return el("div", {}, svg, legend);
}

export async function showDistributed(view, { run }) {
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
    el("h3", { id: "distributed-headline" }, headline),
    rankBars(workers),
    el("h4", {}, "Per rank, per step"),
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
    parts.push(el("h4", {}, "Per collective"),
      rows.length
        ? sortableTable("collectives", [["name", "collective"], ["calls", "calls"], ["bytes", "size", bytes], ["total_us", "total ms", ms],
          ["mean_us", "mean ms", ms], ...ranks.map((r) => [`rank:${r}`, `${r} total ms`, ms])], rows)
        : el("p", { class: "muted" }, "No collectives in these traces."));
  }
  view.replaceChildren(...parts);
}
