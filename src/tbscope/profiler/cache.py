"""Analyses cached beside their trace (``.<trace name>.tbscope.json``): a second look, from the Profile tab
or ``tbscope profile``, even after a restart, is instant. A trace that changed is analyzed again."""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Bumped whenever an analysis changes what it returns: a file cached by another version is recomputed.
ANALYSIS_VERSION = 2


def cached(path: Path, view: str, compute: Callable[[], Any]) -> Any:
    """The ``view`` analysis of the trace at ``path``: from the file beside it if that is newer than
    the trace and of this ``ANALYSIS_VERSION``, else ``compute()``, stored there for next time (a
    read-only folder just goes uncached)."""
    beside = path.with_name(f".{path.name}.tbscope.json")
    stored: dict[str, Any] = {}
    if beside.exists() and beside.stat().st_mtime >= path.stat().st_mtime:
        try:
            stored = json.loads(beside.read_text())
        except (OSError, ValueError):
            stored = {}
    if stored.get("version") != ANALYSIS_VERSION:
        stored = {"version": ANALYSIS_VERSION}
    if view not in stored:
        stored[view] = compute()
        if _writable(path.parent):
            with contextlib.suppress(OSError):
                beside.write_text(json.dumps(stored))
    return stored[view]


def _writable(folder: Path) -> bool:
    """Whether ``folder`` is meant to be written: its owner's write bit set (root may write anywhere,
    but a folder made read-only, like a shared copy of traces, is left as it is) and access granted."""
    try:
        return bool(folder.stat().st_mode & stat.S_IWUSR) and os.access(folder, os.W_OK)
    except OSError:
        return False
