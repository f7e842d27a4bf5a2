"""tbscope: TensorBoard as the best local training dashboard for PyTorch computer-vision and ML work.

Example:
    >>> import tempfile
    >>> import tbscope
    >>> with tbscope.SummaryWriter(tempfile.mkdtemp()) as w:
    ...     w.add_scalar("train/loss", 0.25, 1)
"""

from tbscope.pipeline import LoggingError
from tbscope.policy import Budget, Cadence
from tbscope.profiler.capture import profile
from tbscope.reader import read_events, read_scalars
from tbscope.runs import Resume, Retention, Run, init
from tbscope.summaries.graph import GraphError
from tbscope.writer import Writer

SummaryWriter = Writer
"""The name torch uses: ``from tbscope import SummaryWriter`` is a one-line switch."""

__version__ = "0.1.0"

__all__ = [
    "Budget",
    "Cadence",
    "GraphError",
    "LoggingError",
    "Resume",
    "Retention",
    "Run",
    "SummaryWriter",
    "Writer",
    "__version__",
    "init",
    "profile",
    "read_events",
    "read_scalars",
]
