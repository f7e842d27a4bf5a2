// Drawing the Timeline on its canvas: lanes, the time axis, the steps, the events coloured by name, the
// launch-to-kernel flows and the selected event. Colours follow the page's theme (read on every draw).

import { ticks } from "../charts.js";
import { COLORS } from "../categories.js";
import { tickLabel, timeUnit } from "../format.js";
import { cssVar } from "../theme.js";
import { AXIS, GAP, LABELS, ROW, STEPS, canvasHeight, xOf as xAt } from "./layout.js";

// Events are coloured by name, from this palette: mid tones that dark text reads on, on a light or a dark
// page alike.
const PALETTE = ["#8fb8de", "#f2b880", "#9ed69e", "#e8a0a0", "#c3aee0", "#c9a89c", "#eeb5da", "#c4c4c4",
  "#d7d77f", "#86d3dd", "#a6c8a0", "#e0c27c"];

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

// Draws the window [state.a, state.b] of ``state.data`` into ``canvas``, the events ``plot`` px wide right of
// the labels, the lanes at ``boxes`` (layout.laneBoxes).
export function drawTimeline(canvas, state, boxes, plot) {
  const data = state.data;
  const xOf = (t) => xAt(state, plot, t);
  const width = plot + LABELS;
  const height = canvasHeight(boxes);
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
  boxes.forEach((l, i) => {
    if (i % 2 === 0) {
      ctx.fillStyle = laneBg;
      ctx.fillRect(0, l.top - GAP / 2, width, l.bottom - l.top + GAP);
    }
  });
  // Time axis: offsets from the trace's start, in the unit the tick spacing reads best in.
  const tickValues = ticks(state.a, state.b, Math.max(2, Math.floor(plot / 110)));
  const [scale, unit] = timeUnit(tickValues.length > 1 ? tickValues[1] - tickValues[0] : state.b - state.a);
  ctx.textAlign = "center";
  for (const t of tickValues) {
    const x = xOf(t);
    ctx.strokeStyle = grid;
    ctx.beginPath(); ctx.moveTo(x, AXIS); ctx.lineTo(x, height); ctx.stroke();
    ctx.fillStyle = fg;
    ctx.fillText(`${tickLabel(t - state.total[0], scale)} ${unit}`, x, 14);
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
    const top = boxes[i].top;
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
  const centre = (lane, depth) => boxes[lane].top + depth * ROW + (ROW - 2) / 2;
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
    const y = boxes[chosen.lane].top + chosen.depth * ROW;
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
}
