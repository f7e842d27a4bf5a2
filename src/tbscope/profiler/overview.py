"""The Overview of a trace: per step, where the wall time went, GPU utilization, and recommendations.

A step's wall time is split into eight categories that sum to it exactly: each instant of the step
goes to the first of communication, kernel, memcpy, memset, runtime, dataloader and cpu_exec that
is active then, and to "other" when none is (Python frames are not CPU execution). Steps partition
time by torch-tb-profiler's rule (``step_windows``, the one home of it for every view, the ``profile/``
scalars and ``tbscope profile``): in a GPU-bound loop, where the host runs ahead, each step covers its
own device work once. Advice is weighed by the time at stake, not by counts.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tbscope.profiler.trace import DEVICE_KINDS, KIND, STEP_NAME, Trace, launchers

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

CATEGORIES = ("kernel", "memcpy", "memset", "communication", "runtime", "dataloader", "cpu_exec", "other")
# Which category an instant belongs to when several are active: device work first.
PRIORITY = ("communication", "kernel", "memcpy", "memset", "runtime", "dataloader", "cpu_exec")
SYNC_CALLS = ("cudaDeviceSynchronize", "cudaStreamSynchronize", "cudaEventSynchronize", "cudaMemcpy",
              "hipDeviceSynchronize", "hipStreamSynchronize", "hipMemcpy")  # fmt: skip
# Real matrix-multiply and convolution kernels, as cuBLAS, cuDNN, CUTLASS and Triton name them; cuDNN's
# batch-norm kernels and its layout transforms carry "cudnn" in their names but are neither.
GEMM_OR_CONV = re.compile(r"gemm|conv|xmma|gmma|cutlass|fprop|dgrad|wgrad|winograd|scudnn|hcudnn|matmul|_mm_", re.I)
NOT_GEMM_OR_CONV = re.compile(
    r"bn_|batch_?norm|nchwToNhwc|nhwcToNchw|transpose|layer_?norm|elementwise|reduce|offsets|fbgemm_gpu", re.I
)
TENSOR_CORE_NAME = re.compile(
    r"h884|h1688|s1688|h16816|s16816|i8816|tensorop|wmma|hmma|xmma|gmma|mma_|bf16|f16|tf32", re.I
)
# cuDNN's conversions between NCHW and NHWC: the price of a model whose convolutions want channels_last.
LAYOUT_TRANSFORM = re.compile(r"nchwToNhwc|nhwcToNchw", re.I)
PAGEABLE_HOST_TO_DEVICE = re.compile(r"HtoD.*Pageable", re.I)
# The share of the step time the device must sit idle after syncs (their cost) before they are worth advice.
SYNC_SHARE = 0.05
# Names of events a recommendation rests on, at most.
EVIDENCE = 5


def union(starts: NDArray[np.float64], ends: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The sorted, disjoint union of the intervals ``[starts[i], ends[i])``, as its starts and ends.

    Example:
        >>> import numpy as np
        >>> [a.tolist() for a in union(np.array([5.0, 0.0, 2.0]), np.array([6.0, 3.0, 4.0]))]
        [[0.0, 5.0], [4.0, 6.0]]
    """
    import numpy as np

    keep = ends > starts
    starts, ends = starts[keep], ends[keep]
    if not len(starts):
        return starts, ends
    order = np.argsort(starts, kind="stable")
    starts, ends = starts[order], np.maximum.accumulate(ends[order])
    first = np.flatnonzero(np.r_[True, starts[1:] > ends[:-1]])
    last = np.r_[first[1:], len(starts)] - 1
    return starts[first], ends[last]


def measure(starts: NDArray[np.float64], ends: NDArray[np.float64]) -> float:
    """Total length of the union of the intervals ``[starts[i], ends[i])``."""
    merged_starts, merged_ends = union(starts, ends)
    return float((merged_ends - merged_starts).sum())


# Collectives by what they are, whatever category the trace files them under (gloo's are user annotations
# in some torch versions, operators in others): torch's c10d operators, its record_param_comms wrapper,
# and the backends' own annotations (gloo:all_reduce, nccl:all_reduce).
HOST_COLLECTIVE = re.compile(r"^(c10d::|record_param_comms$|gloo:|nccl:|rccl:|mpi:|ucc:)")
DEVICE_COLLECTIVE = re.compile(r"nccl|rccl", re.I)


