"""The Profile tab's other views: Memory, Timeline, Distributed, Modules and Diff, each a pure function of
one or more traces, sized for a browser (no view sends more than a few MB, whatever the trace's size)."""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from tbscope.profiler.overview import CATEGORIES, analyze, is_communication, measure
from tbscope.profiler.tables import kernels, operators
from tbscope.profiler.trace import STEP_NAME, Trace

# Points of a memory curve, and segments of a timeline lane, at most: what a screen can show.
CURVE_POINTS = 2000
LANE_SEGMENTS = 4000
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


def _downsample(segments: list[tuple[float, float, str]], span: float) -> list[list[Any]]:
    """Merge segments closer than one ``LANE_SEGMENTS``-th of ``span``; a merged one keeps the name of
    its longest part."""
    gap = span / LANE_SEGMENTS
    out: list[list[Any]] = []
    longest = 0.0
    for start, end, name in sorted(segments):
        if out and start - out[-1][1] < gap:
            out[-1][1] = max(out[-1][1], end)
            out[-1][3] += 1
            if end - start > longest:
                out[-1][2], longest = name, end - start
        else:
            out.append([start, end, name, 1])
            longest = end - start
    return out


def timeline(trace: Trace) -> dict[str, Any]:
    """Lanes of steps, operators (per thread) and kernels (per stream), each downsampled on the server:
    ``[start_us, end_us, name, events merged]`` segments."""
    span = max((e.end for e in trace.events), default=0.0)
    lanes: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
    for e in trace.events:
        if e.kind == "annotation" and STEP_NAME.match(e.name):
            lanes["steps"].append((e.start, e.end, e.name))
        elif e.kind == "cpu_op":
            lanes[f"operators {e.thread}"].append((e.start, e.end, e.name))
        elif e.kind in ("kernel", "memcpy", "memset"):
            lanes[f"GPU stream {e.args.get('stream', '?')}"].append((e.start, e.end, e.name))
    ordered = sorted(lanes, key=lambda lane: (lane != "steps", not lane.startswith("operators"), lane))
    return {"span_us": span, "lanes": [{"name": lane, "segments": _downsample(lanes[lane], span)} for lane in ordered]}


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
