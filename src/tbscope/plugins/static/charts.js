// Charts shared by the tabs and the offline report: an element helper, number formatting, axis ticks, and a
// line chart with bands, hover and drag-to-zoom. No library, nothing fetched, no import (the report inlines it).

const SVG = "http://www.w3.org/2000/svg";
const SVG_TAGS = new Set(["svg", "path", "line", "rect", "text", "g", "polyline", "polygon", "circle", "title"]);

// An HTML or SVG element: attributes, "on<event>" listeners, children (nested arrays are flattened).
export function el(tag, attrs = {}, ...children) {
  const node = SVG_TAGS.has(tag) ? document.createElementNS(SVG, tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null) node.setAttribute(k, v);
  }
  for (const child of children.flat()) if (child !== null && child !== undefined) node.append(child);
  return node;
}

// A number as a person reads it: four significant digits, exponents for the very large or small, "-" for none.
export const fmt = (v) => (v === null || v === undefined || Number.isNaN(v) ? "-"
  : Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(3) : Number(v.toPrecision(4)).toString());

// The bands a group's mean line can be drawn with, by name, as the band controls offer them.
export const BANDS = { ci: "95% CI", std: "mean ± std", sem: "mean ± sem", minmax: "min–max" };

// A group's line's band ``band`` (a key of BANDS) as [low, high] arrays, from the line's arrays of mean, std,
// sem, ci_low, ci_high, min and max (null or NaN where a step has none).
export function bandOf(line, band) {
  if (band === "ci") return [line.ci_low, line.ci_high];
  if (band === "minmax") return [line.min, line.max];
  const spread = line[band];
  const side = (sign) => line.mean.map((m, i) => (m === null || spread[i] === null ? null : m + sign * spread[i]));
  return [side(-1), side(1)];
}

// The i-th series' colour (a group's, a run's): ten that tell apart on a light or a dark page, in turn.
const SERIES_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
  "#bcbd22", "#17becf"];
export const seriesColor = (i) => SERIES_COLORS[i % SERIES_COLORS.length];

// A share (0 to 1) as a percentage, "-" for none.
export const pct = (v) => (v === null || v === undefined ? "-" : `${(100 * v).toFixed(1)}%`);

// About ``count`` round values (1, 2 or 5 times a power of ten) covering [lo, hi]; 0 is exactly 0.
export function ticks(lo, hi, count = 5) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) || power * 10;
  // Rounded to the step's decimals: 0.3, not 0.30000000000000004 (a step of 1 or more is whole already).
  const digits = Math.min(100, Math.max(0, -Math.floor(Math.log10(step))));
  const first = Math.ceil(lo / step) * step;
  const out = [];
  for (let i = 0, v = first; v <= hi + step * 1e-9; i++, v = first + i * step) out.push(digits ? Number(v.toFixed(digits)) : v);
  return out;
}

// Ticks from 0 up to a round value at or above ``top``: a chart's highest point never sits above its last tick.
export function upTo(top, count = 5) {
  const out = ticks(0, top, count);
  const step = out.length > 1 ? out[1] - out[0] : top || 1;
  while (out[out.length - 1] < top) out.push(out[out.length - 1] + step);
  return out;
}

const finite = (v) => v !== null && v !== undefined && Number.isFinite(v);

