"""The Overview of a trace: per step, where the wall time went, GPU utilization, and recommendations.

A step's wall time is split into eight categories that sum to it exactly: each instant of the step
goes to the first of communication, kernel, memcpy, memset, runtime, dataloader and cpu_exec that
is active then, and to "other" when none is. Steps partition time: a step starts at its
``ProfilerStep#N`` host start but never before the previous step ended, and ends at the later of its
host end and the end of the last kernel, memcpy or memset it launched (matched by correlation id), so
that in a GPU-bound loop, where the host runs ahead, each step covers its own device work once.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tbscope.profiler.trace import STEP_NAME, Event, Trace

CATEGORIES = ("kernel", "memcpy", "memset", "communication", "runtime", "dataloader", "cpu_exec", "other")
# Which category an instant belongs to when several are active: device work first.
PRIORITY = ("communication", "kernel", "memcpy", "memset", "runtime", "dataloader", "cpu_exec")
SYNC_CALLS = ("cudaDeviceSynchronize", "cudaStreamSynchronize", "cudaEventSynchronize", "cudaMemcpy",
              "hipDeviceSynchronize", "hipStreamSynchronize", "hipMemcpy")  # fmt: skip


def union(intervals: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """The sorted, disjoint union of ``(start, end)`` intervals."""
    merged: list[tuple[float, float]] = []
    for start, end in sorted(intervals):
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def measure(intervals: Iterable[tuple[float, float]]) -> float:
    """Total length of a union of intervals."""
    return sum(end - start for start, end in union(intervals))


def is_communication(event: Event, on_host: bool = False) -> bool:
    """A collective: an NCCL/RCCL kernel (by its ``Collective name`` argument or its name), or, with
    ``on_host`` (a trace without device activity, as a CPU job over gloo leaves), a ``c10d::`` operator."""
    if event.kind == "kernel":
        name = event.name.lower()
        return "Collective name" in event.args or "nccl" in name or "rccl" in name
    return on_host and event.kind == "cpu_op" and event.name.startswith(("c10d::", "gloo:"))


def _category(event: Event, has_device: bool) -> str | None:
    """The breakdown category of an event, or None for the step annotations themselves. Where there is
    a device, its collective kernels are the communication, and the host's collective calls just CPU work."""
    if is_communication(event, on_host=not has_device):
        return "communication"
    if event.kind == "kernel":
        return "kernel"
    if event.kind in ("memcpy", "memset", "runtime"):
        return event.kind
    if event.kind == "gpu_annotation" or STEP_NAME.match(event.name):
        return None
    if "dataloader" in event.name.lower():
        return "dataloader"
    return "cpu_exec"


@dataclass
class Step:
    """One step: its number, its window (microseconds from the trace's start), and the breakdown."""

    step: int
    start: float
    end: float
    breakdown_us: dict[str, float]
    kernel_busy_us: float
    kernels: int
    syncs: int

    @property
    def duration_us(self) -> float:
        return self.end - self.start


@dataclass
class Overview:
    """What ``tbscope profile`` prints for one trace."""

    file: str
    worker: str
    device: str | None
    steps: list[Step]
    devices: list[dict[str, Any]]
    has_device: bool
    sm_efficiency: float | None = None  # kernel time weighted by min(blocks per SM, 1)
    achieved_occupancy: float | None = None  # percent, weighted by kernel time
    tensor_core_share: float | None = None  # of the time of GEMM and convolution kernels
    eligible_share: float | None = None  # GEMM and convolution kernels' share of all kernel time
    memory_peak_share: float | None = None  # peak reserved memory over the device's capacity
    gpu_idle_share: float | None = None  # of the device's busy span; see gpu_idle_share()
    recommendations: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def gpu_utilization(self) -> float | None:
        """Share of the steps' time some kernel ran; None for a trace without device activity."""
        if not self.has_device:
            return None
        total = sum(s.duration_us for s in self.steps)
        return sum(s.kernel_busy_us for s in self.steps) / total if total else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "worker": self.worker,
            "device": self.device,
            "devices": self.devices,
            "steps": [
                {"step": s.step, "duration_us": s.duration_us, "breakdown_us": dict(s.breakdown_us)} for s in self.steps
            ],
            "gpu_utilization": self.gpu_utilization,
            "sm_efficiency": self.sm_efficiency,
            "achieved_occupancy": self.achieved_occupancy,
            "tensor_core_share": self.tensor_core_share,
            "memory_peak_share": self.memory_peak_share,
            "gpu_idle_share": self.gpu_idle_share,
            "recommendations": self.recommendations,
            "notes": self.notes,
        }


