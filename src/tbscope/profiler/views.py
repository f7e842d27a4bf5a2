"""The Profile tab's other views: Memory, Timeline, Distributed, Modules and Diff, each a pure function of
one or more traces, sized for a browser (no view sends more than a few MB, whatever the trace's size)."""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from tbscope.profiler.overview import CATEGORIES, analyze, is_communication, measure
from tbscope.profiler.tables import kernels, operators
from tbscope.profiler.trace import STEP_NAME, Trace

# Points of a memory curve at most: what a screen can show.
CURVE_POINTS = 2000
TOP = 20


def _device_name(args: dict[str, Any]) -> str:
    kind, index = args.get("Device Type"), args.get("Device Id", 0)
    return "cpu" if kind == 0 else f"cuda:{index}" if kind == 1 else f"device{kind}:{index}"


def memory(trace: Trace) -> dict[str, Any]:
    """Per device: allocated and reserved bytes over time (peak-preserving, ``CURVE_POINTS`` at most),
    their peaks and the device's capacity when the trace says it; and the operators that allocated most."""
    capacity = {
        f"cuda:{d.get('id', i)}": d.get("totalGlobalMem")
        for i, d in enumerate(trace.header.get("deviceProperties") or [])
        if isinstance(d, dict)
    }
    curves: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    for event in sorted(trace.memory, key=lambda m: m.time):
        args = event.args
        curves[_device_name(args)].append(
            (event.time, float(args.get("Total Allocated", 0)), float(args.get("Total Reserved", 0)))
        )
    devices = {}
    for device, points in curves.items():
        span = (points[-1][0] - points[0][0]) or 1.0
        buckets: dict[int, tuple[float, float, float]] = {}
        for time, in_use, reserved in points:
            slot = int((time - points[0][0]) / span * (CURVE_POINTS - 1))
            kept = buckets.get(slot)
            if kept is None or in_use > kept[1]:
                buckets[slot] = (time, in_use, reserved)
        devices[device] = {
            "curve": [list(p) for _, p in sorted(buckets.items())],
            "peak_allocated": max(p[1] for p in points),
            "peak_reserved": max(p[2] for p in points),
            "capacity": capacity.get(device),
        }
    by_thread: dict[str, list[Any]] = defaultdict(list)
    for op in trace.events:
        if op.kind == "cpu_op":
            by_thread[op.thread].append(op)
    for ops in by_thread.values():
        ops.sort(key=lambda op: op.start)
    starts = {thread: [op.start for op in ops] for thread, ops in by_thread.items()}
    by_operator: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for event in trace.memory:
        size = float(event.args.get("Bytes", 0))
        if size <= 0:
            continue
        ops = by_thread.get(event.thread, [])
        index = bisect.bisect_right(starts.get(event.thread, []), event.time) - 1
        # The innermost operator running then: the latest-starting one that has not ended.
        while index >= 0 and ops[index].end < event.time:
            index -= 1
        name = ops[index].name if index >= 0 else "(outside any operator)"
        by_operator[name][0] += size
        by_operator[name][1] += 1
    top = sorted(by_operator.items(), key=lambda item: -item[1][0])[:TOP]
    return {
        "devices": devices,
        "top_operators": [{"name": n, "allocated_bytes": b, "allocations": int(c)} for n, (b, c) in top],
    }


# Kinds drawn on a device stream's lane; every other kind is drawn on its host thread's lane.
DEVICE_KINDS = ("kernel", "memcpy", "memset", "gpu_annotation")
# Flows a timeline answer draws at most: enough for any window a screen can read.
FLOWS = 2000


