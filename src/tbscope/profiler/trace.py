"""Reading a torch.profiler trace (``.pt.trace.json`` or ``.json.gz``): events normalized across versions.

Pure Python, no torch: legacy and current category names, absolute or ``baseTimeNanoseconds``-relative
timestamps (both are read as offsets from the trace's first event, in microseconds), kernels launched
through the CUDA runtime or driver (Triton), ROCm traces without occupancy fields.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import re
import stat
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
TRACE_SUFFIXES = (".pt.trace.json", ".pt.trace.json.gz")
# The event arguments any analysis reads; the rest are dropped as events are read, so a large trace's
# events take a fraction of the memory its JSON text would.
KEPT_ARGS = frozenset({
    "External id", "correlation", "stream", "device", "Input Dims", "blocks per SM", "est. achieved occupancy %",
    "Collective name", "Device Type", "Device Id", "Bytes", "Total Allocated", "Total Reserved",
})  # fmt: skip


class TraceError(ValueError):
    """A file that is not a readable torch.profiler trace; the message says what was found."""


@dataclass(slots=True)
class Event:
    """One complete ("X") event: what it is, and when, in microseconds from the trace's start."""

    kind: str
    name: str
    start: float
    end: float
    args: dict[str, Any]
    thread: str = ""  # "pid:tid": operators nest within one thread


@dataclass(slots=True)
class MemoryEvent:
    """One ``[memory]`` instant event (``profile_memory=True``): an allocation (Bytes > 0) or a free."""

    time: float
    args: dict[str, Any]
    thread: str


@dataclass
class Trace:
    """The events of one trace file, and what its header says."""

    path: str
    events: list[Event]
    header: dict[str, Any]
    unknown_categories: dict[str, int] = field(default_factory=dict)
    memory: list[MemoryEvent] = field(default_factory=list)

    @property
    def worker(self) -> str:
        """``rank<N>`` for a distributed trace, else the file's name up to its first dot (torch names
        trace files ``<worker>.<time>.pt.trace.json.gz``)."""
        info = self.header.get("distributedInfo")
        if isinstance(info, dict) and "rank" in info:
            return f"rank{info['rank']}"
        return os.path.basename(self.path).split(".")[0]


_CHUNK = 1 << 20
_WHITESPACE = " \t\r\n"
_DECODER = json.JSONDecoder()
# Traces whose JSON text is smaller than this are parsed whole (fast, in C); larger ones are streamed,
# an event at a time, so that their text never sits in memory.
WHOLE_DOCUMENT_BYTES = 256 << 20


def text_size(path: Path) -> int:
    """The size of a trace's JSON text: a gzip file's own record of it (modulo 4 GiB), else the file's."""
    with open(path, "rb") as f:
        if f.read(2) != b"\x1f\x8b":
            return path.stat().st_size
        f.seek(-4, os.SEEK_END)
        recorded = int.from_bytes(f.read(4), "little")
    return recorded if recorded >= path.stat().st_size else 1 << 32  # wrapped: bigger than 4 GiB


class _Stream:
    """Text of a (possibly gzipped) file, read a megabyte at a time, with a cursor."""

    def __init__(self, path: Path) -> None:
        with open(path, "rb") as probe:
            gzipped = probe.read(2) == b"\x1f\x8b"
        # Closed by close(), which _read calls in a finally: the stream outlives any one with-block.
        opener: Any = gzip.open if gzipped else open
        self._file = opener(path, "rt", encoding="utf-8")
        self.path, self.text, self.pos = path, "", 0

    def more(self) -> bool:
        try:
            chunk = self._file.read(_CHUNK)
        except (EOFError, OSError, zlib.error) as err:
            raise TraceError(f"{self.path}: a damaged or truncated gzip file ({err})") from err
        except UnicodeDecodeError as err:
            raise TraceError(f"{self.path}: not a JSON trace ({err})") from err
        if not chunk:
            return False
        self.text = self.text[self.pos :] + chunk
        self.pos = 0
        return True

    def skip(self, chars: str = _WHITESPACE) -> str:
        """Skip ``chars``; the next character, or "" at the end."""
        while True:
            while self.pos < len(self.text) and self.text[self.pos] in chars:
                self.pos += 1
            if self.pos < len(self.text):
                return self.text[self.pos]
            if not self.more():
                return ""

    def value(self) -> Any:
        """The next JSON value, reading more text until it is whole."""
        while True:
            self.skip()
            try:
                value, end = _DECODER.raw_decode(self.text, self.pos)
            except json.JSONDecodeError as err:
                if self.more():
                    continue
                raise TraceError(f"{self.path}: not a JSON trace ({err.msg} at character {err.pos})") from err
            self.pos = end
            return value

    def close(self) -> None:
        self._file.close()