def _steps(trace: Trace) -> list[tuple[int, float, float]]:
    marks = [(int(m.group(1)), e.start, e.end) for e in trace.events if e.kind == "annotation"
             for m in [STEP_NAME.match(e.name)] if m]  # fmt: skip
    if marks:
        return sorted(marks, key=lambda m: m[1])
    if not trace.events:
        return []
    return [(0, min(e.start for e in trace.events), max(e.end for e in trace.events))]  # one step: the trace


def analyze(trace: Trace) -> Overview:
    """The Overview of ``trace``: steps from its ``ProfilerStep#N`` annotations (one step spanning the
    trace when it has none)."""
    device_by_correlation: dict[Any, float] = {}
    for e in trace.events:
        if e.kind in ("kernel", "memcpy", "memset") and "correlation" in e.args:
            device_by_correlation[e.args["correlation"]] = max(
                device_by_correlation.get(e.args["correlation"], 0.0), e.end
            )
    runtime = sorted((e for e in trace.events if e.kind == "runtime"), key=lambda e: e.start)
    runtime_starts = [e.start for e in runtime]
    has_device = any(e.kind in ("kernel", "memcpy", "memset") for e in trace.events)
    categorized = sorted(
        ((e.start, e.end, c, e) for e in trace.events if (c := _category(e, has_device)) is not None),
        key=lambda t: t[0],
    )
    starts = [t[0] for t in categorized]
    longest = max((t[1] - t[0] for t in categorized), default=0.0)  # how far back an event may start
    steps = []
    previous_end = -float("inf")
    for number, host_start, host_end in _steps(trace):
        # Steps partition time (torch-tb-profiler's rule): a step starts at its host start but never before
        # the previous step ended, and ends once the host and the device work it launched are both done.
        launched = runtime[
            bisect.bisect_left(runtime_starts, host_start) : bisect.bisect_left(runtime_starts, host_end)
        ]
        start = max(host_start, previous_end)
        device_end = max((device_by_correlation.get(r.args.get("correlation"), host_end) for r in launched),
                         default=host_end)  # fmt: skip
        end = previous_end = max(host_end, device_end, start)
        intervals: dict[str, list[tuple[float, float]]] = {c: [] for c in PRIORITY}
        first = bisect.bisect_left(starts, start - longest)
        for lo, hi, category, _ in categorized[first : bisect.bisect_left(starts, end)]:
            if hi > start:
                intervals[category].append((max(lo, start), min(hi, end)))
        breakdown: dict[str, float] = {}
        covered: list[tuple[float, float]] = []
        covered_us = 0.0
        for category in PRIORITY:
            covered = union(covered + intervals[category])
            total = sum(b - a for a, b in covered)
            breakdown[category] = total - covered_us
            covered_us = total
        breakdown["other"] = (end - start) - covered_us
        kernels = intervals["kernel"] + intervals["communication"]
        syncs = sum(1 for r in launched if r.name in SYNC_CALLS)
        steps.append(Step(number, start, end, {c: breakdown[c] for c in CATEGORIES}, measure(kernels),
                          len(kernels), syncs))  # fmt: skip
    devices = trace.header.get("deviceProperties") or []
    device = devices[0].get("name") if devices and isinstance(devices[0], dict) else None
    overview = Overview(trace.path, trace.worker, device, steps, [_summary(d) for d in devices], has_device)
    _device_figures(trace, overview)
    overview.gpu_idle_share = gpu_idle_share(trace)
    if not trace.events:
        overview.notes.append("the trace holds no events")
    for category, count in sorted(trace.unknown_categories.items()):
        overview.notes.append(f"{count} event(s) of unknown category {category!r} left out")
    overview.recommendations = recommend(overview)
    return overview


