"""Operators and kernels of a trace, as the Profile tab's tables show them.

Operators: calls, host self and total time, device self and total time (the device work they launched,
linked through the runtime call's correlation id), grouped by name or by name and input shapes, with
where user code called them when the trace has call stacks. Kernels: calls, total, mean, min and max
time, mean blocks per SM and achieved occupancy where the trace has them, and whether the kernel uses
tensor cores (told by its name, as NVIDIA's libraries name them); grouped by name, or by the operator
that launched them.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import TYPE_CHECKING, Any

from tbscope.profiler.overview import uses_tensor_cores
from tbscope.profiler.trace import KIND, Trace, launchers

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

# A frame as torch records it, ``path/to/file.py(42): function``, and what marks a library's frame.
FRAME = re.compile(r"^(?P<file>.+)\((?P<line>\d+)\): (?P<function>.*)$")
LIBRARY = re.compile(r"site-packages|dist-packages|/lib/python\d|(^|/)(torch|torchvision|lightning|tbscope)/|^<")
ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def readable_frame(frame: str) -> str:
    """A recorded Python frame as a person reads it: ``file.py:42 function``, without memory addresses.

    Example:
        >>> readable_frame("/home/me/project/train.py(42): step")
        'project/train.py:42 step'
        >>> readable_frame("<built-in method matmul of type object at 0x7f3a2c1b2d40>")
        '<built-in method matmul of type object>'
    """
    frame = ADDRESS.sub("", frame)
    found = FRAME.match(frame)
    if not found:
        return frame
    path = "/".join(found["file"].replace("\\", "/").split("/")[-2:])
    return f"{path}:{found['line']} {found['function']}"


def device_time_by_operator(trace: Trace) -> NDArray[np.float64]:
    """For each event, the device time of the work it launched itself (see ``launchers``)."""
    import numpy as np

    launched = launchers(trace)
    mine = launched >= 0
    weights = (trace.end - trace.start)[mine]
    return np.bincount(launched[mine], weights=weights, minlength=len(trace)).astype(np.float64)


def operators(trace: Trace, group_by: str = "name") -> list[dict[str, Any]]:
    """One row per operator name (``group_by="name"``) or name and input shapes (``"shapes"``), the
    longest device self time first. ``called_from`` is the innermost frame of user code (not torch's or
    another library's) that called the operator most often, ``call_stack`` that whole stack, innermost first.
    """
    import numpy as np

    if group_by not in ("name", "shapes"):
        raise ValueError(f"group_by must be 'name' or 'shapes', got {group_by!r}")
    ops = np.flatnonzero(trace.kind == KIND["cpu_op"])
    ops = ops[np.lexsort((-trace.end[ops], trace.start[ops], trace.thread[ops]))]
    threads, starts, ends = trace.thread[ops].tolist(), trace.start[ops].tolist(), trace.end[ops].tolist()
    own_device = device_time_by_operator(trace)[ops].tolist()
    # Nesting on one thread: an operator's children are the operators inside it.
    host_self = [b - a for a, b in zip(starts, ends, strict=True)]
    device_total = list(own_device)
    stack: list[int] = []
    for k in [*range(len(ops)), -1]:
        while stack and (k < 0 or threads[k] != threads[stack[-1]] or starts[k] >= ends[stack[-1]]):
            done = stack.pop()
            if stack:
                host_self[stack[-1]] -= ends[done] - starts[done]
                device_total[stack[-1]] += device_total[done]
        if k >= 0:
            stack.append(k)
    stacks = _call_stacks(trace, ops)
    shapes = trace.text_arg("Input Dims")[ops] if group_by == "shapes" else np.full(len(ops), -1)
    rows: dict[tuple[int, int], dict[str, Any]] = {}
    called: dict[tuple[int, int], Counter[tuple[str, ...]]] = defaultdict(Counter)
    for k, (name, shape) in enumerate(zip(trace.name[ops].tolist(), shapes.tolist(), strict=True)):
        row = rows.get((name, shape))
        if row is None:
            row = rows[name, shape] = {
                "name": trace.strings[name], "input_shapes": trace.strings[shape] if shape >= 0 else None,
                "calls": 0, "host_self_us": 0.0, "host_total_us": 0.0, "device_self_us": 0.0, "device_total_us": 0.0,
            }  # fmt: skip
        row["calls"] += 1
        row["host_total_us"] += ends[k] - starts[k]
        row["host_self_us"] += host_self[k]
        row["device_self_us"] += own_device[k]
        row["device_total_us"] += device_total[k]
        if stacks[k]:
            called[name, shape][stacks[k]] += 1
    for key, row in rows.items():
        common = called[key].most_common(1)
        frames = list(common[0][0]) if common else []
        user = [f for f in frames if not LIBRARY.search(f)]
        row["called_from"] = readable_frame(user[0] if user else frames[0]) if frames else None
        row["call_stack"] = [readable_frame(f) for f in frames]
    return sorted(rows.values(), key=lambda r: (-r["device_self_us"], -r["host_self_us"]))


def _call_stacks(trace: Trace, ops: NDArray[np.int64]) -> list[tuple[str, ...]]:
    """For each operator of ``ops``, the Python frames it ran in, innermost first: from the
    ``python_function`` events ``with_stack=True`` records on the operator's thread, else from an
    operator's own ``Call stack`` argument (older traces)."""
    import numpy as np

    recorded = trace.text_arg("Call stack")[ops]
    found: list[tuple[str, ...]] = [
        tuple(f for f in trace.strings[s].split(";") if f) if s >= 0 else () for s in recorded.tolist()
    ]
    python = np.flatnonzero(trace.kind == KIND["python"])
    if not len(python):
        return found
    both = np.r_[python, ops]
    is_op = np.r_[np.zeros(len(python), bool), np.ones(len(ops), bool)]
    order = np.lexsort((is_op, trace.start[both], trace.thread[both]))
    position = {int(op): k for k, op in enumerate(ops.tolist())}
    stack: list[int] = []
    thread = None
    for i, op in zip(both[order].tolist(), is_op[order].tolist(), strict=True):
        if trace.thread[i] != thread:
            stack, thread = [], trace.thread[i]
        while stack and trace.end[stack[-1]] <= trace.start[i]:
            stack.pop()
        if op:
            frames = [trace.strings[trace.name[f]] for f in reversed(stack)]
            found[position[i]] = tuple(f for f in frames if not f.startswith("nn.Module: ")) or found[position[i]]
        else:
            stack.append(i)
    return found


def kernels(trace: Trace, group_by: str = "name") -> list[dict[str, Any]]:
    """One row per kernel name (``group_by="name"``), or per launching operator and kernel name
    (``"operator"``, see ``launchers``), the longest total first."""
    import numpy as np

    if group_by not in ("name", "operator"):
        raise ValueError(f"group_by must be 'name' or 'operator', got {group_by!r}")
    where = np.flatnonzero(trace.kind == KIND["kernel"])
    launcher = np.full(len(where), -1, dtype=np.int64)
    if group_by == "operator":
        launched_by = launchers(trace)[where]
        launcher[launched_by >= 0] = trace.name[launched_by[launched_by >= 0]]
    duration = (trace.end - trace.start)[where]
    blocks, occupancy = trace.arg("blocks per SM")[where], trace.arg("est. achieved occupancy %")[where]
    measured = ~np.isnan(blocks) & ~np.isnan(occupancy)
    keys = launcher * len(trace.strings) + trace.name[where]
    groups, inverse = np.unique(keys, return_inverse=True)

    def total(values: NDArray[np.float64]) -> list[float]:
        return np.bincount(inverse, weights=values, minlength=len(groups)).tolist()

    calls = np.bincount(inverse, minlength=len(groups)).tolist()
    totals, weighted = total(duration), total(np.where(measured, duration, 0))
    blocks_sum = total(np.where(measured, blocks * duration, 0))
    occupancy_sum = total(np.where(measured, occupancy * duration, 0))
    low, high = np.full(len(groups), np.inf), np.full(len(groups), -np.inf)
    np.minimum.at(low, inverse, duration)
    np.maximum.at(high, inverse, duration)
    with_tensor_cores = set(trace.name[uses_tensor_cores(trace)].tolist())
    rows = []
    for g, key in enumerate(groups.tolist()):
        operator, name = divmod(key, len(trace.strings))
        row: dict[str, Any] = {}
        if group_by == "operator":
            row["operator"] = trace.strings[operator] if operator >= 0 else None
        row.update({
            "name": trace.strings[name], "calls": calls[g], "total_us": totals[g], "mean_us": totals[g] / calls[g],
            "min_us": float(low[g]), "max_us": float(high[g]),
            # None: ROCm traces have no such fields
            "blocks_per_sm": blocks_sum[g] / weighted[g] if weighted[g] else None,
            "occupancy_pct": occupancy_sum[g] / weighted[g] if weighted[g] else None,
        })  # fmt: skip
        row["tensor_cores"] = name in with_tensor_cores
        rows.append(row)
    return sorted(rows, key=lambda r: -r["total_us"])
