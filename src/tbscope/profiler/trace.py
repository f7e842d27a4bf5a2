"""Reading a torch.profiler trace (``.pt.trace.json`` or ``.json.gz``) into columns, and finding traces.

No torch: events normalized across versions (legacy and current category names, absolute or
``baseTimeNanoseconds``-relative timestamps, both read as offsets from the trace's first event in
microseconds, kernels launched through the CUDA runtime or driver (Triton), ROCm traces without
occupancy fields), kept as one NumPy array a field so that a large trace takes little memory. Finding
traces (``find_traces``, ``is_trace_file``: the one rule of what a trace file is) imports no NumPy.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import os
import re
import stat
import zlib
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:  # numpy is imported where events are read, so that finding traces stays light
    import numpy as np
    from numpy.typing import NDArray

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
# The kinds of event the analyses tell apart; an event's kind is its index here.
KINDS = ("kernel", "memcpy", "memset", "runtime", "cpu_op", "annotation", "gpu_annotation", "python")
KIND = {kind: code for code, kind in enumerate(KINDS)}
CATEGORY_CODES = {category: KIND[kind] for category, kind in CATEGORIES.items()}
DEVICE_KINDS = ("kernel", "memcpy", "memset")  # work that runs on the device
STEP_NAME = re.compile(r"^ProfilerStep#(\d+)$")
TRACE_SUFFIXES = (".pt.trace.json", ".pt.trace.json.gz")
# The event arguments kept: what an analysis reads or an event's details show, as numbers or as text (a
# list as its Python text, ``[[64, 3], [3]]``); the rest are dropped as events are read, so a large
# trace's events take a fraction of the memory its JSON text would.
NUMBER_ARGS = frozenset({
    "External id", "correlation", "stream", "device", "blocks per SM", "est. achieved occupancy %",
    "registers per thread", "shared memory", "bytes", "memory bandwidth (GB/s)", "In msg nelems",
    "Out msg nelems", "Group size",
})  # fmt: skip
TEXT_ARGS = frozenset({
    "Input Dims", "Input type", "Concrete Inputs", "Collective name", "dtype", "grid", "block",
    "Process Group Name", "Process Group Ranks", "Call stack",
})  # fmt: skip
KEPT_ARGS = NUMBER_ARGS | TEXT_ARGS
# What a ``[memory]`` instant event (``profile_memory=True``) says, by the field of ``Memory`` it goes to.
MEMORY_ARGS = {"Bytes": "bytes", "Addr": "addr", "Total Allocated": "allocated", "Total Reserved": "reserved",
               "Device Type": "device_type", "Device Id": "device_id"}  # fmt: skip


class TraceError(ValueError):
    """A file that is not a readable torch.profiler trace; the message says what was found."""


@dataclass
class Memory:
    """The ``[memory]`` instant events, one column a field, in file order: ``time`` (microseconds from the
    trace's first event), ``bytes`` (> 0 an allocation, < 0 a free), ``addr``, ``allocated`` and
    ``reserved`` (the allocator's totals after it), ``device_type`` (0 CPU, 1 CUDA), ``device_id``
    (NaN where the trace lacks a field), and ``thread`` (an index into ``Trace.strings``)."""

    time: NDArray[np.float64]
    bytes: NDArray[np.float64]
    addr: NDArray[np.float64]
    allocated: NDArray[np.float64]
    reserved: NDArray[np.float64]
    device_type: NDArray[np.float64]
    device_id: NDArray[np.float64]
    thread: NDArray[np.int32]

    def __len__(self) -> int:
        return len(self.time)


@dataclass
class Trace:
    """The complete ("X") events of one trace file, one NumPy column a field, in file order (an event's
    index is its id), and what the header says.

    ``kind`` indexes ``KINDS``; ``name`` and ``thread`` ("pid:tid") index ``strings``, where each distinct
    text is kept once; ``start`` and ``end`` are microseconds from the trace's first event. Arguments are
    kept sparsely: ``arg(key)`` and ``text_arg(key)`` give them as columns.

    Example:
        >>> import json, tempfile
        >>> path = Path(tempfile.mkdtemp()) / "w.pt.trace.json"
        >>> _ = path.write_text(json.dumps({"traceEvents": [
        ...     {"ph": "X", "cat": "cpu_op", "name": "aten::mm", "ts": 100, "dur": 5, "args": {"External id": 7}},
        ...     {"ph": "X", "cat": "kernel", "name": "sgemm", "ts": 103, "dur": 9, "args": {"External id": 7}}]}))
        >>> trace = load(path)
        >>> [trace.strings[n] for n in trace.name], trace.end.tolist(), trace.arg("External id").tolist()
        (['aten::mm', 'sgemm'], [5.0, 12.0], [7.0, 7.0])
    """

    path: str
    header: dict[str, Any]
    strings: list[str]
    kind: NDArray[np.uint8]
    name: NDArray[np.int32]
    start: NDArray[np.float64]
    end: NDArray[np.float64]
    thread: NDArray[np.int32]
    args: dict[str, tuple[NDArray[np.int64], NDArray[Any]]]  # key: (events that have it, values)
    memory: Memory
    unknown_categories: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.kind)

    @property
    def nbytes(self) -> int:
        """The memory the trace's columns take (its strings left out)."""
        columns = [self.kind, self.name, self.start, self.end, self.thread, *vars(self.memory).values()]
        return sum(c.nbytes for c in columns) + sum(a.nbytes + b.nbytes for a, b in self.args.values())

    @property
    def worker(self) -> str:
        """``rank<N>`` for a distributed trace, else the file's name up to its first dot (torch names
        trace files ``<worker>.<time>.pt.trace.json.gz``)."""
        info = self.header.get("distributedInfo")
        if isinstance(info, dict) and "rank" in info:
            return f"rank{info['rank']}"
        return os.path.basename(self.path).split(".")[0]

    def of(self, *kinds: str) -> NDArray[np.bool_]:
        """Which events are of one of ``kinds`` (names from ``KINDS``)."""
        import numpy as np

        return np.isin(self.kind, [KIND[k] for k in kinds])

    def arg(self, key: str) -> NDArray[np.float64]:
        """A numeric argument (one of ``NUMBER_ARGS``) of every event; NaN where an event lacks it."""
        import numpy as np

        column = np.full(len(self), np.nan)
        if key in self.args:
            where, values = self.args[key]
            column[where] = values
        return column

    def text_arg(self, key: str) -> NDArray[np.int32]:
        """A text argument (one of ``TEXT_ARGS``) of every event, as an index into ``strings``; -1 where
        an event lacks it."""
        import numpy as np

        column = np.full(len(self), -1, dtype=np.int32)
        if key in self.args:
            where, values = self.args[key]
            column[where] = values
        return column

    def matching(self, pattern: re.Pattern[str], column: NDArray[np.int32] | None = None) -> NDArray[np.bool_]:
        """Which events' names (or texts of ``column``, indexes into ``strings``) ``pattern`` finds."""
        import numpy as np

        hits = np.fromiter((pattern.search(text) is not None for text in self.strings), bool, len(self.strings))
        indexes = self.name if column is None else column
        return np.where(indexes >= 0, hits[indexes], False)

    def event_args(self, index: int) -> dict[str, Any]:
        """The kept arguments of one event, as the trace wrote them (texts for lists)."""
        found: dict[str, Any] = {}
        for key, (where, values) in self.args.items():
            at = int(where.searchsorted(index))
            if at < len(where) and where[at] == index:
                value = values[at].item()
                found[key] = self.strings[value] if key in TEXT_ARGS else value
        return found

    def select(self, keep: NDArray[np.bool_], memory: NDArray[np.bool_]) -> Trace:
        """The events where ``keep`` holds and the memory events where ``memory`` holds (renumbered)."""
        import numpy as np

        renumber = np.cumsum(keep) - 1
        args = {}
        for key, (where, values) in self.args.items():
            kept = keep[where]
            args[key] = (renumber[where[kept]], values[kept])
        columns = {f: getattr(self.memory, f)[memory] for f in Memory.__dataclass_fields__}
        return Trace(self.path, self.header, self.strings, self.kind[keep], self.name[keep], self.start[keep],
                     self.end[keep], self.thread[keep], args, Memory(**columns), self.unknown_categories)  # fmt: skip


_CHUNK = 1 << 20
_WHITESPACE = " \t\r\n"
_SKIPPED = {chars: re.compile(f"[{re.escape(chars)}]*") for chars in (_WHITESPACE, _WHITESPACE + ",")}
_DECODER = json.JSONDecoder()
# Traces whose JSON text is smaller than this are parsed whole (fast, in C); larger ones are streamed,
# an event at a time, so that their text never sits in memory.
WHOLE_DOCUMENT_BYTES = 64 << 20
# ... unless their text is more than this many times the file: torch's gzipped traces expand 7 to 21
# times, and a text that compresses far better (``[{},{},...]``) would become far more Python objects than
# bytes if parsed whole; streamed, it costs no memory.
WHOLE_DOCUMENT_RATIO = 50
# The longest text one value of ``traceEvents`` (or of the header) may have when streamed: no profiler
# writes an event of megabytes, and a value that never ends must not gather a whole file in memory.
MAX_VALUE_CHARS = 16 << 20


class _Stream:
    """Text of a trace's content (already decompressed, see ``logdir.decompressed``), read a megabyte at
    a time after the bytes ``head`` that were read first, with a cursor."""

    def __init__(self, path: Path, source: BinaryIO, head: bytearray) -> None:
        self.path, self.text, self.pos = path, "", 0
        self._source, self._head, self._at = source, head, 0
        self._decoder = codecs.getincrementaldecoder("utf-8")()

    def more(self) -> bool:
        raw: bytes | bytearray
        if self._at < len(self._head):
            raw = self._head[self._at : self._at + _CHUNK]
            self._at += len(raw)
        else:
            self._head = bytearray()
            raw = _content(self.path, self._source, _CHUNK)
        try:
            chunk = self._decoder.decode(raw, final=not raw)
        except UnicodeDecodeError as err:
            raise TraceError(f"{self.path}: not a JSON trace ({err})") from err
        if not raw:
            return False
        self.text = self.text[self.pos :] + chunk
        self.pos = 0
        return True

    def skip(self, chars: str = _WHITESPACE) -> str:
        """Skip ``chars``; the next character, or "" at the end."""
        while True:
            self.pos = _SKIPPED[chars].match(self.text, self.pos).end()  # type: ignore[union-attr]
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
                if len(self.text) - self.pos > MAX_VALUE_CHARS:
                    raise TraceError(
                        f"{self.path}: not a torch.profiler trace (a value of more than {MAX_VALUE_CHARS:,} characters "
                        f"at character {err.pos})"
                    ) from err
                if self.more():
                    continue
                raise TraceError(f"{self.path}: not a JSON trace ({err.msg} at character {err.pos})") from err
            self.pos = end
            return value


def _content(path: Path, source: BinaryIO, size: int) -> bytes:
    """Up to ``size`` bytes of a trace's content; a damaged gzip file is a TraceError (a bomb, TooLarge)."""
    try:
        return source.read(size)
    except (EOFError, zlib.error) as err:
        raise TraceError(f"{path}: a damaged or truncated gzip file ({err})") from err


def _read(path: Path, keep: Any, inside: str | os.PathLike[str] | None) -> dict[str, Any]:
    """The trace's top-level fields, with each element of ``traceEvents`` handed to ``keep``. The file
    is opened once (``logdir.open_inside``: a regular file, inside ``inside`` when given) and its content
    decompressed within its ``logdir.ReadLimit``; a trace whose text is larger than
    ``WHOLE_DOCUMENT_BYTES`` is read in a megabyte of text at a time."""
    from tbscope import logdir

    with logdir.open_inside(path, inside) as file:
        source = logdir.decompressed(file, path)
        head = bytearray()
        while len(head) <= WHOLE_DOCUMENT_BYTES and (chunk := _content(path, source, _CHUNK)):
            head += chunk
        if len(head) <= min(WHOLE_DOCUMENT_BYTES, WHOLE_DOCUMENT_RATIO * os.fstat(file.fileno()).st_size):
            return _read_whole(path, head, keep)
        stream = _Stream(path, source, head)
        del head  # the stream lets go of it once read: a large trace's text never sits in memory whole
        return _read_streamed(stream, keep)


def _read_streamed(stream: _Stream, keep: Any) -> dict[str, Any]:
    path = stream.path
    header: dict[str, Any] = {}
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
    return header


def _read_whole(path: Path, raw: bytearray, keep: Any) -> dict[str, Any]:
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


def load(path: str | os.PathLike[str], inside: str | os.PathLike[str] | None = None) -> Trace:
    """The events of the trace at ``path``, read as a stream (a trace of any size never sits in memory
    as text) into columns. With ``inside`` (a logdir), only a regular file that lies in it is read,
    never through a symbolic link (``logdir.open_inside``). Raises ``TraceError`` for a file that is not
    a trace, ``logdir.TooLarge`` for one that decompresses past its limit (both ValueErrors), OSError
    for one that cannot or may not be read; a trace with no events, or with unknown categories, loads
    (the unknown ones are counted)."""
    import numpy as np

    trace_path = Path(path)
    strings: dict[str, int] = {}  # each distinct name, thread and text argument once: they repeat by the million
    kinds, names, threads = array("B"), array("i"), array("i")
    starts, ends = array("d"), array("d")
    numbers: dict[str, tuple[array[int], array[float]]] = {}
    texts: dict[str, tuple[array[int], array[int]]] = {}
    memory = {f: array("d") for f in ("time", *MEMORY_ARGS.values())}
    memory_threads = array("i")
    unknown: dict[str, int] = {}

    def intern(text: str) -> int:
        code = strings.get(text)
        if code is None:
            code = strings[text] = len(strings)
        return code

    thread_codes: dict[tuple[Any, Any], int] = {}

    def thread(raw: dict[str, Any]) -> int:
        key = (raw.get("pid", ""), raw.get("tid", ""))
        code = thread_codes.get(key)
        if code is None:
            code = thread_codes[key] = intern(f"{key[0]}:{key[1]}")
        return code

    def keep(raw: Any) -> None:
        if not isinstance(raw, dict) or "ts" not in raw:
            return
        phase = raw.get("ph")
        if phase == "i" and raw.get("name") == "[memory]":
            args = raw.get("args")
            args = args if isinstance(args, dict) else {}
            try:
                row = [float(raw["ts"])] + [float(args.get(key, "nan")) for key in MEMORY_ARGS]
            except (TypeError, ValueError):
                return
            for column, value in zip(memory.values(), row, strict=True):
                column.append(value)
            memory_threads.append(thread(raw))
            return
        if phase != "X":
            return
        category = raw.get("cat", "")
        code = CATEGORY_CODES.get(category) if isinstance(category, str) else None
        if code is None:
            if category not in ("Trace", ""):
                unknown[str(category)] = unknown.get(str(category), 0) + 1
            return
        try:
            ts, dur = float(raw["ts"]), float(raw.get("dur", 0.0))
        except (TypeError, ValueError):
            return
        index = len(kinds)
        kinds.append(code)
        name = raw.get("name", "")
        number = strings.get(name) if isinstance(name, str) else None
        names.append(intern(str(name)) if number is None else number)
        threads.append(thread(raw))
        starts.append(ts)
        ends.append(dur)
        args = raw.get("args")
        if not isinstance(args, dict):
            return
        for key in args.keys() & KEPT_ARGS:
            value = args[key]
            if key in NUMBER_ARGS:
                if isinstance(value, (int, float)):
                    pair = numbers.get(key) or numbers.setdefault(key, (array("q"), array("d")))
                    pair[0].append(index)
                    pair[1].append(value)
            else:
                text = texts.get(key) or texts.setdefault(key, (array("q"), array("i")))
                text[0].append(index)
                text[1].append(intern(value if isinstance(value, str) else str(value)))

    header = _read(trace_path, keep, inside)
    devices = header.get("deviceProperties")  # what the analyses read of the header, of the types they read
    header["deviceProperties"] = [d for d in devices if isinstance(d, dict)] if isinstance(devices, list) else []
    start = np.frombuffer(starts, dtype=np.float64)  # views of the arrays read: no copy
    duration = np.frombuffer(ends, dtype=np.float64)
    # Offsets from the first event, durations added after: an absolute timestamp (about 1e15 us) has
    # a quarter-microsecond resolution as a float, which a sum with a duration would lose.
    origin = float(start.min()) if len(start) else 0.0
    start -= origin
    columns = {f: np.frombuffer(c, dtype=np.float64) for f, c in memory.items()}
    columns["time"] -= origin
    kept: dict[str, tuple[NDArray[np.int64], NDArray[Any]]] = {
        key: (np.frombuffer(where, dtype=np.int64), np.frombuffer(values, dtype=np.float64))
        for key, (where, values) in numbers.items()
    }
    for key, (where, codes) in texts.items():
        kept[key] = (np.frombuffer(where, dtype=np.int64), np.frombuffer(codes, dtype=np.int32))
    return Trace(
        str(trace_path), header, list(strings),
        np.frombuffer(kinds, dtype=np.uint8), np.frombuffer(names, dtype=np.int32),
        start, start + duration, np.frombuffer(threads, dtype=np.int32), kept,
        Memory(thread=np.frombuffer(memory_threads, dtype=np.int32), **columns), unknown,
    )  # fmt: skip


def launchers(trace: Trace) -> NDArray[np.int64]:
    """For each event, the operator that launched it (an event index; -1 for none): for a runtime call, the
    innermost operator running on its thread then; for device work, that of the runtime call with the
    same correlation id (as every torch version records it), else the operator with its ``External id``.

    Example:
        >>> import json, tempfile
        >>> path = Path(tempfile.mkdtemp()) / "w.pt.trace.json"
        >>> _ = path.write_text(json.dumps({"traceEvents": [
        ...     {"ph": "X", "cat": "cpu_op", "name": "aten::mm", "ts": 0, "dur": 10, "pid": 1, "tid": 1},
        ...     {"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "ts": 2, "dur": 3, "pid": 1, "tid": 1,
        ...      "args": {"correlation": 4}},
        ...     {"ph": "X", "cat": "kernel", "name": "sgemm", "ts": 8, "dur": 20, "pid": 0, "tid": 7,
        ...      "args": {"correlation": 4}}]}))
        >>> launchers(load(path)).tolist()
        [-1, 0, 0]
    """
    import numpy as np

    found = np.full(len(trace), -1, dtype=np.int64)
    ops = trace.kind == KIND["cpu_op"]
    calls = np.flatnonzero(ops | (trace.kind == KIND["runtime"]))
    # Operators before the calls they contain: by thread, start, operators first, the longest first.
    calls = calls[np.lexsort((-trace.end[calls], ~ops[calls], trace.start[calls], trace.thread[calls]))]
    threads, starts, ends = trace.thread[calls].tolist(), trace.start[calls].tolist(), trace.end[calls].tolist()
    is_op = ops[calls].tolist()
    stack: list[int] = []
    thread = None
    for k, i in enumerate(calls.tolist()):
        if threads[k] != thread:
            stack, thread = [], threads[k]
        while stack and ends[stack[-1]] <= starts[k]:
            stack.pop()
        if is_op[k]:
            stack.append(k)
        elif stack:
            found[i] = calls[stack[-1]]
    device = np.flatnonzero(trace.of(*DEVICE_KINDS))
    for key in ("correlation", "External id"):
        ids = trace.arg(key)
        source = np.flatnonzero((trace.kind == KIND["runtime"]) if key == "correlation" else ops)
        source = source[~np.isnan(ids[source])]
        source = source[np.argsort(ids[source], kind="stable")]
        unmatched = device[found[device] < 0]
        if not len(source) or not len(unmatched):
            continue
        at = np.searchsorted(ids[source], ids[unmatched]).clip(max=len(source) - 1)
        hit = ids[source][at] == ids[unmatched]
        found[unmatched[hit]] = found[source[at[hit]]] if key == "correlation" else source[at[hit]]
    return found


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