def _read(path: Path, keep: Any) -> dict[str, Any]:
    """The trace's top-level fields, with each element of ``traceEvents`` handed to ``keep``. A trace
    larger than ``WHOLE_DOCUMENT_BYTES`` is read in a megabyte of text at a time."""
    if text_size(path) <= WHOLE_DOCUMENT_BYTES:
        return _read_whole(path, keep)
    stream = _Stream(path)
    header: dict[str, Any] = {}
    try:
        first = stream.skip()
        if first == "[":  # the bare Chrome trace format: a list of events
            stream.pos += 1
            _elements(stream, keep)
            return header
        if first != "{":
            raise TraceError(f"{path}: not a JSON trace (it starts with {first!r})")
        stream.pos += 1
        found = False
        while stream.skip(_WHITESPACE + ",") not in ("}", ""):
            key = stream.value()
            if stream.skip() != ":":
                raise TraceError(f"{path}: not a JSON trace (no ':' after key {key!r})")
            stream.pos += 1
            if key == "traceEvents" and stream.skip() == "[":
                stream.pos += 1
                _elements(stream, keep)
                found = True
            else:
                header[str(key)] = stream.value()
        if not found:
            raise TraceError(f"{path}: no traceEvents list: not a torch.profiler trace")
    finally:
        stream.close()
    return header


def _read_whole(path: Path, keep: Any) -> dict[str, Any]:
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
    for event in data.pop("traceEvents"):
        keep(event)
    return data


def _elements(stream: _Stream, keep: Any) -> None:
    while True:
        following = stream.skip(_WHITESPACE + ",")
        if following == "]":
            stream.pos += 1
            return
        if following == "":
            raise TraceError(f"{stream.path}: not a JSON trace (it ends inside traceEvents)")
        keep(stream.value())


def load(path: str | os.PathLike[str]) -> Trace:
    """The events of the trace at ``path``, read as a stream (a trace of any size never sits in memory
    as text). Raises ``TraceError`` for a file that is not a trace; a trace with no events, or with
    unknown categories, loads (the unknown ones are counted)."""
    trace_path = Path(path)
    # Each event becomes a small Event as it is read (its JSON object is dropped at once), with its
    # absolute timestamp in ``start`` and its duration in ``end`` until the trace's first instant is known.
    events: list[Event] = []
    memory: list[MemoryEvent] = []
    unknown: dict[str, int] = {}
    shared: dict[str, str] = {}  # one string object per distinct name and thread: they repeat by the million

    def keep(raw: Any) -> None:
        if not isinstance(raw, dict) or "ts" not in raw:
            return
        phase = raw.get("ph")
        thread = f"{raw.get('pid', '')}:{raw.get('tid', '')}"
        if phase == "i" and raw.get("name") == "[memory]":
            with contextlib.suppress(TypeError, ValueError):
                args = raw.get("args")
                memory.append(
                    MemoryEvent(
                        float(raw["ts"]), args if isinstance(args, dict) else {}, shared.setdefault(thread, thread)
                    )
                )
            return
        if phase != "X":
            return
        category = str(raw.get("cat", ""))
        kind = CATEGORIES.get(category)
        if kind is None:
            if category not in ("Trace", ""):
                unknown[category] = unknown.get(category, 0) + 1
            return
        try:
            ts, dur = float(raw["ts"]), float(raw.get("dur", 0.0))
        except (TypeError, ValueError):
            return
        name = str(raw.get("name", ""))
        args = raw.get("args")
        kept_args = {k: v for k, v in args.items() if k in KEPT_ARGS} if isinstance(args, dict) else {}
        events.append(Event(kind, shared.setdefault(name, name), ts, dur, kept_args, shared.setdefault(thread, thread)))

    header = _read(trace_path, keep)
    devices = header.get("deviceProperties")  # what the analyses read of the header, of the types they read
    header["deviceProperties"] = [d for d in devices if isinstance(d, dict)] if isinstance(devices, list) else []
    # Offsets from the first event, durations added after: an absolute timestamp (about 1e15 us) has
    # a quarter-microsecond resolution as a float, which a sum with a duration would lose.
    origin = min((e.start for e in events), default=0.0)
    for e in events:
        e.start -= origin
        e.end = e.start + e.end
    for m in memory:
        m.time -= origin
    allocations = memory
    return Trace(str(trace_path), events, header, unknown, allocations)


def is_trace_file(name: str) -> bool:
    """Whether a file name is a torch.profiler trace's: ``*.pt.trace.json`` or ``*.pt.trace.json.gz``."""
    return name.endswith(TRACE_SUFFIXES)


# Entries a search for traces looks at, at most: a logdir holding millions of files is not walked to its end.
WALK_LIMIT = 200_000


def find_traces(path: str | os.PathLike[str]) -> list[Path]:
    """Trace files: ``path`` itself, or every trace under it, at any depth (``tbscope.profile`` writes
    ``<run>/profile/<worker>.<time>.pt.trace.json.gz``, torch's ``tensorboard_trace_handler``
    ``<run>/<worker>.<time>.pt.trace.json``). Under a folder only regular files count, found without
    following symbolic links: a link, or a FIFO, named like a trace could lead anywhere. The walk stops
    after ``WALK_LIMIT`` entries.

    Example:
        >>> import tempfile; root = Path(tempfile.mkdtemp())
        >>> (root / "run").mkdir(); (root / "run" / "host_1.17.pt.trace.json").write_text("{}")
        2
        >>> [p.relative_to(root).as_posix() for p in find_traces(root)]
        ['run/host_1.17.pt.trace.json']
    """
    root = Path(path)
    if root.is_file():
        return [root]
    found = []
    seen = 0
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        seen += len(dirs) + len(files)
        for name in sorted(files):
            full = os.path.join(folder, name)
            with contextlib.suppress(OSError):
                if is_trace_file(name) and stat.S_ISREG(os.lstat(full).st_mode):
                    found.append(Path(full))
        if seen > WALK_LIMIT:
            break
    return found
