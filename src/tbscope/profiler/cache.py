"""Analyses cached beside their trace (``.<trace name>.tbscope.json``): a second look, from the Profile tab
or ``tbscope profile``, even after a restart, is instant. A trace that changed is analyzed again."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def cached(path: Path, view: str, compute: Callable[[], Any]) -> Any:
    """The ``view`` analysis of the trace at ``path``: from the file beside it if that is newer than
    the trace, else ``compute()``, stored there for next time (a read-only folder just goes uncached)."""
    beside = path.with_name(f".{path.name}.tbscope.json")
    stored: dict[str, Any] = {}
    if beside.exists() and beside.stat().st_mtime >= path.stat().st_mtime:
        try:
            stored = json.loads(beside.read_text())
        except (OSError, ValueError):
            stored = {}
    if view not in stored:
        stored[view] = compute()
        with contextlib.suppress(OSError):
            beside.write_text(json.dumps(stored))
    return stored[view]
