// The Profile tab's numbers and names as a user reads them: times, bytes, axis units, steps, kernels (a share
// is charts.js's pct, shared with the report).

export const ms = (us) => (us / 1000).toFixed(us < 10000 ? 3 : 1);

export function duration(us) {
  if (us === 0) return "0";
  const a = Math.abs(us);
  if (a >= 1e6) return `${(us / 1e6).toPrecision(3)} s`;
  if (a >= 1e3) return `${(us / 1e3).toPrecision(3)} ms`;
  return `${us.toPrecision(3)} µs`;
}

// One unit for a whole axis: the one its largest value reads best in.
export function timeUnit(us) {
  const a = Math.abs(us);
  return a >= 1e6 ? [1e6, "s"] : a >= 1e3 ? [1e3, "ms"] : [1, "µs"];
}

export function byteUnit(bytes) {
  const a = Math.abs(bytes);
  return a >= 1e9 ? [1e9, "GB"] : a >= 1e6 ? [1e6, "MB"] : a >= 1e3 ? [1e3, "KB"] : [1, "B"];
}

export function bytes(value) {
  const [scale, unit] = byteUnit(value);
  return `${(value / scale).toFixed(scale === 1 ? 0 : value / scale < 10 ? 2 : 1)} ${unit}`;
}

// A tick's value in an axis' unit (``scale`` from timeUnit or byteUnit): whole where it is, else 4 digits.
export const tickLabel = (value, scale) => {
  const v = value / scale;
  return Number.isInteger(Math.round(v * 1000) / 1000) ? String(Math.round(v)) : String(parseFloat(v.toPrecision(4)));
};

// The training loop's own step number when the trace knows it, else the profiler's.
export const stepLabel = (step) => String(step.training_step ?? step.step);

// A long C++ kernel name as a label: no "void ", no template or argument lists (the tooltip has them).
export function shortName(name, room = 48) {
  if (name.length <= room) return name;
  let short = name.replace(/^void /, "");
  let depth = 0, out = "";
  for (const c of short) {
    if (c === "<" || c === "(") { if (depth++ === 0) out += c === "<" ? "<…>" : "(…)"; continue; }
    if (c === ">" || c === ")") { depth = Math.max(depth - 1, 0); continue; }
    if (depth === 0) out += c;
  }
  short = out.replace(/\(…\)$/, "");
  return short.length > room ? `${short.slice(0, room - 1)}…` : short;
}
