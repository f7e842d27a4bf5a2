// Kernels: the top kernels by total time, and every kernel's calls, times, occupancy and tensor-core use.

import { el } from "../charts.js";
import { barChart } from "../bars.js";
import { get } from "../fetch.js";
import { ms } from "../format.js";
import { searchBox, sortableTable } from "../tables.js";

export async function showKernels(view, { run, worker, step, search = "" }) {
  const byOperator = el("input", { type: "checkbox", id: "by-operator" });
  const holder = el("div");
  const query = searchBox("kernel-search", "search kernels or operators", () => fill());
  query.value = search;
  let rows = [];
  const num = (digits) => (v) => v.toFixed(digits);
  const fill = () => {
    if (!rows.length) {
      holder.replaceChildren(el("p", { id: "kernels-empty" }, "No kernels in this trace: it was recorded without GPU activity (CUDA or ROCm)."));
      return;
    }
    const text = query.value.trim().toLowerCase();
    const shown = rows.filter((r) => !text || r.name.toLowerCase().includes(text) || (r.operator || "").toLowerCase().includes(text));
    const columns = [["operator", "operator"], ["name", "kernel"], ["calls", "calls"], ["total_us", "total ms", ms],
      ["mean_us", "mean µs", num(1)], ["min_us", "min µs", num(1)], ["max_us", "max µs", num(1)],
      ["blocks_per_sm", "blocks/SM", num(2)], ["occupancy_pct", "occupancy", (v) => `${v.toFixed(1)}%`],
      ["tensor_cores", "tensor cores", (v) => (v ? "yes" : "no")]];
    holder.replaceChildren(
      el("h4", {}, "Top kernels by total time"),
      barChart("kernel-bars", [...shown].sort((a, b) => b.total_us - a.total_us), "total_us",
        (r) => (r.operator ? `${r.operator} › ${r.name}` : r.name), (v) => `${ms(v)} ms`),
      el("p", { class: "muted" }, `${shown.length} of ${rows.length} rows`),
      sortableTable("kernels", columns.filter(([k]) => k !== "operator" || byOperator.checked), shown, { text: ["operator"] }),
    );
  };
  const draw = async () => {
    rows = await get("kernels", { run, worker, step, group_by: byOperator.checked ? "operator" : "" });
    if (byOperator.checked && rows.length && !("operator" in rows[0])) {
      holder.replaceChildren(el("p", { class: "error" }, "This server cannot group kernels by operator."));
      return;
    }
    fill();
  };
  byOperator.addEventListener("change", draw);
  view.replaceChildren(el("div", { class: "toolbar" }, query, el("label", {}, byOperator, " group by operator")), holder);
  await draw();
}
