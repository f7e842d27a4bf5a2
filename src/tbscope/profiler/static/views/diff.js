// Diff: two traces, or two steps, side by side: the step time, then categories, operators and kernels by
// how much they changed, drilled into with a click.

import { el } from "../charts.js";
import { get } from "../fetch.js";
import { ms, stepLabel } from "../format.js";
import { sortableTable } from "../tables.js";

export async function showDiff(view, { run, worker }) {
  const runs = await get("runs");
  const choices = runs.flatMap((r) => r.workers.map((w) => [r.run, w]));
  const label = ([r, w]) => `${r} / ${w}`;
  const side = (id, chosen) => el("select", { id }, ...choices.map((c) => el("option", { value: `${c[0]}\n${c[1]}`, selected: label(c) === label(chosen) ? "" : null }, label(c))));
  const base = side("diff-base", [run, worker]);
  const otherChoice = choices.find((c) => c[0] === run && c[1] !== worker) || choices.find((c) => label(c) !== label([run, worker]));
  const other = side("diff-other", otherChoice || [run, worker]);
  const baseStep = el("select", { id: "diff-base-step" });
  const otherStep = el("select", { id: "diff-other-step" });
  const holder = el("div");
  const fillSteps = async (select, value) => {
    const [r, w] = value.split("\n");
    const overview = await get("overview", { run: r, worker: w }).catch(() => ({ steps: [] }));
    select.replaceChildren(el("option", { value: "" }, "all steps"),
      ...overview.steps.map((s) => el("option", { value: String(s.step) }, `step ${stepLabel(s)}`)));
  };
  const delta = (v) => `${v >= 0 ? "+" : ""}${ms(v)}`;
  const draw = async () => {
    if (base.value === other.value && baseStep.value === otherStep.value) {
      holder.replaceChildren(el("p", { class: "muted" }, "Pick two different traces, or two different steps, to compare."));
      return;
    }
    holder.replaceChildren(el("p", {}, "Comparing the traces…"));
    const [run1, worker1] = base.value.split("\n");
    const [run2, worker2] = other.value.split("\n");
    const data = await get("diff", { run: run1, worker: worker1, run2, worker2, step: baseStep.value, step2: otherStep.value });
    const crumbs = el("div", { class: "toolbar", id: "diff-path" });
    const level = el("div");
    const columns = (what) => [["name", what], ["base", "base ms", ms], ["other", "other ms", ms], ["delta", "change ms", delta]];
    const show = (title, rows, what, next) => {
      const table = sortableTable(`diff-${what}`, columns(what),
        rows.map((r) => ({ name: r.name, base: r.base ?? r.base_us, other: r.other ?? r.other_us, delta: r.delta ?? r.delta_us, row: r })),
        next ? { onRow: (shown) => next(shown.row) } : {});
      level.replaceChildren(el("h4", {}, title), table);
    };
    // Operators by device time where the traces link kernels to operators, else by host time.
    const moved = (rows) => rows.some((r) => (r.base_us ?? 0) > 0 || (r.other_us ?? 0) > 0);
    const device = [data.operators, "device self time"], host = [data.operators_host || data.operators, "host self time"];
    const [opRows, opTime] = moved(data.operators) || !data.operators_host ? device : host;
    // Device categories drill into operators by the device time they launched; host ones by host time.
    const operatorsFor = (category) => (["kernel", "memcpy", "memset", "communication"].includes(category) && moved(data.operators) ? device : host);
    const path = [];
    const breadcrumb = () => crumbs.replaceChildren(...path.map(([text, go], i) => {
      const link = el("button", { class: "link" }, text);
      link.addEventListener("click", () => { path.length = i + 1; go(); breadcrumb(); });
      return i ? el("span", {}, " › ", link) : link;
    }));
    const kernelsOf = (op) => {
      const rows = (data.kernels_by_operator && data.kernels_by_operator[op.name]) || op.kernels;
      if (rows) show(`Kernels ${op.name} launched, per step`, rows, "kernel", null);
      else show(`Kernels that changed most, per step (the traces do not link kernels to ${op.name})`, data.kernels, "kernel", null);
      path.push([op.name, () => kernelsOf(op)]);
      breadcrumb();
    };
    const operatorsOf = (category) => {
      const [rows, time] = operatorsFor(category.name);
      show(`Operators that changed most, ${time} per step (click one to see its kernels)`, rows, "operator", kernelsOf);
      path.push([category.name, () => operatorsOf(category)]);
      breadcrumb();
    };
    const categories = () => {
      show("Categories, per step (click one to see its operators)",
        Object.entries(data.categories_us).map(([name, v]) => ({ name, ...v })), "category", operatorsOf);
      const most = (rows, what) => sortableTable(`diff-top-${what}`, columns(what),
        rows.slice(0, 10).map((r) => ({ name: r.name, base: r.base ?? r.base_us, other: r.other ?? r.other_us, delta: r.delta ?? r.delta_us })));
      level.append(el("h4", {}, `Operators that changed most, ${opTime} per step`), most(opRows, "operator"),
        el("h4", {}, "Kernels that changed most, per step"), most(data.kernels, "kernel"));
    };
    path.push(["all categories", categories]);
    categories();
    breadcrumb();
    holder.replaceChildren(
      el("h3", {}, `step time ${ms(data.step_time_us.base)} ms → ${ms(data.step_time_us.other)} ms (${delta(data.step_time_us.delta)} ms)`),
      crumbs, level);
  };
  for (const [select, steps] of [[base, baseStep], [other, otherStep]]) {
    select.addEventListener("change", async () => { await fillSteps(steps, select.value); draw(); });
    steps.addEventListener("change", draw);
  }
  view.replaceChildren(
    el("div", { class: "toolbar" }, el("span", { class: "side" }, "Base"), base, baseStep),
    el("div", { class: "toolbar" }, el("span", { class: "side" }, "Against"), other, otherStep), holder);
  if (!choices.length) return;
  await Promise.all([fillSteps(baseStep, base.value), fillSteps(otherStep, other.value)]);
  await draw();
}
