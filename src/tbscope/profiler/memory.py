"""The Memory view of a trace (``profile_memory=True``): the allocator's curves per device, the operators
that allocated most, and the allocations never freed within the trace, a leak's suspects."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tbscope.profiler.trace import KIND, Trace

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

# Points of a memory curve at most: what a screen can show.
CURVE_POINTS = 2000
# Rows of the allocation tables at most.
TOP = 50


def device_name(device_type: float, device_id: float) -> str:
    """``cpu``, ``cuda:<id>``, or ``device<type>:<id>``, as torch names devices.

    Example:
        >>> device_name(1.0, 0.0), device_name(0.0, float("nan"))
        ('cuda:0', 'cpu')
    """
    index = int(device_id) if device_id == device_id else 0
    if device_type == 0:
        return "cpu"
    return f"cuda:{index}" if device_type == 1 else f"device{device_type:g}:{index}"


def _operators_running(trace: Trace, times: NDArray[np.float64], threads: NDArray[np.int32]) -> list[str]:
    """For each instant (on its thread), the innermost operator running then: the latest-starting one
    that has not ended; ``(outside any operator)`` where none runs."""
    import numpy as np

    names = []
    ops = np.flatnonzero(trace.kind == KIND["cpu_op"])
    by_thread = {}
    for thread in np.unique(threads).tolist():
        mine = ops[trace.thread[ops] == thread]
        mine = mine[np.argsort(trace.start[mine], kind="stable")]
        by_thread[thread] = (mine, trace.start[mine], trace.end[mine])
    for time, thread in zip(times.tolist(), threads.tolist(), strict=True):
        mine, starts, ends = by_thread[thread]
        index = int(np.searchsorted(starts, time, side="right")) - 1
        while index >= 0 and ends[index] < time:
            index -= 1
        names.append(trace.strings[trace.name[mine[index]]] if index >= 0 else "(outside any operator)")
    return names


def memory(trace: Trace) -> dict[str, Any]:
    """Per device: allocated and reserved bytes over time (``[time_us, allocated, reserved]``,
    peak-preserving, ``CURVE_POINTS`` at most), their peaks and the device's capacity when the trace says
    it; the operators that allocated most (``top_operators``); the allocations of the window never freed
    in it, largest first (``never_freed``); and ``window_us``, the span these tables sum over.

    Example:
        >>> import json, tempfile; from pathlib import Path; from tbscope.profiler.trace import load
        >>> path = Path(tempfile.mkdtemp()) / "w.pt.trace.json"
        >>> alloc = lambda ts, size, addr, total: {"ph": "i", "name": "[memory]", "ts": ts, "args": {
        ...     "Bytes": size, "Addr": addr, "Total Allocated": total, "Device Type": 1, "Device Id": 0}}
        >>> _ = path.write_text(json.dumps({"traceEvents": [alloc(0, 512, 1, 512), alloc(5, 256, 2, 768),
        ...                                                  alloc(9, -512, 1, 256)]}))
        >>> view = memory(load(path))
        >>> view["devices"]["cuda:0"]["peak_allocated"], [r["bytes"] for r in view["never_freed"]]
        (768.0, [256.0])
    """
    import numpy as np

    m = trace.memory
    capacity = {
        f"cuda:{d.get('id', i)}": d.get("totalGlobalMem") for i, d in enumerate(trace.header["deviceProperties"])
    }
    order = np.argsort(m.time, kind="stable")
    names = np.array([device_name(t, d) for t, d in zip(m.device_type.tolist(), m.device_id.tolist(), strict=True)])
    devices = {}
    for device in sorted(set(names.tolist())):
        mine = order[names[order] == device]
        time, allocated, reserved = m.time[mine], np.nan_to_num(m.allocated[mine]), np.nan_to_num(m.reserved[mine])
        span = float(time[-1] - time[0]) or 1.0
        slot = ((time - time[0]) / span * (CURVE_POINTS - 1)).astype(np.int64)
        # Per slot, the point of the highest allocation, so that the peak survives.
        best = np.lexsort((-allocated, slot))
        first = best[np.r_[True, slot[best][1:] != slot[best][:-1]]]
        devices[device] = {
            "curve": np.c_[time[first], allocated[first], reserved[first]].tolist(),
            "peak_allocated": float(allocated.max()),
            "peak_reserved": float(reserved.max()),
            "capacity": capacity.get(device),
        }
    allocations = np.flatnonzero(m.bytes > 0)
    operator = np.array(_operators_running(trace, m.time[allocations], m.thread[allocations]), dtype=object)
    top: dict[str, list[float]] = {}
    for name, size in zip(operator.tolist(), m.bytes[allocations].tolist(), strict=True):
        row = top.setdefault(name, [0.0, 0])
        row[0] += size
        row[1] += 1
    # Never freed: the next event at the same address of the same device is not a free (or there is none).
    device_code = np.nan_to_num(m.device_type, nan=-1) * 1e6 + np.nan_to_num(m.device_id, nan=-1)
    ordered = np.lexsort((m.time, m.addr, device_code))
    same = (device_code[ordered][1:] == device_code[ordered][:-1]) & (m.addr[ordered][1:] == m.addr[ordered][:-1])
    freed = np.zeros(len(m), bool)
    freed[ordered[:-1]] = same & (m.bytes[ordered][1:] < 0)
    kept = np.flatnonzero(~freed[allocations]).tolist()
    never = sorted(kept, key=lambda k: -m.bytes[allocations[k]])[:TOP]
    return {
        "window_us": [float(m.time.min()), float(m.time.max())] if len(m) else None,
        "devices": devices,
        "top_operators": [
            {"name": n, "allocated_bytes": b, "allocations": int(c)}
            for n, (b, c) in sorted(top.items(), key=lambda item: -item[1][0])[:TOP]
        ],
        "never_freed": [
            {
                "operator": operator[k],
                "bytes": float(m.bytes[allocations[k]]),
                "time_us": float(m.time[allocations[k]]),
                "device": str(names[allocations[k]]),
            }
            for k in never
        ],
    }
