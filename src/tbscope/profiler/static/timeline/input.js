// The Timeline's mouse and keys: the wheel zooms around the pointer (sideways or with Shift it pans), a
// drag pans, a click selects, hovering names the event; W and S zoom, A and D pan, as in chrome://tracing
// and Perfetto.

import { duration } from "../format.js";
import { LABELS, hit, plotWidth, tOf } from "./layout.js";

// ``timeline`` holds the canvas, its box, the tooltip, the state and the lanes' boxes (replaced on each
// answer); ``moveTo(a, b)`` shows another window, ``select(x, y)`` the event at a point.
export function listen(timeline, moveTo, select) {
  const { canvas, box, tip, state } = timeline;
  const under = (x, y) => hit(state, timeline.boxes, plotWidth(box), x, y);
  canvas.addEventListener("wheel", (event) => {
    event.preventDefault();
    if (event.shiftKey || Math.abs(event.deltaX) > Math.abs(event.deltaY)) {
      const shift = ((event.deltaX || event.deltaY) / plotWidth(box)) * (state.b - state.a);
      moveTo(state.a + shift, state.b + shift);
      return;
    }
    const t = tOf(state, plotWidth(box), Math.max(event.offsetX, LABELS));
    const factor = Math.exp(Math.max(-1, Math.min(1, event.deltaY * 0.002)));
    moveTo(t - (t - state.a) * factor, t + (state.b - t) * factor);
  }, { passive: false });

  let drag = null;
  canvas.addEventListener("mousedown", (event) => {
    drag = { x: event.clientX, a: state.a, b: state.b, moved: false };
    canvas.style.cursor = "grabbing";
  });
  // Hovering names the event under the pointer, its duration, and how many were merged into it.
  canvas.addEventListener("mousemove", (event) => {
    if (drag && drag.moved) { tip.style.display = "none"; return; }
    const ev = under(event.offsetX, event.offsetY);
    if (!ev) { tip.style.display = "none"; return; }
    const name = state.data.names[ev[3]];
    tip.textContent = `${name.length > 120 ? `${name.slice(0, 119)}…` : name} · ${duration(ev[1] - ev[0])}${ev[5] > 1 ? ` · ${ev[5]} events merged` : ""}`;
    tip.style.display = "block";
    tip.style.left = `${Math.min(event.offsetX + 12, box.clientWidth - 320)}px`;
    tip.style.top = `${event.offsetY + 14}px`;
  });
  canvas.addEventListener("mouseleave", () => { tip.style.display = "none"; });
  // Listeners on the window end with the view: the first event after it is gone removes them.
  const alive = new AbortController();
  const gone = () => { if (canvas.isConnected) return false; alive.abort(); return true; };
  window.addEventListener("mousemove", (event) => {
    if (gone() || !drag) return;
    const dx = event.clientX - drag.x;
    if (Math.abs(dx) > 3) drag.moved = true;
    if (!drag.moved) return;
    const shift = (-dx / plotWidth(box)) * (drag.b - drag.a);
    moveTo(drag.a + shift, drag.b + shift);
  }, { signal: alive.signal });
  window.addEventListener("mouseup", (event) => {
    if (gone() || !drag) return;
    const moved = drag.moved;
    drag = null;
    canvas.style.cursor = "";
    if (!moved && event.target === canvas) select(under(event.offsetX, event.offsetY));
  }, { signal: alive.signal });

  canvas.tabIndex = 0;
  canvas.addEventListener("keydown", (event) => {
    const width = state.b - state.a, middle = (state.a + state.b) / 2;
    const key = event.key.toLowerCase();
    if (key === "w" || key === "s") {
      const half = (width / 2) * (key === "w" ? 0.8 : 1.25);
      moveTo(middle - half, middle + half);
    } else if (key === "a" || key === "d") {
      const shift = width * 0.2 * (key === "a" ? -1 : 1);
      moveTo(state.a + shift, state.b + shift);
    } else {
      return;
    }
    event.preventDefault();
  });
}
