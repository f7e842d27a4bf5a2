"""The Distributed view: per rank, where a step's time went (computation, communication, their overlap,
idle), with the same steps and the same collectives as the Overview, and per collective, its calls,
bytes and time on each rank; the slowest rank named."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tbscope.profiler.overview import analyze, clipped, communication, in_steps, measure
from tbscope.profiler.trace import DEVICE_KINDS, KIND, Trace, launchers

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

# Bytes an element of each of NCCL's data types takes, by the names torch writes in a kernel's ``dtype``.
ELEMENT_BYTES = {"Float": 4, "Half": 2, "BFloat16": 2, "Double": 8, "Int": 4, "Long": 8, "Byte": 1, "Char": 1,
                 "Bool": 1, "Float8_e4m3fn": 1, "Float8_e5m2": 1}  # fmt: skip
COLLECTIVE_IN_NAME = re.compile(
    r"(all_?reduce|all_?gather|reduce_?scatter|broadcast|all_?to_?all|send_?recv|send|recv|barrier)", re.I
)


def collective_name(name: str, recorded: str | None) -> str:
    """What a collective is called: its ``Collective name`` argument where the trace has one (NCCL kernels
    of recent torch), else the operation its kernel's or operator's name says, else the name.

    Example:
        >>> collective_name("ncclDevKernel_AllReduce_Sum_f32_RING_LL(ncclDevComm*, unsigned long, ncclWork*)", None)
        'allreduce'
        >>> collective_name("c10d::allreduce_", None), collective_name("ncclKernel", "all_gather")
        ('allreduce', 'all_gather')
    """
    if recorded:
        return recorded
    found = COLLECTIVE_IN_NAME.search(name)
    return found.group(1).lower().replace("_", "") if found else name


def distributed(traces: Sequence[Trace]) -> dict[str, Any]:
    """Per worker (rank), per step on average: the step time (as the Overview's), computation (kernels,
    or on a trace without a device, operators, other than collectives), communication (collectives, as
    the Overview counts them), their overlap, and idle time (no device work, or on a trace without a
    device no operator, running); per collective, its calls, bytes and time, in all and per rank; and
    the slowest rank (the longest mean step).
    """
    import numpy as np

    workers: list[dict[str, Any]] = []
    collectives: dict[str, dict[str, Any]] = {}
    for trace in traces:
        overview = analyze(trace)
        windows = [(s.start, s.end) for s in overview.steps]
        steps = max(len(windows), 1)
        has_device = overview.has_device
        stepped = in_steps(trace, overview.steps)
        comm = communication(trace, has_device) & stepped
        work = (trace.kind == KIND["kernel"]) if has_device else (trace.kind == KIND["cpu_op"])
        comp_a, comp_b = clipped(trace, work & ~comm & stepped, windows)
        comm_a, comm_b = clipped(trace, comm, windows)
        busy_a, busy_b = clipped(trace, (trace.of(*DEVICE_KINDS) if has_device else work) & stepped, windows)
        computation, communicating = measure(comp_a, comp_b), measure(comm_a, comm_b)
        overlap = computation + communicating - measure(np.r_[comp_a, comm_a], np.r_[comp_b, comm_b])
        busy = measure(np.r_[busy_a, comm_a], np.r_[busy_b, comm_b])
        total = sum(b - a for a, b in windows)
        workers.append({
            "worker": trace.worker,
            "steps": len(windows),
            "step_time_us": total / steps,
            "computation_us": computation / steps,
            "communication_us": communicating / steps,
            "overlap_us": overlap / steps,
            "idle_us": (total - busy) / steps,
        })  # fmt: skip
        nelems, dtypes, named = trace.arg("In msg nelems"), trace.text_arg("dtype"), trace.text_arg("Collective name")
        launched_by = launchers(trace)
        for i in np.flatnonzero(comm).tolist():
            if not has_device and _nested_in_collective(trace, i, comm):
                continue
            # What the collective is, from the kernel or else the operator that launched it (torch's
            # record_param_comms carries the name, the type and the size of a collective).
            about = i if named[i] >= 0 or launched_by[i] < 0 else int(launched_by[i])
            name = collective_name(
                trace.strings[trace.name[i]], trace.strings[named[about]] if named[about] >= 0 else None
            )
            row = collectives.setdefault(name, {"calls": 0, "bytes": None, "total_us": 0.0,
                                                                     "per_rank": {}})  # fmt: skip
            size = ELEMENT_BYTES.get(trace.strings[dtypes[about]]) if dtypes[about] >= 0 else None
            sent = int(nelems[about] * size) if size and nelems[about] == nelems[about] else None
            mine = row["per_rank"].setdefault(trace.worker, {"calls": 0, "bytes": None, "total_us": 0.0})
            for counts in (row, mine):
                counts["calls"] += 1
                if sent is not None:  # None: the trace says no size (older torch, gloo)
                    counts["bytes"] = (counts["bytes"] or 0) + sent
                counts["total_us"] += float(trace.end[i] - trace.start[i])
    for row in collectives.values():
        row["mean_us"] = row["total_us"] / row["calls"]
        for mine in row["per_rank"].values():
            mine["mean_us"] = mine["total_us"] / mine["calls"]
    slowest = max(workers, key=lambda w: float(w["step_time_us"]))["worker"] if workers else None
    return {
        "workers": workers,
        "slowest": slowest,
        "collectives": sorted(({"name": n, **r} for n, r in collectives.items()), key=lambda r: -r["total_us"]),
    }


def _nested_in_collective(trace: Trace, index: int, comm: NDArray[np.bool_]) -> bool:
    """Whether a host collective runs inside another on its thread (``c10d::allreduce_`` inside
    ``gloo:all_reduce``'s caller): counted once, as the outer one."""
    import numpy as np

    same = comm & (trace.thread == trace.thread[index])
    same[index] = False
    return bool(np.any(same & (trace.start <= trace.start[index]) & (trace.end >= trace.end[index])))