def communication(trace: Trace, has_device: bool) -> NDArray[np.bool_]:
    """Which events are collectives: NCCL/RCCL kernels (by their ``Collective name`` argument or their
    names), or, in a trace without device activity (a CPU job over gloo), the host's collective calls
    (``HOST_COLLECTIVE``), operators or annotations alike."""

    kernels = trace.kind == KIND["kernel"]
    collective = kernels & ((trace.text_arg("Collective name") >= 0) | trace.matching(DEVICE_COLLECTIVE))
    if has_device:
        return collective
    host = trace.of("cpu_op", "annotation")
    return collective | (host & trace.matching(HOST_COLLECTIVE))


def categories(trace: Trace, has_device: bool) -> NDArray[np.int8]:
    """Each event's breakdown category, as an index into ``CATEGORIES``; -1 for the step annotations,
    device-side annotations and Python frames (``with_stack``: an outer frame spans the whole run, so
    counting frames as CPU execution would leave no host idle time). Where there is a device, its
    collective kernels are the communication, and the host's collective calls just CPU work."""
    import numpy as np

    code = {c: i for i, c in enumerate(CATEGORIES)}
    out = np.full(len(trace), code["cpu_exec"], dtype=np.int8)
    out[trace.matching(re.compile("dataloader", re.I))] = code["dataloader"]
    out[(trace.kind == KIND["annotation"]) & trace.matching(STEP_NAME)] = -1
    out[trace.of("gpu_annotation", "python")] = -1
    for kind in ("kernel", "memcpy", "memset", "runtime"):
        out[trace.kind == KIND[kind]] = code[kind]
    out[communication(trace, has_device)] = code["communication"]
    return out


def exposed_communication_us(trace: Trace, steps: list[Step], has_device: bool) -> tuple[float, float]:
    """The collectives' time in ``steps``, and the part of it no computation overlaps (kernels other than
    collectives, or on a trace without a device, operators other than collectives): what communication
    costs the step. The Distributed view splits each rank's step the same way."""
    import numpy as np

    windows = [(s.start, s.end) for s in steps]
    comm = communication(trace, has_device)
    if not comm.any():
        return 0.0, 0.0
    work = (trace.kind == KIND["kernel"]) if has_device else (trace.kind == KIND["cpu_op"])
    comm_a, comm_b = clipped(trace, comm, windows)
    work_a, work_b = clipped(trace, work & ~comm, windows)
    everything = measure(np.r_[comm_a, work_a], np.r_[comm_b, work_b])
    return measure(comm_a, comm_b), everything - measure(work_a, work_b)


