"""tbscope: TensorBoard as the best local training dashboard for PyTorch computer-vision and ML work.

The public names are handed out on first use (PEP 562): ``import tbscope`` loads neither torch, pandas,
PIL nor the writer, so that the command line and TensorBoard's plugin loader start at once.

Example:
    >>> import tempfile
    >>> import tbscope
    >>> with tbscope.SummaryWriter(tempfile.mkdtemp()) as w:
    ...     w.add_scalar("train/loss", 0.25, 1)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tbscope.pipeline import LoggingError
    from tbscope.policy import Budget, Cadence, Spaced
    from tbscope.profiler.capture import profile
    from tbscope.reader import read_events, read_scalars
    from tbscope.retention import Retention
    from tbscope.runs import Resume, Run, init
    from tbscope.summaries.graph import GraphError
    from tbscope.writer import Writer

    SummaryWriter = Writer
    __version__: str

# Each public name, and the module that holds it (SummaryWriter is torch's name for Writer).
_HOMES = {
    "Budget": ("tbscope.policy", "Budget"),
    "Cadence": ("tbscope.policy", "Cadence"),
    "Spaced": ("tbscope.policy", "Spaced"),
    "GraphError": ("tbscope.summaries.graph", "GraphError"),
    "LoggingError": ("tbscope.pipeline", "LoggingError"),
    "Resume": ("tbscope.runs", "Resume"),
    "Retention": ("tbscope.retention", "Retention"),
    "Run": ("tbscope.runs", "Run"),
    "SummaryWriter": ("tbscope.writer", "Writer"),
    "Writer": ("tbscope.writer", "Writer"),
    "init": ("tbscope.runs", "init"),
    "profile": ("tbscope.profiler.capture", "profile"),
    "read_events": ("tbscope.reader", "read_events"),
    "read_scalars": ("tbscope.reader", "read_scalars"),
}

__all__ = [
    "Budget",
    "Cadence",
    "GraphError",
    "LoggingError",
    "Resume",
    "Retention",
    "Run",
    "Spaced",
    "SummaryWriter",
    "Writer",
    "__version__",
    "init",
    "profile",
    "read_events",
    "read_scalars",
]


def _version() -> str:
    """The installed distribution's version (read on first use: ``importlib.metadata`` costs 30 ms)."""
    from importlib import metadata

    try:
        return metadata.version("tbscope")
    except metadata.PackageNotFoundError:  # a checkout that is not installed
        return "0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        value: Any = _version()
        globals()[name] = value
        return value
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'tbscope' has no attribute {name!r}")
    value = getattr(importlib.import_module(home[0]), home[1])
    globals()[name] = value  # the next use is a plain lookup
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES, "__version__"})