ELIGIBLE_NAME = re.compile(r"(gemm|conv|cudnn|cutlass|xmma|gmma)", re.I)
TENSOR_CORE_NAME = re.compile(
    r"(h884|h1688|s1688|h16816|s16816|i8816|tensorop|wmma|hmma|xmma|gmma|mma_|bf16|f16)", re.I
)


def _summary(device: Any) -> dict[str, Any]:
    """What a trace says of a device: name, memory, SMs and compute capability."""
    if not isinstance(device, dict):
        return {}
    memory = device.get("totalGlobalMem")
    major, minor = device.get("computeMajor"), device.get("computeMinor")
    return {
        "id": device.get("id"),
        "name": device.get("name"),
        "memory_gib": round(memory / 2**30, 1) if memory else None,
        "sms": device.get("numSms"),
        "compute_capability": f"{major}.{minor}" if major is not None else None,
    }


def gpu_idle_share(trace: Trace) -> float | None:
    """The share of time the device sat idle between its first and its last kernel, memcpy or memset,
    leaving out the trace's last ``ProfilerStep`` (torch records it cut short when the profiler stops),
    as Holistic Trace Analysis's temporal breakdown does. None without device activity."""
    steps = [e.start for e in trace.events if e.kind == "annotation" and STEP_NAME.match(e.name)]
    cutoff = max(steps) if len(steps) > 1 else float("inf")
    device = [(e.start, e.end) for e in trace.events if e.kind in ("kernel", "memcpy", "memset") and e.start < cutoff]
    if not device:
        return None
    span = max(end for _, end in device) - min(start for start, _ in device)
    return 1 - measure(device) / span if span > 0 else 0.0


@functools.cache
def uses_tensor_cores(kernel: str) -> bool:
    """Whether a kernel's name says it runs on tensor cores, as NVIDIA's libraries name them."""
    return TENSOR_CORE_NAME.search(kernel) is not None


@functools.cache
def _eligible(kernel: str) -> bool:
    return ELIGIBLE_NAME.search(kernel) is not None


def _device_figures(trace: Trace, overview: Overview) -> None:
    """SM efficiency, achieved occupancy and tensor-core use over the kernels in the steps; the peak of
    reserved memory against the device's capacity. Each stays None where the trace lacks its fields."""
    windows = sorted((s.start, s.end) for s in overview.steps)
    window_starts = [a for a, _ in windows]
    longest = max((b - a for a, b in windows), default=0.0)

    def in_a_step(start: float, end: float) -> bool:
        """Whether [start, end) overlaps a step: only the steps starting less than a step's length
        before it need a look."""
        nearby = windows[bisect.bisect_left(window_starts, start - longest) : bisect.bisect_left(window_starts, end)]
        return any(b > start for _, b in nearby)

    weighted = blocks = occupancy = eligible = tensor_cores = all_kernels = 0.0
    for e in trace.events:
        if e.kind != "kernel" or not in_a_step(e.start, e.end):
            continue
        duration = e.end - e.start
        all_kernels += duration
        if "blocks per SM" in e.args and "est. achieved occupancy %" in e.args:
            weighted += duration
            blocks += duration * min(float(e.args["blocks per SM"]), 1.0)
            occupancy += duration * float(e.args["est. achieved occupancy %"])
        if _eligible(e.name):
            eligible += duration
            tensor_cores += duration if uses_tensor_cores(e.name) else 0.0
    if weighted:
        overview.sm_efficiency, overview.achieved_occupancy = blocks / weighted, occupancy / weighted
    if eligible:
        overview.tensor_core_share, overview.eligible_share = tensor_cores / eligible, eligible / all_kernels
    devices = trace.header.get("deviceProperties") or []
    capacity = {
        d.get("id", i): float(d.get("totalGlobalMem") or 0) for i, d in enumerate(devices) if isinstance(d, dict)
    }
    shares = [
        float(m.args.get("Total Reserved", 0)) / capacity[m.args.get("Device Id")]
        for m in trace.memory
        if m.args.get("Device Type") == 1 and capacity.get(m.args.get("Device Id"))
    ]
    overview.memory_peak_share = max(shares) if shares else None


