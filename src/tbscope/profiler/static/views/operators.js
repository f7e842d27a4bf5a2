// Operators: the top operators by self time, and every operator's calls, times and where it was called from.

import { el } from "../charts.js";
import { barChart } from "../bars.js";
import { get } from "../fetch.js";
import { ms } from "../format.js";
import { searchBox, sortableTable } from "../tables.js";

// Where an operator was called from: the innermost frame of the user's own code, file:line.

function frames(stack) {
  if (!stack) return [];
  const list = Array.isArray(stack) ? stack : String(stack).split(" <- ");
  return list.map((f) => String(f).trim()).filter((f) => f && !/^0x[0-9a-f]+$/i.test(f));
}

function frameText(frame) {
  // torch writes "path/to/file.py(42): function", and "<built-in method conv2d of type object at 0x7f...>"
  const builtin = /^<built-in (?:method|function) (\S+)/.exec(frame);
  if (builtin) return `${builtin[1]} (built-in)`;
  const match = /^(.*)\((\d+)\):\s*(.*)$/.exec(frame);
  if (!match) return frame.replace(/ at 0x[0-9a-f]+/gi, "");
  const file = match[1].split("/").slice(-2).join("/");
  return `${file}:${match[2]} ${match[3]}`;
}

// The innermost frame of the user's own code; else the innermost Python frame of a library.
function calledFrom(stack) {
  const python = frames(stack).filter((f) => /\.py\(\d+\)/.test(f));
  const library = /(^|\/)(torch|site-packages|dist-packages|lightning|pytorch_lightning)\//;
  const own = python.find((f) => !library.test(f)) || python[0];
  return own ? frameText(own) : "-";
}

const stackTitle = (stack) => frames(stack).map(frameText).join("\n");

const opColumns = [["name", "operator"], ["input_shapes", "input shapes"], ["calls", "calls"],
  ["device_self_us", "device self ms", ms], ["device_total_us", "device total ms", ms],
  ["host_self_us", "host self ms", ms], ["host_total_us", "host total ms", ms],
  ["call_stack", "called from", (v, row) => row.called_from || calledFrom(v), (v) => stackTitle(v)]];

export async function showOperators(view, { run, worker, step, search = "" }) {
  const byShapes = el("input", { type: "checkbox", id: "by-shapes" });
  const holder = el("div");
  const query = searchBox("operator-search", "search operators", () => fill());
  query.value = search;
  let rows = [];
  const fill = () => {
    if (!rows.length) {
      holder.replaceChildren(el("p", { id: "operators-empty" }, "No operators in this trace (or this step): torch records them with the CPU activity."));
      return;
    }
    const text = query.value.trim().toLowerCase();
    const shown = rows.filter((r) => !text || r.name.toLowerCase().includes(text));
    const device = rows.some((r) => r.device_self_us > 0);
    const key = device ? "device_self_us" : "host_self_us";
    const stacks = rows.some((r) => (Array.isArray(r.call_stack) ? r.call_stack.length : r.call_stack));
    holder.replaceChildren(
      el("h4", {}, `Top operators by ${device ? "device" : "host"} self time`),
      barChart("operator-bars", [...shown].sort((a, b) => b[key] - a[key]), key,
        (r) => (r.input_shapes ? `${r.name} ${r.input_shapes}` : r.name), (v) => `${ms(v)} ms`),
      el("p", { class: "muted" }, `${shown.length} of ${rows.length} rows`),
      sortableTable("operators", opColumns.filter(([k]) => (k !== "input_shapes" || byShapes.checked) && (k !== "call_stack" || stacks)), shown),
    );
  };
  const draw = async () => {
    rows = await get("operators", { run, worker, step, group_by: byShapes.checked ? "shapes" : "name" });
    fill();
  };
  byShapes.addEventListener("change", draw);
  view.replaceChildren(el("div", { class: "toolbar" }, query, el("label", {}, byShapes, " group by input shapes")), holder);
  await draw();
}
