// The Timeline's state: the window shown ([a, b] in µs of the trace's clock), the trace's whole span, what
// the server sent for a window around it, the event selected; and the rules the window keeps to.

// The state of a Timeline that the server's first answer (the whole trace) opens, on one step when asked.
export function timelineState(first, step) {
  const [start, end] = first.span_us;
  const state = { data: first, a: start, b: end, total: [start, end > start ? end : start + 1], selected: null, seq: 0 };
  const shown = step ? first.steps.find((s) => String(s[0]) === step) : null;
  if (shown) [state.a, state.b] = [shown[1], shown[2]];
  return state;
}

// Moves the window to [a, b]: 0.05 µs wide at least, and a tenth of the trace beyond its ends at most.
export function moveWindow(state, a, b) {
  const [t0, t1] = state.total;
  const width = Math.min(Math.max(b - a, 0.05), (t1 - t0) * 1.2);
  const lo = t0 - (t1 - t0) * 0.1, hi = t1 + (t1 - t0) * 0.1;
  a = Math.min(Math.max(a, lo), hi - width);
  [state.a, state.b] = [a, a + width];
}

// Whether the window now shows time the server did not send, or is far narrower or wider than what it sent
// (the server down-samples to the pixel: zooming in needs detail, zooming out less of it).
export function needsData(state) {
  const [a, b] = state.data.window_us;
  const shown = state.b - state.a;
  return state.a < a || state.b > b || shown < (b - a) / 6 || shown > (b - a);
}
