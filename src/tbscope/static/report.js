// tbscope's offline report: draws what the file holds (the JSON in #data), asks nothing of any network.
// report.py inlines it after the shared charts.js, tables.js, theme.js and categories.js (the imports below
// are dropped there: one script, one scope).
import { COLORS } from "../plugins/static/categories.js";
import { BANDS, bandOf, el, fmt, lineChart, pct, seriesColor } from "../plugins/static/charts.js";
import { sortableTable } from "../plugins/static/tables.js";
import { followTheme } from "../plugins/static/theme.js";

{
  const data = JSON.parse(document.getElementById("data").textContent);
  // The band shown first is mean ± std: with a handful of seeds a 95% CI spans far (t = 12.7 at n = 2).
  const state = { band: "std", view: data.groups.some((g) => g.n > 1) ? "groups" : "runs" };

  // -- small helpers ------------------------------------------------------------------------------
  const numbers = (text) => (text ? text.split(",").map(Number) : []);
  const duration = (s) => (s === null || s === undefined ? "-" : s < 120 ? `${s.toFixed(1)} s`
    : s < 7200 ? `${(s / 60).toFixed(1)} min` : `${(s / 3600).toFixed(1)} h`);
  // -- theme: the browser's preference (the button below overrides it) ----------------------------
  followTheme();

  // -- tables: tables.js's, of rows given as arrays ---------------------------------------------------
  // Numeric columns right-aligned; numbers as fmt writes them, or by a column's own format (formats[i]).
  function table(headers, rows, numeric = [], formats = {}) {
    const shown = (v) => (typeof v === "number" ? fmt(v) : String(v));
    const columns = headers.map((h, i) => [i, h, formats[i] || shown]);
    const right = headers.map((_, i) => i).filter((i) => numeric[i]);
    return el("div", { class: "table-wrap" }, sortableTable(null, columns, rows, { numeric: right }));
  }

  // -- sections -----------------------------------------------------------------------------------
  const h = data.header;
  const statuses = Object.entries(h.statuses).map(([s, n]) => `${n} ${s}`).join(", ");
  const toggle = el("button", { onclick: () => document.documentElement.classList.toggle("dark") }, "light / dark");
  document.body.append(el("header", {},
    el("div", {},
      el("h1", {}, `${h.experiments.join(", ") || "runs"}`),
      el("div", { class: "facts" },
        el("span", {}, el("b", {}, "runs: "), `${h.runs} (${statuses})`),
        el("span", {}, el("b", {}, "when: "), h.started ? `${h.started.slice(0, 16).replace("T", " ")} UTC – ${(h.ended || "").slice(0, 16).replace("T", " ")}` : "-"),
        el("span", {}, el("b", {}, "host: "), h.hosts.join(", ") || "-"),
        h.gpus.length ? el("span", {}, el("b", {}, "GPU: "), h.gpus.join(", ")) : null,
        el("span", {}, el("b", {}, "torch: "), h.torch.join(", ") || "-")),
      el("nav", {}, ["runs", "curves", "groups", "pictures", "pr", "profiles", "made"].map((id) => el("a", { href: `#${id}` }, id)))),
    toggle));

  // runs
  const keys = data.config_keys;
  const runRows = data.runs.map((r) => [r.path, r.status, r.duration_s, ...keys.map((k) => r.config[k]), ...data.metrics.map((m) => r.metrics[m])]);
  const runNumeric = [false, false, true, ...keys.map((k) => data.runs.every((r) => r.config[k] === null || typeof r.config[k] === "number")), ...data.metrics.map(() => true)];
  const runTable = table(["run", "status", "duration", ...keys, ...data.metrics.map((m) => `${m} (last)`)],
    runRows, runNumeric, { 2: duration });
  document.body.append(el("section", { id: "runs" }, el("h2", {}, "Runs"), runTable));

  // curves
  const curves = el("div", { class: "charts" });
  const groupIndex = Object.fromEntries(data.groups.map((g, i) => [g.label, i]));
  const runIndex = Object.fromEntries(data.runs.map((r, i) => [r.path, i]));
  function drawCurves() {
    curves.replaceChildren(...data.tags.map((tag) => {
      let series = [];
      if (state.view === "groups" && data.curves.groups[tag]) {
        series = Object.entries(data.curves.groups[tag]).map(([label, line]) => {
          const parsed = Object.fromEntries(Object.entries(line).map(([key, text]) => [key, numbers(text)]));
          const [low, high] = bandOf(parsed, state.band);
          return { name: `${label} (n=${Math.max(...parsed.n)})`, color: seriesColor(groupIndex[label] ?? 0), x: parsed.step, y: parsed.mean, low, high, n: parsed.n, width: 2 };
        });
      } else if (data.curves.runs[tag]) {
        series = Object.entries(data.curves.runs[tag]).map(([run, line]) => ({ name: run, color: seriesColor(runIndex[run] ?? 0), x: numbers(line.step), y: numbers(line.value) }));
      }
      return series.length ? lineChart(tag, series) : el("div", { class: "chart" }, el("div", { class: "title" }, tag), el("p", { class: "muted" }, "no values"));
    }));
  }
  const bandSelect = el("select", { id: "band", onchange: (e) => { state.band = e.target.value; drawCurves(); } },
    Object.entries(BANDS).map(([k, v]) => el("option", { value: k }, v)));
  bandSelect.value = state.band;
  const viewSelect = el("select", { id: "view", onchange: (e) => { state.view = e.target.value; drawCurves(); } },
    el("option", { value: "groups" }, "groups: mean and band"), el("option", { value: "runs" }, "each run"));
  viewSelect.value = state.view;
  document.body.append(el("section", { id: "curves" }, el("h2", {}, "Curves"),
    el("div", { class: "controls" }, el("label", {}, "show ", viewSelect), el("label", {}, "band ", bandSelect),
      el("span", { class: "note" }, "curves are down-sampled keeping each bucket's lowest and highest point; tbscope export gives every value")),
    curves));
  drawCurves();

  // groups
  const groupSection = el("section", { id: "groups" }, el("h2", {}, "Groups"));
  groupSection.append(el("p", { class: "muted" }, `${data.groups.length} group(s): runs whose config differs only in the seed`));
  groupSection.append(table(["group", "n", "runs"], data.groups.map((g) => [g.label, g.n, g.runs.join(", ")]), [false, true, false]));
  for (const [tag, final] of Object.entries(data.finals)) {
    groupSection.append(el("h3", {}, `${tag} (last value; ${final.direction === "min" ? "lower" : "higher"} is better)`));
    groupSection.append(table(["group", "n", "mean", "std", "95% CI low", "95% CI high"],
      final.rows.map((r) => [r.label, r.n, r.mean, r.std, r.ci_low, r.ci_high]), [false, true, true, true, true, true]));
    if (final.lead) groupSection.append(el("div", { class: "lead" }, final.lead.sentence));
  }
  document.body.append(groupSection);

  // pictures
  const overlay = el("div", { class: "overlay", onclick: () => { overlay.style.display = "none"; } }, el("img", { alt: "" }), el("div"));
  document.body.append(overlay);
  const pictures = el("section", { id: "pictures" }, el("h2", {}, "Pictures"));
  if (!data.images.length) pictures.append(el("p", { class: "muted" }, "no images were logged"));
  for (const group of data.images) {
    pictures.append(el("h3", {}, group.tag), el("div", { class: "pictures" }, group.items.map((item) => {
      const caption = `${item.run} · step ${item.step}${item.width !== item.logged_width ? ` · shown ${item.width}×${item.height} of ${item.logged_width}×${item.logged_height}` : ""}`;
      const scale = Math.max(1, Math.floor(256 / Math.max(item.width, item.height)));
      const img = el("img", { src: item.src, width: item.width * scale, height: item.height * scale, alt: `${group.tag}, ${caption}`,
        onclick: () => { overlay.firstChild.src = item.src; overlay.lastChild.textContent = `${group.tag} · ${caption}`; overlay.style.display = "flex"; } });
      return el("figure", {}, img, el("figcaption", {}, caption));
    })));
  }
  document.body.append(pictures);

  // PR curves
  const pr = el("section", { id: "pr" }, el("h2", {}, "PR curves"));
  if (!data.pr_curves.length) pr.append(el("p", { class: "muted" }, "no PR curves were logged"));
  const prCharts = el("div", { class: "charts" });
  for (const entry of data.pr_curves) {
    const series = Object.entries(entry.runs).map(([run, c]) => ({ name: run, color: seriesColor(runIndex[run] ?? 0), x: numbers(c.recall), y: numbers(c.precision) }));
    series.forEach((s) => { const order = s.x.map((_, i) => i).sort((a, b) => s.x[a] - s.x[b]); s.x = order.map((i) => s.x[i]); s.y = order.map((i) => s.y[i]); });
    if (series.length) prCharts.append(lineChart(`${entry.tag} (precision against recall)`, series, { xLabel: "recall" }));
    const classes = [...new Set(Object.values(entry.ap).flatMap((a) => Object.keys(a)))];
    if (classes.length) {
      prCharts.append(el("div", { class: "chart" }, el("div", { class: "title" }, `${entry.tag}: AP per class (last)`),
        table(["run", ...classes], Object.entries(entry.ap).map(([run, a]) => [run, ...classes.map((c) => a[c] ?? null)]), [false, ...classes.map(() => true)])));
    }
  }
  pr.append(prCharts);
  document.body.append(pr);

  // profiles
  const profiles = el("section", { id: "profiles" }, el("h2", {}, "Profiles"));
  if (!data.profiles.length) profiles.append(el("p", { class: "muted" }, "no profile was recorded"));
  for (const p of data.profiles) {
    const parts = Object.entries(p.breakdown).filter(([, v]) => v > 0);
    profiles.append(el("h3", {}, `${p.run} · ${p.worker}${p.device ? ` · ${p.device}` : ""}`),
      el("div", { class: "facts" }, el("span", {}, el("b", {}, "steps: "), `${p.steps}`),
        el("span", {}, el("b", {}, "mean step: "), p.mean_step_ms === null ? "-" : `${p.mean_step_ms.toFixed(2)} ms`),
        el("span", {}, el("b", {}, "GPU utilisation: "), p.gpu_utilization === null ? "no GPU" : pct(p.gpu_utilization))),
      el("div", { class: "bar", title: "where the step time went" }, parts.map(([c, v]) => el("span", { style: `width:${100 * v}%;background:${COLORS[c] || "#999"}`, title: `${c}: ${pct(v)}` }))),
      el("div", { class: "legend" }, parts.map(([c, v]) => el("span", {}, el("i", { style: `background:${COLORS[c] || "#999"}` }), `${c} ${pct(v)}`))));
    if (p.kernels.length) profiles.append(el("h3", {}, "top kernels"), table(["kernel", "calls", "total ms"], p.kernels.map((k) => [k.name, k.calls, k.total_us === null ? null : k.total_us / 1000]), [false, true, true]));
    if (p.advice.length) profiles.append(el("h3", {}, "advice"), el("ul", { class: "advice" }, p.advice.map((a) => el("li", {}, a))));
  }
  document.body.append(profiles);

  // how it was made, and what was left out
  const made = el("section", { id: "made" }, el("h2", {}, "How this report was made"),
    el("p", {}, `tbscope ${data.made.tbscope}, ${data.made.at.slice(0, 19).replace("T", " ")} UTC: `, el("code", {}, data.made.command || "")));
  if (data.left_out.length) made.append(el("h3", {}, "Left out to stay within the size budget"), el("ul", {}, data.left_out.map((t) => el("li", {}, t))));
  document.body.append(made);
  document.body.dataset.ready = "true";
}