class Timeline:
    """A trace laid out for the Timeline view, once per trace: one lane per host thread and per device
    stream, each event's nesting depth within its lane, and launch-to-kernel flows (by correlation id).

    ``window`` answers what a screen of ``px`` pixels shows of ``[start, end)``: every event wider than a
    pixel, and the rest merged per lane, depth and pixel, so that an answer stays small whatever the trace."""

    def __init__(self, trace: Trace) -> None:
        import numpy as np

        self.trace = trace
        events = trace.events
        members: dict[tuple[int, str], list[int]] = defaultdict(list)
        for i, e in enumerate(events):
            if e.kind in DEVICE_KINDS:
                stream = e.args.get("stream", e.thread.rsplit(":", 1)[-1])
                members[1, f"stream {stream}"].append(i)
            else:
                members[0, e.thread].append(i)
        steps = [
            (s.step, s.start, s.end) for s in analyze(trace).steps
        ]
        self.steps = steps
        stepped = {events[i].thread for i in range(len(events)) if events[i].kind == "annotation"
                   and STEP_NAME.match(events[i].name)}  # fmt: skip

        def order(key: tuple[int, str]) -> tuple[Any, ...]:
            side, name = key
            if side == 1:
                number = name.removeprefix("stream ")
                return (1, 0, int(number) if number.lstrip("-").isdigit() else 0, name)
            return (0, key[1] not in stepped, -len(members[key]), name)

        self.depth = np.full(len(events), -1, dtype=np.int32)
        self.lane_of = np.full(len(events), -1, dtype=np.int32)
        self.lanes: list[dict[str, Any]] = []
        for side, name in sorted(members, key=order):
            ids = sorted(members[side, name], key=lambda i: (events[i].start, -events[i].end))
            depths = []
            open_ends: list[float] = []
            for i in ids:
                while open_ends and open_ends[-1] <= events[i].start:
                    open_ends.pop()
                depths.append(len(open_ends))
                open_ends.append(events[i].end)
            index = np.asarray(ids, dtype=np.int64)
            starts = np.fromiter((events[i].start for i in ids), dtype=np.float64, count=len(ids))
            ends = np.fromiter((events[i].end for i in ids), dtype=np.float64, count=len(ids))
            self.depth[index] = depths
            self.lane_of[index] = len(self.lanes)
            device = next((events[i].args.get("device") for i in ids if "device" in events[i].args), None)
            if side == 1:
                label = f"GPU {device} {name}" if device is not None else f"GPU {name}"
            else:
                label = f"thread {name.rsplit(':', 1)[-1]}" + (" (main)" if name in stepped else "")
            self.lanes.append({
                "name": label, "kind": "stream" if side == 1 else "thread", "ids": index, "starts": starts,
                "ends": ends, "depths": np.asarray(depths, dtype=np.int32),
                "longest": float((ends - starts).max()) if len(ids) else 0.0,
            })  # fmt: skip
        launches: dict[Any, int] = {}
        device_work: dict[Any, int] = {}
        for i, e in enumerate(events):
            correlation = e.args.get("correlation")
            if correlation is None:
                continue
            if e.kind == "runtime":
                launches[correlation] = i
            elif e.kind in ("kernel", "memcpy", "memset"):
                device_work[correlation] = i
        pairs = [(launches[c], k) for c, k in device_work.items() if c in launches]
        self.flow_from = {a: b for a, b in pairs}
        self.flow_to = {b: a for a, b in pairs}
        self.span = (
            min((e.start for e in events), default=0.0),
            max((e.end for e in events), default=0.0),
        )

    def window(self, start: float | None = None, end: float | None = None, px: int = 1500) -> dict[str, Any]:
        """What ``px`` pixels show of ``[start, end)`` (the whole trace by default): per lane,
        ``[start_us, end_us, depth, name, id, merged]`` events (``merged`` > 1: that many events, each
        narrower than a pixel, drawn as one, named after the longest), and the flows whose both ends are shown."""
        import numpy as np

        a = self.span[0] if start is None else start
        b = self.span[1] if end is None else end
        if not (math.isfinite(a) and math.isfinite(b)):
            raise ValueError(f"a window is two finite times in microseconds, got {start!r} and {end!r}")
        if not b > a:
            b = a + 1.0
        px = max(100, min(int(px), 8000))
        resolution = (b - a) / px
        names: dict[str, int] = {}
        lanes = []
        shown: list[Any] = []
        for lane in self.lanes:
            starts, ends = lane["starts"], lane["ends"]
            lo = int(np.searchsorted(starts, a - lane["longest"], side="left"))
            hi = int(np.searchsorted(starts, b, side="left"))
            inside = lo + np.flatnonzero(ends[lo:hi] > a)
            wide = inside[(ends[inside] - starts[inside]) >= resolution]
            narrow = inside[(ends[inside] - starts[inside]) < resolution]
            rows: list[list[Any]] = []
            for k in wide:
                rows.append([starts[k], ends[k], int(lane["depths"][k]), int(k), 1])
            if len(narrow):
                column = np.floor((starts[narrow] - a) / resolution).astype(np.int64)
                key = lane["depths"][narrow].astype(np.int64) * (px + 2) + column
                duration = ends[narrow] - starts[narrow]
                by_key = np.lexsort((duration, key))
                keys = key[by_key]
                first = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
                last = np.r_[first[1:], len(keys)] - 1
                ordered = narrow[by_key]
                low = np.minimum.reduceat(starts[ordered], first)
                high = np.maximum.reduceat(ends[ordered], first)
                for g in range(len(first)):
                    longest = int(ordered[last[g]])
                    rows.append([low[g], high[g], int(lane["depths"][longest]), longest, int(last[g] - first[g] + 1)])
            out = []
            for lo_us, hi_us, depth, k, merged in rows:
                event_id = int(lane["ids"][k])
                name = self.trace.events[event_id].name
                out.append([round(float(lo_us), 3), round(float(hi_us), 3), depth,
                            names.setdefault(name, len(names)), event_id, merged])  # fmt: skip
                if merged == 1:
                    shown.append(event_id)
            lanes.append({
                "name": lane["name"], "kind": lane["kind"],
                "depth": int(lane["depths"].max()) + 1 if len(lane["depths"]) else 1, "events": out,
            })  # fmt: skip
        visible = set(shown)
        flows = [[i, self.flow_from[i]] for i in shown if i in self.flow_from and self.flow_from[i] in visible]
        return {
            "span_us": list(self.span),
            "window_us": [a, b],
            "steps": [[n, s, e] for n, s, e in self.steps],
            "names": list(names),
            "lanes": lanes,
            "flows": flows[:FLOWS],
        }

    def event(self, event_id: int) -> dict[str, Any]:
        """One event's details: what it is, when, its arguments, and the event at the other end of its flow."""
        if not 0 <= event_id < len(self.trace.events):
            raise ValueError(f"the trace has no event {event_id}")
        e = self.trace.events[event_id]
        lane = int(self.lane_of[event_id])
        details: dict[str, Any] = {
            "id": event_id, "name": e.name, "kind": e.kind, "lane": lane, "depth": int(self.depth[event_id]),
            "lane_name": self.lanes[lane]["name"] if lane >= 0 else None,
            "start_us": e.start, "end_us": e.end, "duration_us": e.end - e.start,
            "step": next((n for n, a, b in self.steps if a <= e.start < b), None),
            "args": {k: v for k, v in e.args.items()},
        }  # fmt: skip
        for key, other in (("launches", self.flow_from.get(event_id)), ("launched_by", self.flow_to.get(event_id))):
            if other is not None:
                o = self.trace.events[other]
                details[key] = {"id": other, "name": o.name, "lane": int(self.lane_of[other]),
                                "depth": int(self.depth[other]), "start_us": o.start, "end_us": o.end}  # fmt: skip
        return details


