"""Reading a torch.profiler trace (``.pt.trace.json`` or ``.json.gz``): events normalized across versions.

Pure Python, no torch: legacy and current category names, absolute or ``baseTimeNanoseconds``-relative
timestamps (both are read as offsets from the trace's first event, in microseconds), kernels launched
through the CUDA runtime or driver (Triton), ROCm traces without occupancy fields.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# A trace's category names, old and new, as the few kinds the analysis tells apart.
CATEGORIES = {
    "kernel": "kernel", "Kernel": "kernel",
    "gpu_memcpy": "memcpy", "Memcpy": "memcpy",
    "gpu_memset": "memset", "Memset": "memset",
    "cuda_runtime": "runtime", "Runtime": "runtime", "cuda_driver": "runtime",
    "cpu_op": "cpu_op", "Operator": "cpu_op", "operator": "cpu_op",
    "user_annotation": "annotation", "gpu_user_annotation": "gpu_annotation",
    "python_function": "python",
}  # fmt: skip
STEP_NAME = re.compile(r"^ProfilerStep#(\d+)$")


class TraceError(ValueError):
    """A file that is not a readable torch.profiler trace; the message says what was found."""


@dataclass
class Event:
    """One complete ("X") event: what it is, and when, in microseconds from the trace's start."""

    kind: str
    name: str
    start: float
    end: float
    args: dict[str, Any]
    thread: str = ""  # "pid:tid": operators nest within one thread


@dataclass
class Trace:
    """The events of one trace file, and what its header says."""

    path: str
    events: list[Event]
    header: dict[str, Any]
    unknown_categories: dict[str, int] = field(default_factory=dict)

    @property
    def worker(self) -> str:
        """``rank<N>`` for a distributed trace, else the file's name up to its first dot (torch names
        trace files ``<worker>.<time>.pt.trace.json.gz``)."""
        info = self.header.get("distributedInfo")
        if isinstance(info, dict) and "rank" in info:
            return f"rank{info['rank']}"
        return os.path.basename(self.path).split(".")[0]


def _load_json(path: Path) -> dict[str, Any]:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as err:
            raise TraceError(f"{path}: a damaged or truncated gzip file ({err})") from err
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise TraceError(f"{path}: not a JSON trace ({err})") from err
    if isinstance(data, list):  # the bare Chrome trace format: a list of events
        data = {"traceEvents": data}
    if not isinstance(data, dict) or not isinstance(data.get("traceEvents"), list):
        raise TraceError(f"{path}: no traceEvents list: not a torch.profiler trace")
    return data


def load(path: str | os.PathLike[str]) -> Trace:
    """The events of the trace at ``path``. Raises ``TraceError`` for a file that is not a trace; a
    trace with no events, or with unknown categories, loads (the unknown ones are counted)."""
    trace_path = Path(path)
    data = _load_json(trace_path)
    kept: list[tuple[str, dict[str, Any], float, float]] = []
    unknown: dict[str, int] = {}
    for raw in data["traceEvents"]:
        if not isinstance(raw, dict) or raw.get("ph") != "X" or "ts" not in raw:
            continue
        category = str(raw.get("cat", ""))
        kind = CATEGORIES.get(category)
        if kind is None:
            if category not in ("Trace", ""):
                unknown[category] = unknown.get(category, 0) + 1
            continue
        try:
            kept.append((kind, raw, float(raw["ts"]), float(raw.get("dur", 0.0))))
        except (TypeError, ValueError):
            continue
    # Offsets from the first event, durations added after: an absolute timestamp (about 1e15 us) has
    # a quarter-microsecond resolution as a float, which a sum with a duration would lose.
    origin = min((ts for _, _, ts, _ in kept), default=0.0)
    events = [
        Event(
            kind,
            str(raw.get("name", "")),
            ts - origin,
            ts - origin + dur,
            raw.get("args") or {},
            f"{raw.get('pid', '')}:{raw.get('tid', '')}",
        )
        for kind, raw, ts, dur in kept
    ]
    header = {k: v for k, v in data.items() if k != "traceEvents"}
    return Trace(str(trace_path), events, header, unknown)


def find_traces(path: str | os.PathLike[str]) -> list[Path]:
    """Trace files: ``path`` itself, or every ``*.pt.trace.json[.gz]`` under it."""
    root = Path(path)
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.is_file() and re.search(r"\.pt\.trace\.json(\.gz)?$", p.name))
