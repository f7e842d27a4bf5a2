"""Operators and kernels of a trace, as the Profile tab's tables show them.

Operators: calls, host self and total time, device self and total time (the kernels they launched,
linked through ``External id``), grouped by name or by name and input shapes, with the Python call stack
that called them most when the trace has call stacks. Kernels: calls, total,
mean, min and max time, mean blocks per SM and achieved occupancy where the trace has them, and
whether the kernel uses tensor cores (told by its name, as NVIDIA's libraries name them).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from tbscope.profiler.overview import uses_tensor_cores
from tbscope.profiler.trace import Trace

# Frames of a call stack shown with an operator: enough to find the line in one's own code.
STACK_DEPTH = 5


def operators(trace: Trace, group_by: str = "name") -> list[dict[str, Any]]:
    """One row per operator name (``group_by="name"``) or name and input shapes (``"shapes"``)."""
    if group_by not in ("name", "shapes"):
        raise ValueError(f"group_by must be 'name' or 'shapes', got {group_by!r}")
    device_by_id: dict[Any, float] = defaultdict(float)
    for e in trace.events:
        if e.kind in ("kernel", "memcpy", "memset") and "External id" in e.args:
            device_by_id[e.args["External id"]] += e.end - e.start
    ops = sorted((e for e in trace.events if e.kind == "cpu_op"), key=lambda e: (e.thread, e.start, -e.end))
    # Nesting on one thread: an operator's children are the operators inside it.
    host_self: dict[int, float] = {}
    device_total: dict[int, float] = {}
    stack: list[Any] = []
    for op in [*ops, None]:
        while stack and (op is None or op.thread != stack[-1].thread or op.start >= stack[-1].end):
            done = stack.pop()
            own = device_by_id.get(done.args.get("External id"), 0.0)
            device_total[id(done)] = device_total.get(id(done), 0.0) + own
            if stack:
                parent = stack[-1]
                host_self[id(parent)] = host_self.get(id(parent), parent.end - parent.start) - (done.end - done.start)
                device_total[id(parent)] = device_total.get(id(parent), 0.0) + device_total[id(done)]
        if op is not None:
            stack.append(op)
    frames = _calling_frames(trace, ops)
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    stacks: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for op in ops:
        shapes = str(op.args.get("Input Dims", "")) if group_by == "shapes" else ""
        row = rows.setdefault((op.name, shapes), {
            "name": op.name, "input_shapes": shapes or None, "calls": 0, "host_self_us": 0.0,
            "host_total_us": 0.0, "device_self_us": 0.0, "device_total_us": 0.0,
        })  # fmt: skip
        row["calls"] += 1
        row["host_total_us"] += op.end - op.start
        row["host_self_us"] += host_self.get(id(op), op.end - op.start)
        row["device_self_us"] += device_by_id.get(op.args.get("External id"), 0.0)
        row["device_total_us"] += device_total.get(id(op), 0.0)
        frame = frames.get(id(op))
        if frame is not None:
            stacks[op.name, shapes][frame] += 1
    for key, row in rows.items():
        counted = stacks.get(key)
        row["call_stack"] = max(counted, key=lambda f: counted[f]) if counted else None
    return sorted(rows.values(), key=lambda r: (-r["device_self_us"], -r["host_self_us"]))


def _calling_frames(trace: Trace, ops: list[Any]) -> dict[int, str]:
    """For each operator, the Python call stack it ran in (``with_stack=True`` records frames as
    ``python_function`` events on the operator's thread), innermost first, ``STACK_DEPTH`` frames at most:
    ``{id(op): "model.py(42): forward <- train.py(10): step"}``."""
    python = [e for e in trace.events if e.kind == "python"]
    if not python:
        return {}
    timeline = sorted([(e.thread, e.start, 0, e) for e in python] + [(op.thread, op.start, 1, op) for op in ops],
                      key=lambda t: (t[0], t[1], t[2]))  # fmt: skip
    frames: dict[int, str] = {}
    stack: list[Any] = []
    thread = None
    for event_thread, start, is_op, event in timeline:
        if event_thread != thread:
            stack, thread = [], event_thread
        while stack and stack[-1].end <= start:
            stack.pop()
        if is_op:
            if stack:
                frames[id(event)] = " <- ".join(frame.name for frame in reversed(stack[-STACK_DEPTH:]))
        else:
            stack.append(event)
    return frames


def kernels(trace: Trace) -> list[dict[str, Any]]:
    """One row per kernel name, the longest total first."""
    rows: dict[str, dict[str, Any]] = {}
    for e in trace.events:
        if e.kind != "kernel":
            continue
        duration = e.end - e.start
        row = rows.setdefault(e.name, {
            "name": e.name, "calls": 0, "total_us": 0.0, "min_us": duration, "max_us": duration,
            "_blocks": 0.0, "_occupancy": 0.0, "_weighted": 0.0,
            "tensor_cores": uses_tensor_cores(e.name),
        })  # fmt: skip
        row["calls"] += 1
        row["total_us"] += duration
        row["min_us"] = min(row["min_us"], duration)
        row["max_us"] = max(row["max_us"], duration)
        if "blocks per SM" in e.args and "est. achieved occupancy %" in e.args:
            row["_blocks"] += float(e.args["blocks per SM"]) * duration
            row["_occupancy"] += float(e.args["est. achieved occupancy %"]) * duration
            row["_weighted"] += duration
    out = []
    for row in rows.values():
        weighted = row.pop("_weighted")
        blocks, occupancy = row.pop("_blocks"), row.pop("_occupancy")
        row["mean_us"] = row["total_us"] / row["calls"]
        row["blocks_per_sm"] = blocks / weighted if weighted else None  # None: ROCm traces have no such field
        row["occupancy_pct"] = occupancy / weighted if weighted else None
        out.append(row)
    return sorted(out, key=lambda r: -r["total_us"])
