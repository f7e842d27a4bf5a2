"""``tbscope.profile``: ``torch.profiler`` set up in one line, traces where TensorBoard and tbscope find them.

Traces go to ``<run>/profile/<worker>.<time>.pt.trace.json.gz`` (``rank<N>`` under torch.distributed).
When a trace is written, three headline numbers per profiled step (step time, GPU utilization, the
share of the trace's largest category) are logged as scalars into the run at the training loop's own
step numbers, so Time Series shows them next to the loss.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from tbscope.profiler.modules import MODULE_PREFIX
from tbscope.profiler.overview import TORCH_VERSION, TRAINING_STEPS, analyze
from tbscope.profiler.trace import load


def _worker() -> str:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return f"rank{dist.get_rank()}"
    return f"{socket.gethostname()}_{os.getpid()}"


class Profile:
    """A running profile: call ``step(step)`` once a training step. Made by ``tbscope.profile``."""

    def __init__(self, target: Any, wait: int, warmup: int, active: int, repeat: int, record_shapes: bool,
                 profile_memory: bool, with_stack: bool, with_modules: bool, model: Any) -> None:  # fmt: skip
        import torch

        writer = getattr(target, "writer", target if hasattr(target, "add_scalar") else None)
        self.writer = writer
        run_dir = Path(getattr(target, "dir", None) or (writer.get_logdir() if writer is not None else target))
        self.dir = run_dir / "profile"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.traces: list[Path] = []
        self._training_steps: dict[int, int] = {}  # profiler step -> training step, as step() was told
        self._step_times: dict[int, float] = {}  # training step -> the wall time it ended at
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
            with_modules=with_modules,
        )
        self._hooks = _name_modules(model) if model is not None else []

    def _on_trace_ready(self, profiler: Any) -> None:
        name = f"{_worker()}.{time.time_ns() // 1_000_000}.pt.trace.json"
        plain = self.dir / name
        profiler.export_chrome_trace(str(plain))
        packed = plain.with_suffix(".json.gz")
        with open(plain, "rb") as source, gzip.open(packed, "wb", compresslevel=6) as target:
            # The training steps and torch's version go into the header, first: torch writes a JSON object.
            head = source.read(1 << 16).lstrip()
            if head.startswith(b"{"):
                import torch

                fields = {TORCH_VERSION: torch.__version__, TRAINING_STEPS: self._training_steps}
                head = b"{" + json.dumps(fields)[1:-1].encode() + b"," + head[1:]
            target.write(head)
            shutil.copyfileobj(source, target)
        plain.unlink()
        self.traces.append(packed)
        if self.writer is not None:
            self._log_headline(packed)

    def _log_headline(self, path: Path) -> None:
        """Per profiled step, at its training step and the wall time that step ended (not the analysis's,
        later: TensorBoard's relative time axis then shows them beside the loss): step time, GPU utilization
        (with a device), and the share of the category that took the most time over the whole trace."""
        overview = analyze(load(path))
        shares = overview.shares()
        largest = max(shares, key=lambda c: shares[c]) if overview.steps else None
        for s in overview.steps:
            step = s.training_step if s.training_step is not None else s.step
            at = self._step_times.get(step)
            add = self.writer.add_scalar  # type: ignore[union-attr]
            add("watch/profile/step_time_ms", s.duration_us / 1000, step, walltime=at)
            if overview.has_device:
                utilization = s.kernel_busy_us / s.duration_us if s.duration_us else 0.0
                add("watch/profile/gpu_utilization", utilization, step, walltime=at)
            if largest is not None and s.duration_us:
                add(f"watch/profile/share/{largest}", s.breakdown_us[largest] / s.duration_us, step, walltime=at)

    def step(self, step: int | None = None) -> None:
        """Mark the end of a training step. ``step`` is that step's number in the training loop, the one
        its loss is logged at: the ``watch/profile/...`` scalars of the profiled steps are logged at it. Without
        it, they go to the latest step the writer has written by then, which may trail the step just
        logged (its pipeline writes in the background), or to the profiler's own step count when the
        writer has written nothing: pass ``step`` to be exact."""
        from torch.profiler import ProfilerAction

        recording = self._profiler.current_action in (ProfilerAction.RECORD, ProfilerAction.RECORD_AND_SAVE)
        if step is None and recording:
            # A writer that logs nothing (another rank's, say) has no summary: then there is no step to take.
            summary = getattr(self.writer, "scalar_stats", lambda: None)()
            logged = [int(v["last_step"]) for tag, v in (summary or {}).items()
                      if not tag.startswith("watch/") and v.get("last_step") is not None]  # fmt: skip
            step = max(logged) if logged else None
        if step is not None and recording:
            self._training_steps[self._profiler.step_num] = int(step)
            self._step_times[int(step)] = time.time()
        self._profiler.step()

    def __enter__(self) -> Profile:
        self._profiler.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self._profiler.__exit__(exc_type, exc, tb)
        finally:
            for hook in self._hooks:
                hook.remove()


def _name_modules(model: Any) -> list[Any]:
    """Hooks that mark each call of each of ``model``'s modules in the trace with its qualified name
    (``nn.Module: layer3.1.conv2``), for the Modules view; removed when the profile ends."""
    import torch

    open_calls: dict[int, list[Any]] = {}

    def enter(name: str) -> Any:
        def hook(module: Any, args: Any) -> None:
            call = torch.autograd.profiler.record_function(MODULE_PREFIX + name)
            call.__enter__()
            open_calls.setdefault(id(module), []).append(call)

        return hook

    def leave(module: Any, args: Any, output: Any) -> None:
        calls = open_calls.get(id(module))
        if calls:
            calls.pop().__exit__(None, None, None)

    hooks = []
    for name, module in model.named_modules():
        hooks.append(module.register_forward_pre_hook(enter(name or type(model).__name__)))
        hooks.append(module.register_forward_hook(leave))
    return hooks


def profile(
    run_or_dir: Any,
    wait: int = 1,
    warmup: int = 1,
    active: int = 3,
    repeat: int = 1,
    record_shapes: bool = True,
    profile_memory: bool = True,
    with_stack: bool = False,
    with_modules: bool = False,
    model: Any = None,
) -> Profile:
    """Profile a few training steps with ``torch.profiler``, in one line.

    ``run_or_dir`` is a ``Run`` (from ``tbscope.init``), a ``Writer``, or a directory; traces go to its
    ``profile/`` folder, gzipped. The schedule skips ``wait`` steps, warms up for ``warmup``, records
    ``active`` (``ProfilerStep#N`` annotations mark them), ``repeat`` times. CUDA activity is
    recorded when a GPU is there. ``record_shapes``, ``profile_memory``, ``with_stack`` and
    ``with_modules`` are torch.profiler's options (``with_stack`` also records each ``nn.Module`` call,
    by class: ``Conv2d_3``; ``with_modules`` records TorchScript modules' hierarchy); give ``model`` to mark
    each of its modules' calls with its qualified name (``layer3.1.conv2``) for the Modules view.

    With a run or a writer, each profiled step's time, GPU utilization and the share of the trace's
    largest category are logged as ``watch/profile/...`` scalars at the training step: the number passed to
    ``prof.step(step)`` as that step ends (see ``Profile.step``).

    Example:
        >>> import tempfile, torch, tbscope
        >>> model = torch.nn.Linear(8, 2)
        >>> with tbscope.Writer(tempfile.mkdtemp()) as w, tbscope.profile(w, wait=0, warmup=1, active=2) as prof:
        ...     for step in range(1000, 1004):
        ...         loss = model(torch.randn(16, 8)).sum()
        ...         loss.backward()
        ...         w.add_scalar("train/loss", loss.item(), step)
        ...         prof.step(step)
        >>> len(prof.traces)
        1
    """
    return Profile(run_or_dir, wait, warmup, active, repeat, record_shapes, profile_memory, with_stack, with_modules,
                   model)  # fmt: skip
