// Horizontal bars: the top rows of a table by one column (the Operators and Kernels views).

import { el } from "./charts.js";
import { COLORS } from "./categories.js";
import { shortName } from "./format.js";

export function barChart(id, rows, value, label, format) {
  const shown = rows.filter((r) => r[value] > 0).slice(0, 10);
  const width = 420, row = 20, left = 300;
  const most = Math.max(...shown.map((r) => r[value]), 1);
  const svg = el("svg", { id, class: "bars", width: left + width + 80, height: shown.length * row + 26 });
  shown.forEach((r, i) => {
    const name = label(r);
    const text = el("text", { x: left - 6, y: i * row + 14, "text-anchor": "end" }, shortName(name));
    text.append(el("title", {}, name));
    const w = (r[value] / most) * width;
    svg.append(text, el("rect", { x: left, y: i * row + 3, width: Math.max(w, 1), height: row - 6, fill: COLORS.kernel }),
      el("text", { x: left + w + 4, y: i * row + 14 }, format(r[value])));
  });
  if (!shown.length) svg.append(el("text", { x: 0, y: 14 }, "nothing to chart"));
  return svg;
}