// A line chart: series are {name, color, x: [], y: [], low?: [], high?: [], n?: []} (null or NaN where a series
// has no value). Bands are drawn first and every line on top, so a wide band never hides another series; a
// series of three points or fewer gets dots (and its band as error bars). Hover shows each series' value,
// band and n at the nearest x; a drag zooms, a double-click resets. Options: xLabel ("step"), legend (true).
export function lineChart(title, series, options = {}) {
  const xLabel = options.xLabel || "step";
  const box = el("div", { class: "card chart", "data-tag": title });
  const svg = el("svg", { viewBox: "0 0 460 260", preserveAspectRatio: "none", role: "img", "aria-label": title });
  const tip = el("div", { class: "tip" });
  box.append(el("div", { class: "title", title }, title), svg, tip);
  if (options.legend !== false) {
    const legend = el("div", { class: "legend" }, series.slice(0, 30).map((s) => el("span", {}, el("i", { style: `background:${s.color}` }), s.name)));
    if (series.length > 30) legend.append(el("span", { class: "muted" }, `and ${series.length - 30} more`));
    box.append(legend);
  }
  const all = series.flatMap((s) => s.x);
  const full = [Math.min(...all), Math.max(...all)];
  if (full[0] === full[1]) { full[0] -= 1; full[1] += 1; }  // one step: room around its points
  let view = full.slice();
  const L = 56, R = 10, T = 8, B = 24, W = 460, H = 260;
  function draw() {
    svg.replaceChildren();
    const inX = (s, i) => s.x[i] >= view[0] && s.x[i] <= view[1];
    let lo = Infinity, hi = -Infinity;
    for (const s of series) for (let i = 0; i < s.x.length; i++) if (inX(s, i)) {
      for (const v of [s.y[i], s.low ? s.low[i] : NaN, s.high ? s.high[i] : NaN]) if (finite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    }
    if (!Number.isFinite(lo)) { lo = 0; hi = 1; }
    if (hi === lo) { hi += Math.abs(hi) * 0.05 || 1; lo -= Math.abs(lo) * 0.05 || 1; }
    const pad = (hi - lo) * 0.05; lo -= pad; hi += pad;
    const sx = (x) => L + ((x - view[0]) / (view[1] - view[0] || 1)) * (W - L - R);
    const sy = (y) => T + (1 - (y - lo) / (hi - lo)) * (H - T - B);
    for (const t of ticks(lo, hi)) {
      svg.append(el("line", { x1: L, x2: W - R, y1: sy(t), y2: sy(t), stroke: "var(--line)", "stroke-width": 0.5 }),
        el("text", { x: L - 4, y: sy(t) + 3, "text-anchor": "end", "font-size": 10, fill: "var(--muted)" }, fmt(t)));
    }
    for (const t of ticks(view[0], view[1])) {
      if ((xLabel === "step" && !Number.isInteger(t)) || sx(t) > W - R - 34) continue;  // whole steps; room for the axis name
      svg.append(el("text", { x: sx(t), y: H - 6, "text-anchor": "middle", "font-size": 10, fill: "var(--muted)" }, fmt(t)));
    }
    svg.append(el("text", { x: W - R, y: H - 6, "text-anchor": "end", "font-size": 10, fill: "var(--muted)" }, xLabel));
    const lines = [];
    for (const s of series) {
      const idx = s.x.map((_, i) => i).filter((i) => inX(s, i));
      const banded = s.low && s.high ? idx.filter((i) => finite(s.low[i]) && finite(s.high[i])) : [];
      if (banded.length > 1) {
        const up = banded.map((i) => `${sx(s.x[i]).toFixed(1)},${sy(s.high[i]).toFixed(1)}`);
        const down = banded.slice().reverse().map((i) => `${sx(s.x[i]).toFixed(1)},${sy(s.low[i]).toFixed(1)}`);
        svg.append(el("polygon", { points: [...up, ...down].join(" "), fill: s.color, "fill-opacity": 0.2, class: "band", "data-group": s.name }));
      }
      const shown = idx.filter((i) => finite(s.y[i]));
      if (shown.length > 1) {
        lines.push(el("polyline", { points: shown.map((i) => `${sx(s.x[i]).toFixed(1)},${sy(s.y[i]).toFixed(1)}`).join(" "),
          fill: "none", stroke: s.color, "stroke-width": s.width || 1.5, class: "line mean", "data-group": s.name }));
      }
      if (shown.length <= 3) {  // a point or few: a dot each, the band as an error bar
        for (const i of shown) {
          if (s.low && finite(s.low[i]) && finite(s.high[i])) {
            svg.append(el("line", { x1: sx(s.x[i]), x2: sx(s.x[i]), y1: sy(s.low[i]), y2: sy(s.high[i]), stroke: s.color, "stroke-width": 6, "stroke-opacity": 0.3, class: "band" }));
          }
          lines.push(el("circle", { cx: sx(s.x[i]), cy: sy(s.y[i]), r: 3.5, fill: s.color, class: "line" }));
        }
      }
    }
    svg.append(...lines);
    const cursor = el("line", { y1: T, y2: H - B, stroke: "var(--muted)", "stroke-dasharray": "3,3", visibility: "hidden" });
    const sel = el("rect", { y: T, height: H - T - B, fill: "var(--accent, #e8710a)", "fill-opacity": 0.15, visibility: "hidden" });
    const hit = el("rect", { x: L, y: T, width: W - L - R, height: H - T - B, fill: "transparent" });
    svg.append(cursor, sel, hit);
    const toX = (evt) => { const r = svg.getBoundingClientRect(); return ((evt.clientX - r.left) / r.width) * W; };
    const fromPx = (px) => view[0] + ((px - L) / (W - L - R)) * (view[1] - view[0]);
    let dragFrom = null;
    hit.onmousedown = (evt) => { dragFrom = toX(evt); };
    hit.onmousemove = (evt) => {
      const px = toX(evt);
      const x = fromPx(px);
      cursor.setAttribute("x1", px); cursor.setAttribute("x2", px); cursor.setAttribute("visibility", "visible");
      if (dragFrom !== null) {
        sel.setAttribute("x", Math.min(dragFrom, px)); sel.setAttribute("width", Math.abs(px - dragFrom)); sel.setAttribute("visibility", "visible");
      }
      const rows = [];
      for (const s of series.slice(0, 12)) {
        let best = -1;
        for (let i = 0; i < s.x.length; i++) if (best < 0 || Math.abs(s.x[i] - x) < Math.abs(s.x[best] - x)) best = i;
        if (best < 0) continue;
        const band = s.low ? ` [${fmt(s.low[best])}, ${fmt(s.high[best])}]` : "";
        const n = s.n ? ` n=${s.n[best]}` : "";
        rows.push(el("div", {}, el("b", { style: `color:${s.color}` }, "■ "), `${s.name}: ${fmt(s.y[best])}${band}${n} @ ${s.x[best]}`));
      }
      tip.replaceChildren(...rows);
      tip.style.display = "block";
      const r = svg.getBoundingClientRect();
      const left = evt.clientX - box.getBoundingClientRect().left + 14;
      tip.style.left = `${Math.max(0, Math.min(left, r.width - tip.offsetWidth + 10))}px`;
      tip.style.top = `${evt.clientY - box.getBoundingClientRect().top + 14}px`;
    };
    hit.onmouseleave = () => { tip.style.display = "none"; cursor.setAttribute("visibility", "hidden"); };
    hit.onmouseup = (evt) => {
      const px = toX(evt);
      if (dragFrom !== null && Math.abs(px - dragFrom) > 6) {
        view = [fromPx(Math.min(px, dragFrom)), fromPx(Math.max(px, dragFrom))];
        draw();
      }
      dragFrom = null;
      sel.setAttribute("visibility", "hidden");
    };
    hit.ondblclick = () => { view = full.slice(); draw(); };
  }
  draw();
  box.append(el("div", { class: "note" }, "drag to zoom, double-click to reset"));
  return box;
}
