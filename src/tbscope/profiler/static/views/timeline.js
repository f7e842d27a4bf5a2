// The Timeline: a canvas of lanes (host threads, device streams), zoomed with the wheel and panned by
// dragging; the server down-samples each window to the pixel. Its parts: timeline/state.js (the window),
// layout.js (where lanes and events lie), draw.js (the canvas), input.js (mouse and keys).

import { el } from "../charts.js";
import { get, route } from "../fetch.js";
import { duration } from "../format.js";
import { themeListeners } from "../theme.js";
import { drawTimeline } from "../timeline/draw.js";
import { listen } from "../timeline/input.js";
import { laneBoxes, plotWidth } from "../timeline/layout.js";
import { moveWindow, needsData, timelineState } from "../timeline/state.js";

export async function showTimeline(view, { run, worker, step }) {
  const first = await get("timeline", { run, worker, px: 1500 });
  const state = timelineState(first, step);
  const canvas = el("canvas", { id: "timeline", role: "img", "aria-label": `Timeline of ${worker}: host threads and device streams over time` });
  const labels = el("div", { class: "lanes", id: "timeline-lanes" });
  const tip = el("div", { class: "tip", id: "timeline-tip" });
  const box = el("div", { class: "timeline" }, canvas, labels, tip);
  const details = el("div", { id: "event-details" }, el("span", { class: "muted" }, "Click an event to see its details."));
  const perfetto = el("button", { id: "perfetto", title: "Perfetto runs in another browser tab, at ui.perfetto.dev" }, "Open in Perfetto");
  perfetto.addEventListener("click", () => openInPerfetto(run, worker));
  const reset = el("button", { id: "timeline-reset" }, "Show all");
  const windowText = el("span", { class: "muted", id: "timeline-window" });
  view.replaceChildren(
    el("div", { class: "toolbar" }, reset, perfetto, windowText,
      el("span", { class: "muted" }, "wheel or W/S: zoom · drag or A/D: pan · click: details")),
    box, details);

  const timeline = { canvas, box, tip, state, boxes: laneBoxes(state.data.lanes) };
  const draw = () => {
    drawTimeline(canvas, state, timeline.boxes, plotWidth(box));
    windowText.textContent = `showing ${duration(state.b - state.a)} from ${duration(state.a - state.total[0])}`;
  };
  const placeLabels = () => {
    labels.replaceChildren(...state.data.lanes.map((lane, i) => el("div", {
      style: `top:${timeline.boxes[i].top}px`, title: lane.name, "data-lane": lane.name,
    }, lane.name)));
  };

  // Fetch what the window shows, with a window on each side to pan into, at a pixel's resolution.
  let timer = null;
  const refetch = () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const seq = ++state.seq;
      const width = state.b - state.a;
      const data = await get("timeline", { run, worker, start_us: state.a - width, end_us: state.b + width, px: plotWidth(box) * 3 });
      if (seq !== state.seq) return;
      state.data = data;
      timeline.boxes = laneBoxes(data.lanes);
      placeLabels();
      draw();
    }, 120);
  };
  const moveTo = (a, b) => {
    moveWindow(state, a, b);
    draw();
    if (needsData(state)) refetch();
  };

  const showDetails = async (id, merged) => {
    const event = await get("event", { run, worker, id });
    state.selected = event;
    draw();
    const rows = [["kind", event.kind], ["lane", event.lane_name ?? "-"], ["start", `${duration(event.start_us - state.total[0])} from trace start`],
      ["duration", duration(event.duration_us)], ["step", event.step ?? "-"]];
    for (const [key, value] of Object.entries(event.args)) rows.push([key, typeof value === "object" ? JSON.stringify(value) : String(value)]);
    const table = el("table", { id: "event-args" }, ...rows.map(([k, v]) => el("tr", {}, el("td", { class: "muted" }, k), el("td", {}, String(v)))));
    const links = [];
    for (const [key, label] of [["launched_by", "launched by"], ["launches", "launches"]]) {
      const other = event[key];
      if (!other) continue;
      const link = el("button", { class: "link" }, other.name);
      link.addEventListener("click", () => {
        const lo = Math.min(other.start_us, event.start_us), hi = Math.max(other.end_us, event.end_us);
        const pad = (hi - lo) * 0.3 + 10;
        moveTo(lo - pad, hi + pad);
        showDetails(other.id, 1);
      });
      links.push(el("div", {}, `${label}: `, link, ` (${duration(other.end_us - other.start_us)})`));
    }
    const note = merged > 1 ? [el("div", { class: "muted" }, `${merged} events narrower than a pixel are drawn here as one; this is the longest. Zoom in to see each.`)] : [];
    details.replaceChildren(el("div", { class: "title" }, event.name), ...note, ...links, table);
  };

  const select = (ev) => {
    if (!ev) {
      state.selected = null;
      draw();
      details.replaceChildren(el("span", { class: "muted" }, "Click an event to see its details."));
      return;
    }
    showDetails(ev[4], ev[5]).catch((error) => details.replaceChildren(el("span", { class: "error" }, error.message)));
  };

  listen(timeline, moveTo, select);
  reset.addEventListener("click", () => moveTo(state.total[0], state.total[1]));
  themeListeners.add(draw);
  const resized = new ResizeObserver(() => (box.isConnected ? draw() : resized.disconnect()));
  resized.observe(box);
  placeLabels();
  draw();
  if (step) refetch();
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