def distributed(traces: Sequence[Trace]) -> dict[str, Any]:
    """Per worker (rank), over its steps: computation (kernels other than collectives), communication
    (collective kernels, see ``is_communication``), their overlap, and idle time (no device activity);
    the slowest worker named."""
    rows: list[dict[str, Any]] = []
    for trace in traces:
        overview = analyze(trace)
        steps = [(s.start, s.end) for s in overview.steps]
        total = sum(b - a for a, b in steps)
        compute: list[tuple[float, float]] = []
        comm: list[tuple[float, float]] = []
        busy: list[tuple[float, float]] = []
        step_starts = [a for a, _ in steps]
        for e in trace.events:
            if e.kind not in ("kernel", "memcpy", "memset"):
                continue
            # The steps this event overlaps: those starting before it ends (steps are few and ordered).
            for a, b in steps[
                max(0, bisect.bisect_left(step_starts, e.start) - 2) : bisect.bisect_left(step_starts, e.end)
            ]:
                if e.end > a and e.start < b:
                    clipped = (max(e.start, a), min(e.end, b))
                    busy.append(clipped)
                    if e.kind == "kernel":
                        (comm if is_communication(e) else compute).append(clipped)
        computation, communication = measure(compute), measure(comm)
        rows.append({
            "worker": trace.worker,
            "steps": len(steps),
            "step_time_us": total,
            "computation_us": computation,
            "communication_us": communication,
            "overlap_us": computation + communication - measure(compute + comm),
            "idle_us": total - measure(busy),
        })  # fmt: skip
    slowest = max(rows, key=lambda r: float(r["step_time_us"]) / max(int(r["steps"]), 1))["worker"] if rows else None
    return {"workers": rows, "slowest": slowest}


