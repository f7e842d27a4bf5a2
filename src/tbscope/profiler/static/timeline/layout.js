// Where the Timeline puts things: the lane labels' column, the time axis and step band above the lanes, a
// row per nesting depth in each lane; time to pixels and back, and the event under a point.

export const LABELS = 170, AXIS = 22, STEPS = 18, ROW = 17, GAP = 8;

// Each lane's top and bottom (px), one row per depth of its events.
export function laneBoxes(lanes) {
  let y = AXIS + STEPS;
  return lanes.map((lane) => {
    const top = y;
    y += Math.max(lane.depth, 1) * ROW + GAP;
    return { top, bottom: y - GAP };
  });
}

// The canvas' full height for these lanes.
export const canvasHeight = (boxes) => (boxes.length ? boxes[boxes.length - 1].bottom : AXIS + STEPS) + GAP;

// The width the events are drawn in, right of the labels.
export const plotWidth = (box) => Math.max(200, box.clientWidth - LABELS);

// Time (µs) to x (px) and back, for the window [state.a, state.b] drawn ``width`` px wide.
export const xOf = (state, width, t) => LABELS + ((t - state.a) / (state.b - state.a)) * width;
export const tOf = (state, width, x) => state.a + ((x - LABELS) / width) * (state.b - state.a);

// The event at (x, y): on the row under the point, the nearest within 4 px, the shortest where several cover it.
export function hit(state, boxes, width, x, y) {
  const lane = boxes.findIndex((l) => y >= l.top && y < l.bottom);
  if (lane < 0 || x < LABELS) return null;
  const depth = Math.floor((y - boxes[lane].top) / ROW);
  let best = null, distance = 4;
  for (const ev of state.data.lanes[lane].events) {
    if (ev[2] !== depth) continue;
    const x0 = xOf(state, width, ev[0]), x1 = Math.max(xOf(state, width, ev[1]), x0 + 1);
    const d = x < x0 ? x0 - x : x > x1 ? x - x1 : 0;
    if (d < distance || (d === 0 && best && ev[1] - ev[0] < best[1] - best[0])) [best, distance] = [ev, d];
  }
  return best;
}