def clipped(
    trace: Trace, where: NDArray[np.bool_], windows: list[tuple[float, float]]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The intervals of the events where ``where`` holds, clipped to the step windows (each window reads
    only the events that can reach it, so that a trace of many steps costs no more than one of few)."""
    import numpy as np

    starts, ends = trace.start[where], trace.end[where]
    order = np.argsort(starts, kind="stable")
    starts, ends = starts[order], ends[order]
    longest = float((ends - starts).max()) if len(starts) else 0.0
    parts = []
    for a, b in windows:
        first, last = np.searchsorted(starts, [a - longest, b])
        inside = first + np.flatnonzero(ends[first:last] > a)
        parts.append((np.maximum(starts[inside], a), np.minimum(ends[inside], b)))
    return np.concatenate([p[0] for p in parts] or [starts[:0]]), np.concatenate([p[1] for p in parts] or [ends[:0]])


@dataclass
class Step:
    """One step: its number, its window (microseconds from the trace's start), and the breakdown.
    ``training_step`` is the training loop's own step number when ``tbscope.profile`` recorded it."""

    step: int
    start: float
    end: float
    breakdown_us: dict[str, float]
    kernel_busy_us: float
    kernels: int
    syncs: int
    training_step: int | None = None
    # The host's own span of the step (its ProfilerStep#N annotation): host-time views (memory) mark it.
    host_start: float | None = None
    host_end: float | None = None

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
    configuration: dict[str, Any] = field(default_factory=dict)
    recommendations: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def gpu_utilization(self) -> float | None:
        """Share of the steps' time some kernel ran; None for a trace without device activity."""
        if not self.has_device:
            return None
        total = sum(s.duration_us for s in self.steps)
        return sum(s.kernel_busy_us for s in self.steps) / total if total else 0.0

    def shares(self) -> dict[str, float]:
        """Each category's share of the steps' time."""
        total = sum(s.duration_us for s in self.steps)
        return {c: sum(s.breakdown_us[c] for s in self.steps) / total if total else 0.0 for c in CATEGORIES}

    def as_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "worker": self.worker,
            "device": self.device,
            "devices": self.devices,
            "configuration": self.configuration,
            "steps": [
                {
                    "step": s.step,
                    "training_step": s.training_step,
                    "start_us": s.start,
                    "end_us": s.end,
                    "host_start_us": s.host_start,
                    "host_end_us": s.host_end,
                    "duration_us": s.duration_us,
                    "breakdown_us": dict(s.breakdown_us),
                }
                for s in self.steps
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
    import numpy as np

    marks = np.flatnonzero((trace.kind == KIND["annotation"]) & trace.matching(STEP_NAME))
    if len(marks):
        found = [(int(trace.strings[trace.name[i]].rsplit("#", 1)[1]), float(trace.start[i]), float(trace.end[i]))
                 for i in marks]  # fmt: skip
        return sorted(found, key=lambda m: m[1])
    if not len(trace):
        return []
    return [(0, float(trace.start.min()), float(trace.end.max()))]  # one step: the trace


# Header fields tbscope.profile adds to a trace: the training steps, and the torch that wrote it.
TRAINING_STEPS = "tbscope_training_steps"
TORCH_VERSION = "tbscope_torch_version"


def _training_steps(trace: Trace) -> dict[int, int]:
    """``{profiler step: training step}`` as ``tbscope.profile`` recorded it in the trace's header."""
    recorded = trace.header.get(TRAINING_STEPS)
    with contextlib.suppress(TypeError, ValueError, AttributeError):
        mapping = json.loads(recorded) if isinstance(recorded, str) else recorded
        if isinstance(mapping, dict):
            return {int(k): int(v) for k, v in mapping.items()}
    return {}


@dataclass
class StepWindow:
    """A step's window by the step rule, and the runtime calls its host span holds."""

    number: int
    host_start: float
    host_end: float
    start: float
    end: float
    calls: NDArray[np.int64]  # indexes into the runtime calls sorted by start


def step_windows(trace: Trace, runtime: NDArray[np.int64]) -> list[StepWindow]:
    """The steps' windows by the step rule (torch-tb-profiler's; DESIGN.md, "Rules the numbers depend on").

    A step's device work is what the runtime calls wholly inside its host span launched (matched by
    correlation id). Steps partition time: a step starts at its host start but never before the previous
    step ended; the first never before the end of device work that no step launched and that ended before
    the first step's own device work began (work queued by the unprofiled step before the window). A step
    ends at the later of its host end and the end of the device work it launched. Trailing steps that
    launched no device work are dropped, and the last one too when it launched under 80% of the device
    activities of the step before it (the profiler stopped before its kernels were recorded).
    ``runtime`` is the runtime calls, sorted by start.
    """
    import numpy as np

    device = trace.of(*DEVICE_KINDS)
    correlation = trace.arg("correlation")
    launched = device & ~np.isnan(correlation)
    ids, inverse = np.unique(correlation[launched], return_inverse=True)
    first_start, last_end = np.full(len(ids), np.inf), np.full(len(ids), -np.inf)
    np.minimum.at(first_start, inverse, trace.start[launched])
    np.maximum.at(last_end, inverse, trace.end[launched])
    count = np.bincount(inverse, minlength=len(ids))
    call_starts, call_ends = trace.start[runtime], trace.end[runtime]
    # Each runtime call's device work: which launch (an index into ids; -1 for none).
    launch = np.full(len(runtime), -1)
    if len(ids):
        at = np.searchsorted(ids, correlation[runtime]).clip(max=len(ids) - 1)
        hit = ids[at] == correlation[runtime]
        launch[hit] = at[hit]
    marks = _steps(trace)
    found: list[tuple[int, float, float, NDArray[np.int64], NDArray[np.int64]]] = []
    for number, host_start, host_end in marks:
        lo, hi = np.searchsorted(call_starts, [host_start, host_end])
        calls = lo + np.flatnonzero(call_ends[lo:hi] <= host_end)
        found.append((number, host_start, host_end, calls, launch[calls][launch[calls] >= 0]))
    by_step = [int(count[launches].sum()) for *_, launches in found]
    windows = []
    if sum(by_step):
        mine = np.zeros(len(ids), bool)
        for *_, launches in found:
            mine[launches] = True
        first_device = float(first_start[found[0][4]].min(initial=np.inf))
        # Device work no step launched: without a correlation id, or launched outside every step's host span.
        foreign = device.copy()
        foreign[np.flatnonzero(launched)[mine[inverse]]] = False
        before = trace.end[foreign][trace.end[foreign] < first_device]
        previous_end = max(found[0][1], float(before.max(initial=found[0][1])))
        keep = len(found)
        if len(found) > 1:
            keep = max((i + 1 for i, n in enumerate(by_step) if n), default=len(found))
            if keep > 1 and by_step[keep - 1] < 0.8 * by_step[keep - 2]:
                keep -= 1
    else:
        previous_end, keep = -np.inf, len(found)
    for number, host_start, host_end, calls, launches in found[:keep]:
        start = max(host_start, previous_end)
        end = previous_end = max(host_end, float(last_end[launches].max(initial=host_end)), start)
        windows.append(StepWindow(number, host_start, host_end, start, end, calls))
    return windows


def analyze(trace: Trace) -> Overview:
    """The Overview of ``trace``: steps from its ``ProfilerStep#N`` annotations (one step spanning the
    trace when it has none), by ``step_windows``."""
    import numpy as np

    device = trace.of(*DEVICE_KINDS)
    has_device = bool(device.any())
    runtime = np.flatnonzero(trace.kind == KIND["runtime"])
    runtime = runtime[np.argsort(trace.start[runtime], kind="stable")]
    syncing = np.isin(trace.name[runtime], [i for i, s in enumerate(trace.strings) if s in SYNC_CALLS])
    category = categories(trace, has_device)
    categorized = np.flatnonzero(category >= 0)
    categorized = categorized[np.argsort(trace.start[categorized], kind="stable")]
    starts, ends, codes = trace.start[categorized], trace.end[categorized], category[categorized]
    longest = float((ends - starts).max()) if len(starts) else 0.0  # how far back an event may start
    training = _training_steps(trace)
    steps = []
    for window in step_windows(trace, runtime):
        number, host_start, host_end, start, end = (
            window.number, window.host_start, window.host_end, window.start, window.end
        )  # fmt: skip
        first, last = np.searchsorted(starts, [start - longest, end])
        inside = first + np.flatnonzero(ends[first:last] > start)
        a, b, c = np.maximum(starts[inside], start), np.minimum(ends[inside], end), codes[inside]
        breakdown: dict[str, float] = {}
        covered_a, covered_b = a[:0], b[:0]
        covered_us = 0.0
        for name in PRIORITY:
            chosen = c == CATEGORIES.index(name)
            covered_a, covered_b = union(np.r_[covered_a, a[chosen]], np.r_[covered_b, b[chosen]])
            total = float((covered_b - covered_a).sum())
            breakdown[name] = total - covered_us
            covered_us = total
        breakdown["other"] = (end - start) - covered_us
        kernels = (c == CATEGORIES.index("kernel")) | (c == CATEGORIES.index("communication"))
        steps.append(Step(number, start, end, {name: breakdown[name] for name in CATEGORIES},
                          measure(a[kernels], b[kernels]), int(kernels.sum()), int(syncing[window.calls].sum()),
                          training.get(number), host_start, host_end))  # fmt: skip
    devices = trace.header.get("deviceProperties") or []
    overview = Overview(trace.path, trace.worker, devices[0].get("name") if devices else None, steps,
                        [_summary(d) for d in devices], has_device)  # fmt: skip
    overview.configuration = {
        "worker": trace.worker,
        "torch_version": trace.header.get(TORCH_VERSION),
        "steps": [s.step for s in steps],
        "training_steps": [s.training_step for s in steps] if training else None,
        "devices": [d.get("name") for d in devices],
        "distributed": trace.header.get("distributedInfo") if isinstance(trace.header.get("distributedInfo"), dict)
        else None,
    }  # fmt: skip
    _device_figures(trace, overview)
    overview.gpu_idle_share = gpu_idle_share(trace)
    if not len(trace):
        overview.notes.append("the trace holds no events")
    for name, count in sorted(trace.unknown_categories.items()):
        overview.notes.append(f"{count} event(s) of unknown category {name!r} left out")
    overview.recommendations = recommend(trace, overview)
    return overview


def _summary(device: dict[str, Any]) -> dict[str, Any]:
    """What a trace says of a device: name, memory, SMs and compute capability."""
    memory = device.get("totalGlobalMem")
    major, minor = device.get("computeMajor"), device.get("computeMinor")
    return {
        "id": device.get("id"),
        "name": device.get("name"),
        "memory_gib": round(memory / 2**30, 1) if isinstance(memory, (int, float)) and memory else None,
        "sms": device.get("numSms"),
        "compute_capability": f"{major}.{minor}" if major is not None else None,
    }


def gpu_idle_share(trace: Trace) -> float | None:
    """The share of time the device sat idle between the start of its first and the end of its last
    kernel, memcpy or memset, by Holistic Trace Analysis's temporal breakdown: device work counts when the
    runtime call that launched it (matched by correlation id) started before the start of the trace's last
    ``ProfilerStep#`` annotation, host or device (torch records the last step cut short when the profiler
    stops); with a single step, all device work counts. None without device activity.

    One deliberate difference: HTA counts every event that carries a ``stream`` field as a GPU kernel,
    ``cpu_op`` events included (a Triton kernel's host-side launch operator, which makes it report 95 us
    for a kernel that runs 1.76 us); here only the kernels, copies and sets the device ran count. And HTA
    shrinks each event to the whole microseconds inside it (its start rounded up, its end down), which
    opens gaps between back-to-back kernels; here events keep their exact ends, so on a trace with
    fractional timestamps this share reads up to a percentage point under HTA's.
    """
    import numpy as np

    device = trace.of(*DEVICE_KINDS)
    # HTA reads the device's copies of the step annotations (gpu_user_annotation) as steps too, so its
    # last step starts where the device began it: a lagging device's last step is then counted.
    marks = trace.of("annotation", "gpu_annotation") & trace.matching(STEP_NAME)
    if len(np.unique(trace.name[marks])) > 1:
        correlation = trace.arg("correlation")
        host = ~device & ~np.isnan(correlation) & (trace.start < trace.start[marks].max())
        device &= np.isin(correlation, correlation[host])
    if not device.any():
        return None
    starts, ends = trace.start[device], trace.end[device]
    span = float(ends.max() - starts.min())
    return 1 - measure(starts, ends) / span if span > 0 else 0.0


def uses_tensor_cores(trace: Trace) -> NDArray[np.bool_]:
    """Which events' names say they run on tensor cores, as NVIDIA's libraries name such kernels."""
    return trace.matching(TENSOR_CORE_NAME)


def gemm_or_conv(trace: Trace) -> NDArray[np.bool_]:
    """Which events are real matrix-multiply or convolution kernels: the work tensor cores can do (not
    cuDNN's batch norm, not its NCHW/NHWC layout transforms)."""
    return (trace.kind == KIND["kernel"]) & trace.matching(GEMM_OR_CONV) & ~trace.matching(NOT_GEMM_OR_CONV)


def in_steps(trace: Trace, steps: list[Step]) -> NDArray[np.bool_]:
    """Which events overlap one of ``steps`` (which are disjoint): only the last step that starts before
    an event ends can."""
    import numpy as np

    windows = sorted((s.start, s.end) for s in steps)
    window_starts = np.array([a for a, _ in windows])
    window_ends = np.array([b for _, b in windows])
    last = np.searchsorted(window_starts, trace.end, side="left") - 1
    return (last >= 0) & (window_ends[last.clip(min=0)] > trace.start) if windows else np.zeros(len(trace), bool)


def _device_figures(trace: Trace, overview: Overview) -> None:
    """SM efficiency, achieved occupancy and tensor-core use over the kernels in the steps, for the whole
    trace and per device (``overview.devices``); the peak of memory reserved and allocated. Each stays None
    where the trace lacks its fields."""
    import numpy as np

    kernels = (trace.kind == KIND["kernel"]) & in_steps(trace, overview.steps)
    duration = trace.end - trace.start
    blocks, occupancy = trace.arg("blocks per SM"), trace.arg("est. achieved occupancy %")
    measured = kernels & ~np.isnan(blocks) & ~np.isnan(occupancy)
    eligible = kernels & gemm_or_conv(trace)
    tensor_cores = eligible & uses_tensor_cores(trace)
    device_of = trace.arg("device")
    memory = trace.memory
    on_gpu = memory.device_type == 1

    def figures(where: NDArray[np.bool_]) -> dict[str, float | None]:
        weighted = float(duration[measured & where].sum())
        gemm = float(duration[eligible & where].sum())
        return {
            "sm_efficiency": float((duration * np.minimum(blocks, 1))[measured & where].sum()) / weighted
            if weighted else None,
            "achieved_occupancy": float((duration * occupancy)[measured & where].sum()) / weighted
            if weighted else None,
            "tensor_core_share": float(duration[tensor_cores & where].sum()) / gemm if gemm else None,
            "eligible_share": gemm / float(duration[kernels & where].sum()) if gemm else None,
        }  # fmt: skip

    overall = figures(np.ones(len(trace), bool))
    overview.sm_efficiency, overview.achieved_occupancy = overall["sm_efficiency"], overall["achieved_occupancy"]
    overview.tensor_core_share, overview.eligible_share = overall["tensor_core_share"], overall["eligible_share"]
    devices = trace.header.get("deviceProperties") or []
    shares = []
    for index, (summary, properties) in enumerate(zip(overview.devices, devices, strict=True)):
        number = properties.get("id", index)
        here = figures(device_of == number) if len(devices) > 1 else overall
        summary.update({k: v for k, v in here.items() if k != "eligible_share"})
        mine = on_gpu & (memory.device_id == number)
        summary["peak_allocated_bytes"] = float(np.nanmax(memory.allocated[mine])) if mine.any() else None
        summary["peak_reserved_bytes"] = float(np.nanmax(memory.reserved[mine])) if mine.any() else None
        capacity = properties.get("totalGlobalMem")
        if summary["peak_reserved_bytes"] is not None and isinstance(capacity, (int, float)) and capacity > 0:
            shares.append(summary["peak_reserved_bytes"] / capacity)
    overview.memory_peak_share = max(shares) if shares else None


def _top(trace: Trace, where: NDArray[np.bool_]) -> list[str]:
    """The names of the events where ``where`` holds, the longest in total first, ``EVIDENCE`` at most."""
    import numpy as np

    names = trace.name[where]
    if not len(names):
        return []
    total = np.bincount(names, weights=(trace.end - trace.start)[where], minlength=len(trace.strings))
    return [trace.strings[i] for i in np.argsort(-total, kind="stable")[: min(EVIDENCE, len(set(names.tolist())))]]


def _count(per_step: float) -> str:
    """A count a step for a sentence: whole from one up, ``0.2`` below."""
    return f"{per_step:.0f}" if per_step >= 1 else f"{per_step:.1g}"


def _bytes(size: float) -> str:
    """A copy's size for a sentence: ``149 B``, ``4.0 KB``, ``12.6 MB``."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size:.0f} B"


def _advice(
    text: str, figure: str, value: float, unit: str, view: str = "", names: list[str] | None = None
) -> dict[str, Any]:
    """A recommendation: what to do, the number behind it, and the events it rests on (rows of the
    Operators or Kernels view)."""
    return {"text": text, "figure": {"name": figure, "value": value, "unit": unit},
            "events": [{"view": view, "name": n} for n in names or []]}  # fmt: skip


def recommend(trace: Trace, overview: Overview) -> list[dict[str, Any]]:
    """What to look at first, each with the number that triggered it and the events it rests on."""

    steps = overview.steps
    if not sum(s.duration_us for s in steps):
        return []
    share = overview.shares()
    advice = []
    cpu_ops = trace.kind == KIND["cpu_op"]
    if share["dataloader"] > 0.05:
        advice.append(_advice(
            f"DataLoader-bound: {share['dataloader']:.0%} of the step time waits for data. Raise num_workers, "
            "set pin_memory=True and persistent_workers=True, or move preprocessing off the training process.",
            "dataloader share", share["dataloader"], "share", "operators",
            _top(trace, trace.matching(re.compile("dataloader", re.I))),
        ))  # fmt: skip
    utilization = overview.gpu_utilization
    if utilization is not None and utilization < 0.5:
        advice.append(_advice(
            f"Low GPU utilization: kernels run {utilization:.0%} of the step time. Look at what the host does "
            "between launches (the cpu_exec, runtime and dataloader shares), or grow the batch.",
            "GPU utilization", utilization, "share", "operators", _top(trace, cpu_ops),
        ))  # fmt: skip
    kernels = sum(s.kernels for s in steps)
    if kernels and overview.has_device:
        mean_us = sum(s.kernel_busy_us for s in steps) / kernels
        per_step = kernels / len(steps)
        if mean_us < 10 and per_step > 500:
            advice.append(_advice(
                f"Launch-bound: {per_step:.0f} kernels a step averaging {mean_us:.1f} us each. Fuse them "
                "(torch.compile) or capture the step in a CUDA graph.",
                "kernels a step", per_step, "count", "kernels", _top(trace, trace.kind == KIND["kernel"]),
            ))  # fmt: skip
    advice += _sync_and_copy_advice(trace, overview, share)
    tensor_cores, eligible = overview.tensor_core_share, overview.eligible_share or 0.0
    if tensor_cores is not None and eligible > 0.1 and tensor_cores < 0.5:
        idle = gemm_or_conv(trace) & ~uses_tensor_cores(trace)
        # TF32 and bfloat16 need an Ampere or later GPU (compute capability 8.0); a Volta or Turing has float16.
        capabilities = [float(d["compute_capability"]) for d in overview.devices if d.get("compute_capability")]
        ampere = not capabilities or min(capabilities) >= 8.0
        how = (
            "(torch.autocast with bfloat16 or float16) or allow TF32 (torch.backends.cuda.matmul.allow_tf32 "
            "and torch.backends.cudnn.allow_tf32)."
            if ampere
            else "(torch.autocast with float16 and a GradScaler): this GPU has no TF32 or bfloat16 tensor cores."
        )
        advice.append(_advice(
            f"Tensor cores idle: {1 - tensor_cores:.0%} of the GEMM and convolution kernel time "
            f"({eligible:.0%} of all kernel time) runs without them. Train in mixed precision " + how,
            "GEMM/convolution time without tensor cores", 1 - tensor_cores, "share", "kernels", _top(trace, idle),
        ))  # fmt: skip
    layout = (trace.kind == KIND["kernel"]) & trace.matching(LAYOUT_TRANSFORM)
    kernel_time = float((trace.end - trace.start)[trace.kind == KIND["kernel"]].sum())
    layout_share = float((trace.end - trace.start)[layout].sum()) / kernel_time if kernel_time else 0.0
    if layout_share > 0.05:
        advice.append(_advice(
            f"Layout transforms: {layout_share:.0%} of the kernel time converts between NCHW and NHWC. Train in "
            "channels_last: model.to(memory_format=torch.channels_last) and each batch "
            "x.to(memory_format=torch.channels_last).",
            "kernel time in layout transforms", layout_share, "share", "kernels", _top(trace, layout),
        ))  # fmt: skip
    if overview.memory_peak_share is not None and overview.memory_peak_share > 0.9:
        advice.append(_advice(
            f"Memory near capacity: the caching allocator reserved {overview.memory_peak_share:.0%} of the "
            "device's memory at its peak. Expect fragmentation and out-of-memory errors; shrink the batch, "
            "use activation checkpointing or mixed precision.",
            "peak reserved memory over capacity", overview.memory_peak_share, "share",
        ))  # fmt: skip
    total_us = sum(s.duration_us for s in steps)
    collectives_us, exposed_us = exposed_communication_us(trace, steps, overview.has_device)
    if exposed_us / total_us > 0.2:
        advice.append(_advice(
            f"Communication-bound: {exposed_us / total_us:.0%} of the step time waits on collectives that no "
            f"computation overlaps ({collectives_us / total_us:.0%} in collectives in all). Overlap them with "
            "compute (bucketing in DDP) or reduce their size (gradient compression, larger batches).",
            "exposed communication share", exposed_us / total_us, "share", "kernels",
            _top(trace, communication(trace, overview.has_device)),
        ))  # fmt: skip
    return advice


def _sync_and_copy_advice(trace: Trace, overview: Overview, share: dict[str, float]) -> list[dict[str, Any]]:
    """Host-device syncs, each blamed on its cause: a synchronizing call right after a host-to-device
    copy from pageable memory (the copy itself has to wait) or anything else (``.item()``, printing); and
    the copies' own share of the step time."""
    import numpy as np

    advice = []
    steps = len(overview.steps)
    runtime = np.flatnonzero((trace.kind == KIND["runtime"]) & in_steps(trace, overview.steps))
    runtime = runtime[np.lexsort((trace.start[runtime], trace.thread[runtime]))]
    sync_names = [i for i, s in enumerate(trace.strings) if s in SYNC_CALLS]
    syncs = runtime[np.isin(trace.name[runtime], sync_names)]
    pageable = trace.of("memcpy") & trace.matching(PAGEABLE_HOST_TO_DEVICE)
    pageable_launches = set(trace.arg("correlation")[pageable].tolist())
    # The runtime call just before each sync on its thread: a pageable copy's launch blames the copy.
    position = np.flatnonzero(np.isin(runtime, syncs))
    before = runtime[(position - 1).clip(min=0)]
    after_copy = (
        (position > 0)
        & (trace.thread[before] == trace.thread[syncs])
        & np.isin(trace.arg("correlation")[before], list(pageable_launches))
    )

    def callers(calls: NDArray[np.int64]) -> list[str]:
        """The operators that made these runtime calls: by the ``External id`` torch gives a call and its
        operator, a lookup; only a trace without them pays for walking every thread's operators."""
        external = trace.arg("External id")
        wanted = external[calls][~np.isnan(external[calls])]
        if len(wanted):
            return _top(trace, (trace.kind == KIND["cpu_op"]) & np.isin(external, wanted))
        launched_by = launchers(trace)
        where = np.zeros(len(trace), bool)
        where[launched_by[calls][launched_by[calls] >= 0]] = True
        return _top(trace, where)

    # Weighed by the time a sync loses, not by their count: once it returns the device has drained its
    # queue and idles until the host launches again (in a GPU-bound loop the host's wait itself costs
    # nothing). A few syncs after scalar copies cost nothing worth changing the data path for.
    total_us = sum(s.duration_us for s in overview.steps)
    busy_a, busy_b = union(trace.start[trace.of(*DEVICE_KINDS)], trace.end[trace.of(*DEVICE_KINDS)])
    released = trace.end[syncs]
    following = np.searchsorted(busy_a, released)  # the first device work that starts after the sync returned
    running = (following > 0) & (busy_b[(following - 1).clip(min=0)] > released)
    resumed = busy_a[following.clip(max=max(len(busy_a) - 1, 0))] if len(busy_a) else released
    waited = np.where(running | (following >= len(busy_a)), 0.0, resumed - released)
    lost_after_copies = float(waited[after_copy].sum()) / total_us
    if after_copy.any() and lost_after_copies > SYNC_SHARE:
        per_step = after_copy.sum() / steps
        copied = trace.arg("bytes")[pageable & np.isin(trace.arg("correlation"), trace.arg("correlation")[before])]
        sizes = copied[~np.isnan(copied)]
        smallest, largest = (_bytes(float(sizes.min())), _bytes(float(sizes.max()))) if len(sizes) else ("", "")
        size_text = (
            "" if not len(sizes) else f", {smallest} each" if smallest == largest else f", {smallest} to {largest} each"
        )
        advice.append(_advice(
            f"Syncs after pageable copies: {_count(per_step)} a step{size_text}, each a host-to-device copy from "
            f"pageable memory that makes the host wait; the device idles {lost_after_copies:.0%} of the step time "
            "after them. Copy from pinned memory without blocking: DataLoader(pin_memory=True) "
            "and batch.to(device, non_blocking=True).",
            "step time the device idles after syncs after pageable copies", lost_after_copies, "share",
            "operators", callers(syncs[after_copy]),
        ))  # fmt: skip
    other = syncs[~after_copy]
    lost_after_others = float(waited[~after_copy].sum()) / total_us
    if len(other) and lost_after_others > SYNC_SHARE:
        advice.append(_advice(
            f"Host-device syncs: {_count(len(other) / steps)} a step (cudaDeviceSynchronize, cudaStreamSynchronize, "
            f"blocking cudaMemcpy); the device idles {lost_after_others:.0%} of the step time after them. Find "
            "them with torch.cuda.set_sync_debug_mode('warn'); .item() and printing tensors are the usual causes.",
            "step time the device idles after syncs", lost_after_others, "share", "operators", callers(other),
        ))  # fmt: skip
    if share["memcpy"] > 0.05:
        copies = trace.of("memcpy") & in_steps(trace, overview.steps)
        sizes = trace.arg("bytes")
        moved = {way: float(np.nansum(sizes[copies & trace.matching(re.compile(way))])) / steps / 1e6
                 for way in ("HtoD", "DtoH", "DtoD")}  # fmt: skip
        duration = trace.end - trace.start
        pageable_share = float(duration[copies & pageable].sum()) / max(float(duration[copies].sum()), 1e-9)
        advice.append(_advice(
            f"Copies: {share['memcpy']:.0%} of the step time copies memory (MB a step: "
            + ", ".join(f"{way} {mb:.1f}" for way, mb in moved.items() if mb)
            + f"; {pageable_share:.0%} of the copy time from pageable memory). Copy host data from pinned memory "
            "with non_blocking=True so that it overlaps compute; device-to-device copies come from .clone(), "
            ".contiguous() and torch.cat: the Operators view shows which.",
            "memcpy share", share["memcpy"], "share", "kernels", _top(trace, copies),
        ))  # fmt: skip
    return advice


def span(trace: Trace, step: int, windows: dict[int, tuple[float, float]] | None = None) -> Trace:
    """The part of ``trace`` within one step's window (``ProfilerStep#<step>``, extended as the Overview
    extends it to the device work the step launched; ``windows``, ``{step: (start_us, end_us)}``, where the
    Overview is at hand). Raises ValueError for a step the trace lacks."""
    if windows is None:
        windows = {s.step: (s.start, s.end) for s in analyze(trace).steps}
    if step not in windows:
        raise ValueError(f"the trace has no step {step}")
    start, end = windows[step]
    memory = trace.memory
    return trace.select((trace.end > start) & (trace.start < end), (memory.time >= start) & (memory.time < end))
