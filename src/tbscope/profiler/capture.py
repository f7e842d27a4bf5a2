"""``tbscope.profile``: ``torch.profiler`` set up in one line, traces where TensorBoard and tbscope find them.

Traces go to ``<run>/profile/<worker>.<time>.pt.trace.json.gz`` (``rank<N>`` under torch.distributed).
When a trace is written, its headline numbers (step time, breakdown shares, GPU utilization) are
logged as scalars into the run, so Time Series shows them next to the loss.
"""

from __future__ import annotations

import gzip
import os
import shutil
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from tbscope.profiler.overview import CATEGORIES, analyze
from tbscope.profiler.trace import load


def _worker() -> str:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return f"rank{dist.get_rank()}"
    return f"{socket.gethostname()}_{os.getpid()}"


class Profile:
    """A running profile: call ``step()`` once a training step. Made by ``tbscope.profile``."""

    def __init__(self, target: Any, wait: int, warmup: int, active: int, repeat: int, record_shapes: bool,
                 profile_memory: bool, with_stack: bool) -> None:  # fmt: skip
        import torch

        writer = getattr(target, "writer", target if hasattr(target, "add_scalar") else None)
        self.writer = writer
        run_dir = Path(getattr(target, "dir", None) or (writer.get_logdir() if writer is not None else target))
        self.dir = run_dir / "profile"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.traces: list[Path] = []
        activities = [torch.profiler.ProfilerActivity.CPU]
        if torch.cuda.is_available():
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        self._profiler = torch.profiler.profile(
            activities=activities,
            schedule=torch.profiler.schedule(wait=wait, warmup=warmup, active=active, repeat=repeat),
            on_trace_ready=self._on_trace_ready,
            record_shapes=record_shapes,
            profile_memory=profile_memory,
            with_stack=with_stack,
        )

    def _on_trace_ready(self, profiler: Any) -> None:
        name = f"{_worker()}.{time.time_ns() // 1_000_000}.pt.trace.json"
        plain = self.dir / name
        profiler.export_chrome_trace(str(plain))
        packed = plain.with_suffix(".json.gz")
        with open(plain, "rb") as source, gzip.open(packed, "wb", compresslevel=6) as target:
            shutil.copyfileobj(source, target)
        plain.unlink()
        self.traces.append(packed)
        if self.writer is not None:
            self._log_headline(packed)

    def _log_headline(self, path: Path) -> None:
        overview = analyze(load(path))
        for s in overview.steps:
            self.writer.add_scalar("profile/step_time_ms", s.duration_us / 1000, s.step)  # type: ignore[union-attr]
            for category in CATEGORIES:
                share = s.breakdown_us[category] / s.duration_us if s.duration_us else 0.0
                self.writer.add_scalar(f"profile/share/{category}", share, s.step)  # type: ignore[union-attr]
        if overview.gpu_utilization is not None and overview.steps:
            self.writer.add_scalar(  # type: ignore[union-attr]
                "profile/gpu_utilization", overview.gpu_utilization, overview.steps[-1].step
            )

    def step(self) -> None:
        """Mark the end of a training step."""
        self._profiler.step()

    def __enter__(self) -> Profile:
        self._profiler.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._profiler.__exit__(exc_type, exc, tb)


def profile(
    run_or_dir: Any,
    wait: int = 1,
    warmup: int = 1,
    active: int = 3,
    repeat: int = 1,
    record_shapes: bool = True,
    profile_memory: bool = True,
    with_stack: bool = False,
) -> Profile:
    """Profile a few training steps with ``torch.profiler``, in one line.

    ``run_or_dir`` is a ``Run`` (from ``tbscope.init``), a ``Writer``, or a directory; traces go to its
    ``profile/`` folder, gzipped. The schedule skips ``wait`` steps, warms up for ``warmup``, records
    ``active`` (``ProfilerStep#N`` annotations mark them), ``repeat`` times. CUDA activity is
    recorded when a GPU is there. With a run or a writer, each trace's step time, breakdown shares
    and GPU utilization are logged as ``profile/...`` scalars.

    Example:
        >>> import tempfile, torch, tbscope
        >>> model = torch.nn.Linear(8, 2)
        >>> with tbscope.Writer(tempfile.mkdtemp()) as w, tbscope.profile(w, wait=0, warmup=1, active=2) as prof:
        ...     for step in range(4):
        ...         model(torch.randn(16, 8)).sum().backward()
        ...         prof.step()
        >>> len(prof.traces)
        1
    """
    return Profile(run_or_dir, wait, warmup, active, repeat, record_shapes, profile_memory, with_stack)
