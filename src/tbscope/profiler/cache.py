"""Trace analyses cached in tbscope's cache directory (see ``tbscope.cache``): a second look, from the Profile
tab or ``tbscope profile``, even after a restart, is instant. Entries are keyed on the trace's resolved path,
size and modification time, so a trace that changed or moved is analyzed again; nothing is written beside
the traces, in the user's folders."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tbscope import atomic
from tbscope.cache import directory

# Bumped whenever an analysis changes what it returns: an entry cached by another version is recomputed.
ANALYSIS_VERSION = 3


def entry(path: Path) -> Path:
    """Where the analyses of the trace at ``path``, as it is now, are cached."""
    stat = path.stat()
    key = f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\0{ANALYSIS_VERSION}"
    return directory("profile") / f"{hashlib.sha1(key.encode()).hexdigest()}.json"


def cached(path: Path, view: str, compute: Callable[[], Any]) -> Any:
    """The ``view`` analysis of the trace at ``path``: from the cache when the trace has not changed,
    else ``compute()``, stored for next time (a cache that cannot be written just goes unused)."""
    target = entry(path)
    stored: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        stored = json.loads(target.read_text())
    if not isinstance(stored, dict) or stored.get("trace") != str(path.resolve()):
        stored = {"trace": str(path.resolve())}
    if view not in stored:
        stored[view] = compute()
        with contextlib.suppress(OSError):
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic.write_text(target, json.dumps(stored))
    return stored[view]