def modules(trace: Trace) -> list[dict[str, Any]]:
    """Host time per ``nn.Module`` (the ``python_function`` events ``with_modules=True`` records); empty
    when the trace has none."""
    rows: dict[str, dict[str, Any]] = {}
    for e in trace.events:
        if e.kind == "python" and e.name.startswith("nn.Module: "):
            name = e.name.removeprefix("nn.Module: ")
            row = rows.setdefault(name, {"module": name, "calls": 0, "host_total_us": 0.0})
            row["calls"] += 1
            row["host_total_us"] += e.end - e.start
    return sorted(rows.values(), key=lambda r: -r["host_total_us"])


def _mean_step(trace: Trace) -> tuple[float, dict[str, float]]:
    steps = analyze(trace).steps
    n = max(len(steps), 1)
    return sum(s.duration_us for s in steps) / n, {c: sum(s.breakdown_us[c] for s in steps) / n for c in CATEGORIES}


def diff(base: Trace, other: Trace) -> dict[str, Any]:
    """What changed from ``base`` to ``other``: mean step time, the mean of each category, and the
    operators and kernels whose time changed most (per step)."""
    base_step, base_categories = _mean_step(base)
    other_step, other_categories = _mean_step(other)
    base_steps, other_steps = max(len(analyze(base).steps), 1), max(len(analyze(other).steps), 1)

    def changes(rows_a: list[dict[str, Any]], rows_b: list[dict[str, Any]], key: str, time: str) -> list[Any]:
        a = {r[key]: r[time] / base_steps for r in rows_a}
        b = {r[key]: r[time] / other_steps for r in rows_b}
        deltas = [{"name": name, "base_us": a.get(name, 0.0), "other_us": b.get(name, 0.0),
                   "delta_us": b.get(name, 0.0) - a.get(name, 0.0)} for name in set(a) | set(b)]  # fmt: skip
        return sorted(deltas, key=lambda d: -abs(d["delta_us"]))[:TOP]

    return {
        "step_time_us": {"base": base_step, "other": other_step, "delta": other_step - base_step},
        "categories_us": {
            c: {
                "base": base_categories[c],
                "other": other_categories[c],
                "delta": other_categories[c] - base_categories[c],
            }
            for c in CATEGORIES
        },
        "operators": changes(operators(base), operators(other), "name", "device_self_us"),
        "kernels": changes(kernels(base), kernels(other), "name", "total_us"),
    }