def recommend(overview: Overview) -> list[str]:
    """What to look at first, each with the number that triggered it."""
    steps = overview.steps
    total = sum(s.duration_us for s in steps)
    if not total:
        return []
    share = {c: sum(s.breakdown_us[c] for s in steps) / total for c in CATEGORIES}
    advice = []
    if share["dataloader"] > 0.05:
        advice.append(
            f"DataLoader-bound: {share['dataloader']:.0%} of the step time waits for data. Raise num_workers, "
            "set pin_memory=True and persistent_workers=True, or move preprocessing off the training process."
        )
    utilization = overview.gpu_utilization
    if utilization is not None and utilization < 0.5:
        advice.append(
            f"Low GPU utilization: kernels run {utilization:.0%} of the step time. Look at what the host does "
            "between launches (the cpu_exec, runtime and dataloader shares), or grow the batch."
        )
    kernels = sum(s.kernels for s in steps)
    if kernels and overview.has_device:
        mean_us = sum(s.kernel_busy_us for s in steps) / kernels
        per_step = kernels / len(steps)
        if mean_us < 10 and per_step > 500:
            advice.append(
                f"Launch-bound: {per_step:.0f} kernels a step averaging {mean_us:.1f} us each. Fuse them "
                "(torch.compile) or capture the step in a CUDA graph."
            )
    syncs = sum(s.syncs for s in steps) / len(steps)
    if syncs >= 1:
        advice.append(
            f"Host-device syncs: {syncs:.0f} a step (cudaDeviceSynchronize, cudaStreamSynchronize, blocking "
            "cudaMemcpy). Find them with torch.cuda.set_sync_debug_mode('warn'); .item() and printing tensors "
            "are the usual causes."
        )
    tensor_cores, eligible = overview.tensor_core_share, overview.eligible_share or 0.0
    if tensor_cores is not None and eligible > 0.1 and tensor_cores < 0.5:
        advice.append(
            f"Tensor cores idle: {1 - tensor_cores:.0%} of the GEMM and convolution kernel time "
            f"({eligible:.0%} of all kernel time) runs without them. Train in mixed precision "
            "(torch.autocast with bfloat16 or float16) or allow TF32 (torch.backends.cuda.matmul.allow_tf32)."
        )
    if overview.memory_peak_share is not None and overview.memory_peak_share > 0.9:
        advice.append(
            f"Memory near capacity: the caching allocator reserved {overview.memory_peak_share:.0%} of the "
            "device's memory at its peak. Expect fragmentation and out-of-memory errors; shrink the batch, "
            "use activation checkpointing or mixed precision."
        )
    if share["communication"] > 0.2:
        advice.append(
            f"Communication-bound: {share['communication']:.0%} of the step time in collectives. Overlap them "
            "with compute (bucketing in DDP) or reduce their size (gradient compression, larger batches)."
        )
    return advice


def span(trace: Trace, step: int) -> Trace:
    """The part of ``trace`` within one step's window (``ProfilerStep#<step>``, extended as the Overview
    extends it to the device work the step launched). Raises ValueError for a step the trace lacks."""
    window = next(((s.start, s.end) for s in analyze(trace).steps if s.step == step), None)
    if window is None:
        raise ValueError(f"the trace has no step {step}")
    start, end = window
    events = [e for e in trace.events if e.end > start and e.start < end]
    memory = [m for m in trace.memory if start <= m.time < end]
    return Trace(trace.path, events, trace.header, trace.unknown_categories, memory)
