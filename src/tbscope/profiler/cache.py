"""Traces parsed once, and their analyses cached.

``loaded`` keeps the last few parsed traces in memory, shared by every view and request of a process.
``cached`` keeps analyses in tbscope's cache directory (see ``tbscope.cache``): a second look, from the
Profile tab or ``tbscope profile``, even after a restart, is instant. Both are keyed on the trace's
resolved path, size and modification time, so a trace that changed or moved is parsed again; nothing
is written beside the traces, in the user's folders."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tbscope import atomic
from tbscope.cache import directory
from tbscope.profiler.trace import Trace, load

# Bumped whenever an analysis changes what it returns: an entry cached by another version is recomputed.
ANALYSIS_VERSION = 7


# Parsed traces kept in memory, at most, and the memory their columns may take together (the latest one
# is kept whatever its size): a view and the next one of the same traces parse nothing.
KEPT_TRACES = 4
KEPT_BYTES = 1 << 30


Version = tuple[str, int, int, int]


def version(path: Path) -> Version:
    """What identifies the trace at ``path`` as it is now: its absolute path, inode, size and modification
    time (of the path itself: a link swapped in has a version of its own, and is refused when read)."""
    stat = os.lstat(path)
    return os.path.abspath(path), stat.st_ino, stat.st_size, stat.st_mtime_ns


_parsed: OrderedDict[Version, Trace] = OrderedDict()
_parsing: dict[Version, threading.Lock] = {}
_lock = threading.Lock()


def loaded(path: Path, inside: str | os.PathLike[str] | None = None) -> Trace:
    """The trace at ``path``, parsed once per version of the file and shared: concurrent callers wait for
    the one parse. With ``inside`` (a logdir), only a regular file in it is read (see ``trace.load``,
    whose errors it raises).

    Example:
        >>> import json, tempfile
        >>> path = Path(tempfile.mkdtemp()) / "w.pt.trace.json"
        >>> _ = path.write_text(json.dumps({"traceEvents": []}))
        >>> loaded(path) is loaded(path)
        True
    """
    key = version(path)
    with _lock:
        if key in _parsed:
            _parsed.move_to_end(key)
            return _parsed[key]
        parse = _parsing.setdefault(key, threading.Lock())
    with parse:
        with _lock:
            if key in _parsed:
                return _parsed[key]
        try:
            trace = load(path, inside)
        finally:
            with _lock:
                _parsing.pop(key, None)
        with _lock:
            _parsed[key] = trace
            while len(_parsed) > 1 and (
                len(_parsed) > KEPT_TRACES or sum(t.nbytes for t in _parsed.values()) > KEPT_BYTES
            ):
                _parsed.popitem(last=False)
    return trace


def entry(path: Path) -> Path:
    """Where the analyses of the trace at ``path``, as it is now, are cached."""
    key = "\0".join(map(str, (*version(path), ANALYSIS_VERSION)))
    return directory("profile") / f"{hashlib.sha1(key.encode()).hexdigest()}.json"


def cached(path: Path, view: str, compute: Callable[[], Any]) -> Any:
    """The ``view`` analysis of the trace at ``path``: from the cache when the trace has not changed,
    else ``compute()``, stored for next time (a cache that cannot be written just goes unused)."""
    target = entry(path)
    stored: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        stored = json.loads(target.read_text())
    if not isinstance(stored, dict) or stored.get("trace") != os.path.abspath(path):
        stored = {"trace": os.path.abspath(path)}
    if view not in stored:
        stored[view] = compute()
        with contextlib.suppress(OSError):
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic.write_text(target, json.dumps(stored))
    return stored[view]
