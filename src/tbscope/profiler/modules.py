"""The Modules view: the model's ``nn.Module`` calls as a tree, with host and device time.

``tbscope.profile(..., model=model)`` marks each module call with its qualified name in the model
(``nn.Module: layer3.1.conv2``, a ``user_annotation``); those are used where the trace has them. Else
torch's own module events (``python_function`` events ``nn.Module: <Class>_<n>``, which torch's Python
tracer records with ``with_stack=True``) make the tree: modules nest as their calls do, so a module's
path is its callers' names and its own, ``ResNet_0.Sequential_2.BasicBlock_1.Conv2d_7``.
"""

from __future__ import annotations

import re
from typing import Any

from tbscope.profiler.tables import device_time_by_operator
from tbscope.profiler.trace import KIND, Trace

MODULE_PREFIX = "nn.Module: "
_PREFIX = re.compile("^" + MODULE_PREFIX)
HOW_TO_RECORD = (
    "tbscope.profile(..., model=model) (each module by its qualified name, as layer3.1.conv2) or "
    "tbscope.profile(..., with_stack=True) (torch's module events, by class, as Conv2d_3)"
)


def modules(trace: Trace) -> list[dict[str, Any]]:
    """One row per module path, in call order (a parent before its children): ``module`` (the path),
    ``name`` (its own part), ``parent`` (the parent's path, None at the top), ``depth``, ``calls``,
    ``host_total_us`` (its forward calls' time on the host) and ``device_total_us`` (the device time of the
    kernels its forward's operators launched). Empty when the trace has no module events.

    Example:
        >>> import json, tempfile; from pathlib import Path; from tbscope.profiler.trace import load
        >>> call = lambda name, ts, dur: {"ph": "X", "cat": "python_function", "name": f"nn.Module: {name}",
        ...                               "ts": ts, "dur": dur, "pid": 1, "tid": 1}
        >>> path = Path(tempfile.mkdtemp()) / "w.pt.trace.json"
        >>> _ = path.write_text(json.dumps({"traceEvents": [call("Net_0", 0, 50), call("Linear_0", 5, 20)]}))
        >>> [(r["module"], r["depth"], r["host_total_us"]) for r in modules(load(path))]
        [('Net_0', 0, 50.0), ('Net_0.Linear_0', 1, 20.0)]
    """
    import numpy as np

    named = trace.matching(_PREFIX)
    qualified = bool(np.any(named & (trace.kind == KIND["annotation"])))
    module_events = np.flatnonzero(named & (trace.kind == KIND["annotation" if qualified else "python"]))
    if not len(module_events):
        return []
    ops = np.flatnonzero(trace.kind == KIND["cpu_op"])
    own = device_time_by_operator(trace)[ops]
    rows: dict[str, dict[str, Any]] = {}
    order = module_events[np.lexsort((-trace.end[module_events], trace.start[module_events],
                                      trace.thread[module_events]))]  # fmt: skip
    stack: list[tuple[float, str]] = []
    thread = None
    for i in order.tolist():
        if trace.thread[i] != thread:
            stack, thread = [], trace.thread[i]
        while stack and stack[-1][0] <= trace.start[i]:
            stack.pop()
        name = trace.strings[trace.name[i]].removeprefix(MODULE_PREFIX)
        parent = stack[-1][1] if stack else None
        path = name if parent is None or qualified else f"{parent}.{name}"
        # The operators of this call: those on its thread that start within it.
        mine = ops[
            (trace.thread[ops] == thread) & (trace.start[ops] >= trace.start[i]) & (trace.start[ops] < trace.end[i])
        ]
        row = rows.setdefault(path, {"module": path, "name": name, "parent": parent, "depth": len(stack), "calls": 0,
                                     "host_total_us": 0.0, "device_total_us": 0.0})  # fmt: skip
        row["calls"] += 1
        row["host_total_us"] += float(trace.end[i] - trace.start[i])
        row["device_total_us"] += float(own[np.searchsorted(ops, mine)].sum())
        stack.append((float(trace.end[i]), path))
    return list(rows.values())


def view(trace: Trace, rows: int) -> dict[str, Any]:
    """The Modules view: ``modules`` (the first ``rows`` of ``modules(trace)``), and where there are none,
    ``hint``, what records them."""
    found = modules(trace)
    hint = None if found else f"This trace has no module events: profile with {HOW_TO_RECORD}."
    return {"modules": found[:rows], "hint": hint}
