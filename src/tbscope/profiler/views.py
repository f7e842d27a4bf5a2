"""The Profile tab's Timeline: a trace laid out in lanes, answered a window at a time, sized for a browser
(no answer sends more than a few MB, whatever the trace's size)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

from tbscope.profiler.overview import analyze
from tbscope.profiler.trace import DEVICE_KINDS, KINDS, STEP_NAME, Trace

# Flows a timeline answer draws at most: enough for any window a screen can read.
FLOWS = 2000


def _depths(starts: NDArray[np.float64], ends: NDArray[np.float64]) -> NDArray[np.int64]:
    """Each event's nesting depth among events sorted by start (the longest first at a tie): how many
    earlier events are still open when it starts. For events that nest, as one thread's do, that is the
    depth of its call stack."""
    import numpy as np

    ended = np.searchsorted(np.sort(ends), starts, side="right")
    return np.maximum(np.arange(len(starts)) - ended, 0)


class Timeline:
    """A trace laid out for the Timeline view, once per trace: one lane per host thread, per device stream
    and per stream's annotations, each event's nesting depth within its lane, and launch-to-kernel flows
    (by correlation id).

    ``window`` answers what a screen of ``px`` pixels shows of ``[start, end)``: every event wider than a
    pixel, and the rest merged per lane, depth and pixel, so that an answer stays small whatever the trace.
    """

    def __init__(self, trace: Trace, steps: list[tuple[int, float, float, int]] | None = None) -> None:
        """Lay ``trace`` out. ``steps`` are its steps' windows, ``(step, start_us, end_us, training step)``,
        as the Overview found them (computed again when not given)."""
        import numpy as np

        self.trace = trace
        n = len(trace)
        on_device = trace.of(*DEVICE_KINDS)
        annotations = trace.of("gpu_annotation")
        stream, device = trace.arg("stream"), trace.arg("device")
        tid = {i: text.rsplit(":", 1)[-1] for i, text in enumerate(trace.strings) if ":" in text}
        stepped = set(np.unique(trace.thread[trace.of("annotation") & trace.matching(STEP_NAME)]).tolist())
        # Each event's lane, as a sortable key: host threads first (the one with the steps, then the busiest),
        # then each device's streams, a stream's annotations right after its work.
        keys: dict[tuple[Any, ...], NDArray[np.intp]] = {}
        host = ~on_device & ~annotations
        threads = np.unique(trace.thread[host]).tolist()
        # A DataLoader's workers are processes of their own: then a thread is named with its process.
        processes = {trace.strings[t].split(":", 1)[0] for t in threads}
        for thread in threads:
            where = np.flatnonzero(host & (trace.thread == thread))
            name = trace.strings[thread]
            label = f"thread {tid.get(thread, name)}" + (" (main)" if thread in stepped else "")
            if len(processes) > 1:
                label = f"process {name.split(':', 1)[0]} {label}"
            keys[(0, thread not in stepped, -len(where), label)] = where
        device_streams = np.where(on_device, stream, np.nan)
        pairs = np.unique(
            np.nan_to_num(np.stack([device[on_device], device_streams[on_device]], axis=1), nan=-1.0), axis=0
        )
        for d, s in ((np.nan if a == -1 else a, np.nan if b == -1 else b) for a, b in pairs.tolist()):
            where = np.flatnonzero(on_device & _same(device, d) & _same(device_streams, s))
            label = f"GPU {_number(d)} stream {_number(s)}" if d == d else f"GPU stream {_number(s)}"
            keys[(1, d if d == d else -1, s if s == s else -1, 0, label)] = where
        for thread in np.unique(trace.thread[annotations]).tolist():
            where = np.flatnonzero(annotations & (trace.thread == thread))
            number = tid.get(thread, "?")
            s = float(number) if number.lstrip("-").isdigit() else -1.0
            d = next((k[1] for k in keys if k[0] == 1 and k[2] == s), -1)
            keys[(1, d, s, 1, f"GPU {_number(d)} stream {number} annotations")] = where
        # Small integer types, and each lane's starts but not its ends (read from the trace): this layout
        # takes about 26 bytes an event, a 1 GB trace's ten million events 260 MB.
        self.depth = np.full(n, -1, dtype=np.int16)
        self.lane_of = np.full(n, -1, dtype=np.int16)
        self.lanes: list[dict[str, Any]] = []
        for key in sorted(keys):
            ids = keys.pop(key).astype(np.int32)
            ids = ids[np.lexsort((-trace.end[ids], trace.start[ids]))]
            starts, ends = trace.start[ids], trace.end[ids]
            depths = _depths(starts, ends).astype(np.int16)
            self.depth[ids] = depths
            self.lane_of[ids] = len(self.lanes)
            self.lanes.append({
                "name": key[-1], "kind": "thread" if key[0] == 0 else "stream", "ids": ids, "starts": starts,
                "depths": depths, "longest": float((ends - starts).max()) if len(ids) else 0.0,
            })  # fmt: skip
        # Flows: a runtime call (cudaLaunchKernel, cudaMemcpyAsync, ...) and the device work of its correlation id.
        correlation = trace.arg("correlation")
        launches = np.flatnonzero(trace.of("runtime") & ~np.isnan(correlation))
        work = np.flatnonzero(on_device & ~np.isnan(correlation))
        work = work[np.argsort(correlation[work], kind="stable")]
        at = np.searchsorted(correlation[work], correlation[launches]).clip(0, max(len(work) - 1, 0))
        matched = correlation[work][at] == correlation[launches] if len(work) else np.zeros(len(launches), dtype=bool)
        self.launches = np.full(n, -1, dtype=np.int32)  # the device work each runtime call launched
        self.launched_by = np.full(n, -1, dtype=np.int32)
        self.launches[launches[matched]] = work[at[matched]]
        self.launched_by[work[at[matched]]] = launches[matched]
        self.span = (float(trace.start.min()), float(trace.end.max())) if n else (0.0, 0.0)
        if steps is None:
            steps = [(s.step, s.start, s.end, s.step if s.training_step is None else s.training_step)
                     for s in analyze(trace).steps]  # fmt: skip
        self.steps = steps

    def window(self, start: float | None = None, end: float | None = None, px: int = 1500) -> dict[str, Any]:
        """What ``px`` pixels show of ``[start, end)`` (the whole trace by default): per lane,
        ``[start_us, end_us, depth, name, id, merged]`` events (``name`` indexes ``names``; ``merged`` > 1:
        that many events, each narrower than a pixel, drawn as one, named after the longest), and the
        flows whose both ends are shown."""
        import numpy as np

        a = self.span[0] if start is None else start
        b = self.span[1] if end is None else end
        if not (math.isfinite(a) and math.isfinite(b)):
            raise ValueError(f"a window is two finite times in microseconds, got {start!r} and {end!r}")
        if not b > a:
            b = a + 1.0
        px = max(100, min(int(px), 8000))
        resolution = (b - a) / px
        names: dict[int, int] = {}
        lanes = []
        shown: list[Any] = []
        for lane in self.lanes:
            # The lane's events that may overlap the window: those starting less than its longest event
            # before the window's start, up to the window's end.
            lo = int(np.searchsorted(lane["starts"], a - lane["longest"], side="left"))
            hi = int(np.searchsorted(lane["starts"], b, side="left"))
            starts, depths, lane_ids = lane["starts"][lo:hi], lane["depths"][lo:hi], lane["ids"][lo:hi]
            ends = self.trace.end[lane_ids]
            inside = np.flatnonzero(ends > a)
            wide = inside[(ends[inside] - starts[inside]) >= resolution]
            narrow = inside[(ends[inside] - starts[inside]) < resolution]
            rows = [(starts[wide], ends[wide], wide, np.ones(len(wide), dtype=np.int64))]
            if len(narrow):
                column = np.floor((starts[narrow] - a) / resolution).astype(np.int64)
                key = depths[narrow].astype(np.int64) * (px + 2) + column
                by_key = np.lexsort((ends[narrow] - starts[narrow], key))
                keys, ordered = key[by_key], narrow[by_key]
                first = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
                last = np.r_[first[1:], len(keys)] - 1
                rows.append((np.minimum.reduceat(starts[ordered], first), np.maximum.reduceat(ends[ordered], first),
                             ordered[last], last - first + 1))  # fmt: skip
            out = []
            for lows, highs, longest, merged in rows:
                ids = lane_ids[longest]
                for lo_us, hi_us, k, event_id, count in zip(
                    lows.tolist(), highs.tolist(), longest.tolist(), ids.tolist(), merged.tolist(), strict=True
                ):
                    name = names.setdefault(int(self.trace.name[event_id]), len(names))
                    out.append([round(lo_us, 3), round(hi_us, 3), int(depths[k]), name, event_id, count])
                    if count == 1:
                        shown.append(event_id)
            lanes.append({
                "name": lane["name"], "kind": lane["kind"],
                "depth": int(lane["depths"].max()) + 1 if len(lane["depths"]) else 1, "events": out,
            })  # fmt: skip
        shown_ids = np.asarray(shown, dtype=np.int64)
        targets = self.launches[shown_ids] if len(shown_ids) else shown_ids
        both = (targets >= 0) & np.isin(targets, shown_ids)
        return {
            "span_us": list(self.span),
            "window_us": [a, b],
            "steps": [list(step) for step in self.steps],
            "names": [self.trace.strings[i] for i in names],
            "lanes": lanes,
            "flows": np.stack([shown_ids[both], targets[both]], axis=1)[:FLOWS].tolist(),
        }

    def event(self, event_id: int) -> dict[str, Any]:
        """One event's details: what it is, when, its arguments, and the event at the other end of its flow."""
        if not 0 <= event_id < len(self.trace):
            raise ValueError(f"the trace has no event {event_id}")
        trace = self.trace
        start, end = float(trace.start[event_id]), float(trace.end[event_id])
        lane = int(self.lane_of[event_id])
        details: dict[str, Any] = {
            "id": event_id, "name": trace.strings[trace.name[event_id]], "kind": KINDS[trace.kind[event_id]],
            "lane": lane, "depth": int(self.depth[event_id]),
            "lane_name": self.lanes[lane]["name"] if lane >= 0 else None,
            "start_us": start, "end_us": end, "duration_us": end - start,
            "step": next((label for _, a, b, label in self.steps if a <= start < b), None),
            "args": trace.event_args(event_id),
        }  # fmt: skip
        for key, column in (("launches", self.launches), ("launched_by", self.launched_by)):
            other = int(column[event_id])
            if other >= 0:
                details[key] = {
                    "id": other, "name": trace.strings[trace.name[other]], "lane": int(self.lane_of[other]),
                    "depth": int(self.depth[other]), "start_us": float(trace.start[other]),
                    "end_us": float(trace.end[other]),
                }  # fmt: skip
        return details


def _same(column: NDArray[np.float64], value: float) -> NDArray[np.bool_]:
    """Where ``column`` equals ``value``, NaN matching NaN."""
    import numpy as np

    return np.isnan(column) if value != value else column == value


def _number(value: float) -> str:
    return str(int(value)) if value == value and value.is_integer() else "?"
