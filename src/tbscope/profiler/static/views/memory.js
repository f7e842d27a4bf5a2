// Memory: per device, the allocated and reserved bytes over time as step-shaped curves, with ticks in fitting
// units, step markers and drag to zoom; the operators that allocated most, and what was never freed.

import { el, ticks, upTo } from "../charts.js";
import { get } from "../fetch.js";
import { byteUnit, bytes, duration, stepLabel, tickLabel, timeUnit } from "../format.js";
import { sortableTable } from "../tables.js";

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
  const svg = el("svg", { id, width: left + width + right, height: top + height + bottom });
  const axis = el("g", { class: "axis" });
  for (const v of yTicks) {
    svg.append(el("line", { class: "grid", x1: left, x2: left + width, y1: y(v), y2: y(v) }));
    axis.append(el("text", { class: "tick y", x: left - 6, y: y(v) + 4, "text-anchor": "end" }, `${tickLabel(v, bScale)} ${bUnit}`));
  }
  for (const t of xTicks) {
    axis.append(el("line", { x1: x(t), x2: x(t), y1: y(0), y2: y(0) + 4 }));
    axis.append(el("text", { class: "tick x", x: x(t), y: y(0) + 16, "text-anchor": "middle" }, tickLabel(t - t0, tScale)));
  }
  axis.append(el("text", { x: left + width / 2, y: y(0) + 34, "text-anchor": "middle" },
    `time (${tUnit}) from ${duration(t0)} into the trace`));
  axis.append(el("line", { x1: left, x2: left + width, y1: y(0), y2: y(0) }), el("line", { x1: left, x2: left, y1: top, y2: y(0) }));
  for (const s of steps) {
    // Memory events are on the host's clock: a step is marked where the host ran it (its ProfilerStep
    // annotation), not where its device work ended, which may be steps later when the host runs ahead.
    const start = s.host_start_us ?? s.start_us, end = s.host_end_us ?? s.end_us;
    if (start === undefined || start > t1 || end < t0) continue;
    // A step already under way where the chart starts is named at its left edge, without a line.
    if (start >= t0) svg.append(el("line", { class: "marker", x1: x(start), x2: x(start), y1: top, y2: y(0) }));
    svg.append(el("text", { class: "step-marker", x: x(Math.max(start, t0)) + 3, y: top + 10 }, `step ${stepLabel(s)}`));
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
    svg.append(el("path", { d, fill: "none", stroke: color, "stroke-width": 1.5, "data-series": label }));
  }
  svg.append(axis);
  // Drag across the chart to zoom into that span.
  const band = el("rect", { x: 0, y: top, width: 0, height, fill: "rgba(128,128,128,0.25)", visibility: "hidden" });
  svg.append(band);
  let from = null;
  const at = (event) => event.clientX - svg.getBoundingClientRect().left;
  svg.addEventListener("mousedown", (event) => { from = at(event); band.setAttribute("visibility", "visible"); });
  // Hovering reads both curves at the pointer's time: the values hold from one event to the next.
  const cursor = el("line", { class: "marker", y1: top, y2: y(0), visibility: "hidden" });
  const readout = el("text", { class: "readout", y: top + 24, visibility: "hidden" });
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

export async function showMemory(view, { run, worker, step, stepText }) {
  const [data, overview] = await Promise.all([
    get("memory", { run, worker, step }),
    get("overview", { run, worker }).catch(() => ({ steps: [] })),
  ]);
  const charts = el("div");
  let zoom = null;
  const drawCharts = () => {
    const parts = [];
    // GPUs first; every chart over the same span, so that their time axes line up.
    const devices = Object.entries(data.devices).sort(([a], [b]) => (a === "cpu") - (b === "cpu") || a.localeCompare(b));
    for (const [device, d] of devices) {
      const capacity = d.capacity ? ` of ${bytes(d.capacity)}` : "";
      parts.push(el("h3", {}, `${device}: peak allocated ${bytes(d.peak_allocated)}, peak reserved ${bytes(d.peak_reserved)}${capacity}`));
      parts.push(memoryChart(`memory-${device.replace(/[^a-z0-9]/gi, "-")}`, d.curve, overview.steps, (w) => { zoom = w; drawCharts(); }, zoom || data.window_us));
    }
    const reset = el("button", { id: "memory-reset" }, "Reset zoom");
    reset.addEventListener("click", () => { zoom = null; drawCharts(); });
    const legend = el("div", { class: "legend", id: "memory-legend" },
      el("span", {}, el("i", { style: "background:#1f77b4" }), "allocated (tensors in use)"),
      el("span", {}, el("i", { style: "background:#ff7f0e" }), "reserved (held by the caching allocator)"));
    charts.replaceChildren(...(parts.length ? [el("div", { class: "toolbar" }, legend, reset,
      el("span", { class: "muted" }, "drag across a chart to zoom")), ...parts]
      : [el("p", {}, "No memory events in this trace: profile with profile_memory=True (tbscope.profile records them by default).")]));
  };
  drawCharts();
  const windowUs = data.window_us;
  const over = step ? `step ${stepText.replace("step ", "")}`
    : windowUs ? `the whole trace (${duration(windowUs[1] - windowUs[0])})` : "the whole trace";
  const parts = [charts,
    el("h3", {}, "Allocations by operator"),
    el("p", { class: "muted", id: "allocations-span" }, `Bytes allocated by each operator, summed over ${over}; frees are not subtracted.`),
    sortableTable("allocators", [["name", "operator"], ["allocated_bytes", "allocated", bytes], ["allocations", "allocations"]], data.top_operators),
  ];
  if (data.never_freed) {
    parts.push(el("h3", {}, "Never freed in the window"),
      el("p", { class: "muted" }, `Allocations with no free before ${step ? "the step" : "the trace"} ends, largest first: a leak's suspects (or tensors kept across steps on purpose).`),
      data.never_freed.length
        ? sortableTable("never-freed", [["name", "operator"], ["bytes", "size", bytes], ["time_us", "allocated at", (v) => duration(v)], ["device", "device"]],
          data.never_freed.map((r) => ({ ...r, name: r.name || r.operator })))
        : el("p", {}, "Every allocation in the window was freed."));
  }
  view.replaceChildren(...parts);
}
