"""Snapshots: what a logging call keeps of its value, taken on the caller's thread in O(1) host work.

A Python number or a CPU tensor/array is copied at once, so changing it in place later does not
change what is logged. A CUDA tensor is copied asynchronously into pinned host memory and an event
is recorded behind the copy: the caller never waits on the device, and the pipeline polls the event
before reading the copy. torch is never imported here; a tensor can only exist if the caller
imported it.
"""

from __future__ import annotations

import operator
import sys
import threading
import time
from typing import Any

import numpy as np

# How often the pipeline polls a CUDA event: often enough to add no visible latency, rarely
# enough to leave the GIL to the training loop.
_POLL_SECONDS = 0.0005


class Pending:
    """A value on its way from the device: a host copy that is valid once ``event`` completes."""

    __slots__ = ("event", "host", "is_scalar")

    def __init__(self, host: Any, event: Any, is_scalar: bool) -> None:
        self.host = host
        self.event = event
        self.is_scalar = is_scalar

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.host.shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(str(self.host.dtype).removeprefix("torch.").replace("bfloat16", "float32"))

    def result(self) -> Any:
        """Wait (on the pipeline's thread) for the copy, then the value: a float or an array."""
        while not self.event.query():
            time.sleep(_POLL_SECONDS)
        if self.is_scalar:
            return self.host.item()
        return _tensor_to_numpy(self.host)


class BufferPool:
    """Host buffers handed back by the pipeline once encoded, and reused by the next snapshot of the
    same shape: a fresh 40 MB buffer costs some 80 ms of page faults on first touch, a reused one a
    memcpy. Buffers under ``min_bytes`` are left to the allocator; the pool holds ``max_bytes`` at most.
    """

    def __init__(self, min_bytes: int = 1 << 20, max_bytes: int = 256 << 20) -> None:
        self.min_bytes, self.max_bytes = min_bytes, max_bytes
        self._free: dict[tuple[tuple[int, ...], str], list[np.ndarray]] = {}
        self._held = 0
        self._lock = threading.Lock()

    def take(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        with self._lock:
            free = self._free.get((shape, dtype.str))
            if free:
                buffer = free.pop()
                self._held -= buffer.nbytes
                return buffer
        return np.empty(shape, dtype)

    def give(self, buffer: np.ndarray) -> None:
        """Take ``buffer`` back for reuse; only buffers that own their memory (never a view of a
        tensor's) are kept."""
        if buffer.nbytes < self.min_bytes or not buffer.flags.owndata:
            return
        with self._lock:
            if self._held + buffer.nbytes <= self.max_bytes:
                self._free.setdefault((buffer.shape, buffer.dtype.str), []).append(buffer)
                self._held += buffer.nbytes


POOL = BufferPool()


def _copy(source: np.ndarray) -> np.ndarray:
    out = POOL.take(source.shape, source.dtype) if source.nbytes >= POOL.min_bytes else np.empty_like(source)
    np.copyto(out, source)
    return out


_tensor_type: Any = None


def tensor_type() -> Any:
    """torch.Tensor once the caller has imported torch, else None (no tensor can exist yet)."""
    global _tensor_type
    if _tensor_type is None:
        torch = sys.modules.get("torch")
        _tensor_type = torch.Tensor if torch is not None else None
    return _tensor_type


def _tensor_to_numpy(t: Any) -> np.ndarray:
    import torch

    if t.dtype == torch.bfloat16:
        t = t.float()
    return np.asarray(t.resolve_conj().resolve_neg().numpy())


def _device_copy(t: Any, is_scalar: bool) -> Pending:
    import torch

    host = t.to("cpu", non_blocking=True)  # lands in pinned memory: the copy is truly asynchronous
    event = torch.cuda.Event()
    event.record()
    return Pending(host, event, is_scalar)


def is_cuda(value: Any) -> bool:
    """Whether ``value`` is a CUDA tensor (without importing torch)."""
    tensor_cls = tensor_type()
    return tensor_cls is not None and isinstance(value, tensor_cls) and bool(value.is_cuda)


def scalar(method: str, value: Any) -> float | Pending:
    """A one-element value as a float, or a Pending for a CUDA tensor.

    Raises a TypeError for a value that is not a number (a string, None, ...) and a ValueError
    for a tensor or array with more than one element.
    """
    tensor_cls = tensor_type()
    if tensor_cls is not None and isinstance(value, tensor_cls):
        if value.is_cuda and value.numel() == 1:
            return _device_copy(value.detach().reshape(()), is_scalar=True)
        try:
            return float(value.item())
        except RuntimeError as err:
            if value.numel() != 1:
                raise ValueError(
                    f"{method}: expected a one-element tensor, got shape {tuple(value.shape)}; "
                    "reduce it first, e.g. loss.mean()"
                ) from None
            raise TypeError(f"{method}: cannot read a number from this tensor: {err}") from None
    if isinstance(value, float | int):
        try:
            return float(value)
        except OverflowError:
            raise ValueError(f"{method}: {value} is too large for a float") from None
    if isinstance(value, str):  # torch takes a string that holds a number
        try:
            return float(value)
        except ValueError:
            raise TypeError(f"{method}: expected a number or a one-element tensor, got str {value!r}") from None
    if isinstance(value, np.ndarray | np.generic):
        if value.size != 1:
            raise ValueError(f"{method}: expected a one-element array, got shape {value.shape}")
        if value.dtype.kind not in "biuf":
            raise TypeError(f"{method}: expected a number, got an array of {value.dtype}")
        return float(value.reshape(()).item())
    raise TypeError(f"{method}: expected a number or a one-element tensor, got {type(value).__name__}")


def array(method: str, value: Any) -> np.ndarray | Pending:
    """A copy of a tensor, array or nested list, or a Pending for a CUDA tensor."""
    tensor_cls = tensor_type()
    if tensor_cls is not None and isinstance(value, tensor_cls):
        t = value.detach()
        if t.is_cuda:
            return _device_copy(t, is_scalar=False)
        if t.device.type != "cpu":
            t = t.cpu()  # other accelerators have no event API here: a synchronous copy
        return _copy(_tensor_to_numpy(t))
    if isinstance(value, np.ndarray):
        return _copy(value)
    try:
        result = np.array(value)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{method}: expected a tensor or an array, got {type(value).__name__}: {err}") from None
    if result.dtype.kind not in "biuf":
        raise TypeError(f"{method}: expected a tensor or an array of numbers, got {type(value).__name__}")
    return result


STEPS = 1 << 63  # steps are int64 in an event file: -STEPS <= step < STEPS


def step(method: str, value: Any) -> int:
    """A step as an int; None means 0, as in torch. An event file holds int64 steps: a step outside
    that range is a ValueError naming ``method``."""
    if value is None:
        return 0
    number: int | None = None
    try:
        number = operator.index(value)
    except TypeError:
        if isinstance(value, float) and value.is_integer():
            number = int(value)
        tensor_cls = tensor_type()
        if tensor_cls is not None and isinstance(value, tensor_cls) and value.numel() == 1:
            number = int(value.item())
    if number is None:
        raise TypeError(f"{method}: global_step must be an int, got {type(value).__name__} {value!r}")
    if not -STEPS <= number < STEPS:
        raise ValueError(f"{method}: global_step must fit in int64 (an event file's step), got {value!r}")
    return number
