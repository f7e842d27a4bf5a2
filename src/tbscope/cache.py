"""tbscope's cache directory: what a reader parsed or analyzed, kept for next time, never in a user's logdir.

``$TBSCOPE_CACHE_DIR`` if set, else ``tbscope`` under the user's cache directory (``$XDG_CACHE_HOME``,
``~/.cache``, or ``~/Library/Caches`` on macOS). Everything in it is safe to delete.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def directory(kind: str) -> Path:
    """The folder holding one kind of cached thing ("scalars", "profile").

    Example:
        >>> directory("profile").name
        'profile'
    """
    configured = os.environ.get("TBSCOPE_CACHE_DIR")
    if configured:
        return Path(configured) / kind
    base = os.environ.get("XDG_CACHE_HOME") or (
        Path.home() / "Library" / "Caches" if sys.platform == "darwin" else Path.home() / ".cache"
    )
    return Path(base) / "tbscope" / kind
