"""Histograms: values binned into a ``HistogramProto``, the encoding torch and TensorBoard share.

TensorBoard shows bucket ``i`` as spanning ``bucket_limit[i-1]`` to ``bucket_limit[i]``, with the
histogram's ``min`` and ``max`` as the outer edges, so empty buckets at both ends are dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np
from tensorboard.compat.proto.summary_pb2 import HistogramProto, Summary
from tensorboard.plugins.histogram import metadata
from tensorboard.util import tensor_util

Bins = str | int | Sequence[float] | np.ndarray


@cache
def tensorflow_edges() -> np.ndarray:
    """TensorFlow's default bucket edges: +-1e-12 growing by 10% a step to +-1e20, and 0."""
    positive = 1e-12 * 1.1 ** np.arange(int(np.ceil(np.log(1e32) / np.log(1.1))))
    return np.concatenate([-positive[::-1], [0.0], positive])


NUMPY_BIN_NAMES = ("auto", "fd", "doane", "scott", "stone", "rice", "sturges", "sqrt")


# More buckets than a chart can show; past this a histogram is a memory hazard, not a picture.
MAX_BINS = 100_000


def check_bins(bins: Bins, max_bins: int | None = None) -> None:
    """Raise a ValueError naming ``add_histogram`` for bins or max_bins it cannot use: an unknown bins
    name, a count or edges outside 1..``MAX_BINS`` bins, a max_bins below 1."""
    if isinstance(bins, str):
        if bins != "tensorflow" and bins not in NUMPY_BIN_NAMES:
            raise ValueError(
                f"add_histogram: bins must be 'tensorflow', one of {', '.join(NUMPY_BIN_NAMES)}, "
                f"a number of bins or the bin edges; got {bins!r}"
            )
    elif isinstance(bins, int | np.integer):
        if not 1 <= bins <= MAX_BINS:
            raise ValueError(f"add_histogram: bins must be between 1 and {MAX_BINS:,}, got {bins:,}")
    elif not 2 <= len(bins) <= MAX_BINS + 1:
        raise ValueError(f"add_histogram: bin edges must be 2 to {MAX_BINS + 1:,} numbers, got {len(bins):,}")
    if max_bins is not None and (type(max_bins) is not int or max_bins < 1):
        raise ValueError(f"add_histogram: max_bins must be a positive int or None, got {max_bins!r}")


def histogram_value(
    tag: str, values: np.ndarray, bins: Bins = "tensorflow", max_bins: int | None = None
) -> tuple[Summary.Value, int]:
    """Bin ``values`` into a histogram; returns it with the count of NaN/Inf values left out.

    ``bins`` is ``"tensorflow"`` (torch's default), any of NumPy's bin names (``"auto"``,
    ``"fd"``, ...), a number of equal-width bins, or the bin edges. With ``max_bins``, adjacent
    buckets are merged until no more than that many remain.
    """
    flat = np.asarray(values, dtype=np.float64).reshape(-1)
    finite = flat[np.isfinite(flat)]
    dropped = flat.size - finite.size
    if finite.size == 0:
        return histogram_raw_value(tag, 0.0, 0.0, 0, 0.0, 0.0, [], []), dropped
    edges: Bins = bins
    if isinstance(bins, str) and bins == "tensorflow":
        edges = tensorflow_edges()
        finite_in_range = np.clip(finite, edges[0], edges[-1])
    else:
        finite_in_range = finite
    counts, limits = np.histogram(finite_in_range, bins=edges)
    nonzero = np.flatnonzero(counts)
    first, last = (int(nonzero[0]), int(nonzero[-1])) if nonzero.size else (0, len(counts) - 1)
    counts, rights = _merged(counts[first : last + 1], limits[first + 1 : last + 2], max_bins)
    return (
        histogram_raw_value(
            tag,
            float(finite.min()),
            float(finite.max()),
            int(finite.size),
            float(finite.sum()),
            float(np.dot(finite, finite)),
            rights.tolist(),
            counts.tolist(),
        ),
        dropped,
    )


def _merged(counts: np.ndarray, rights: np.ndarray, max_bins: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Adjacent buckets merged until no more than ``max_bins`` remain."""
    if max_bins is None or len(counts) <= max_bins:
        return counts, rights
    group = -(-len(counts) // max_bins)
    merged = np.add.reduceat(counts, np.arange(0, len(counts), group))
    return merged, np.append(rights[group - 1 :: group][: len(merged) - 1], rights[-1])


def histogram_raw_value(
    tag: str,
    min: float,
    max: float,
    num: int,
    sum: float,
    sum_squares: float,
    bucket_limits: Sequence[float],
    bucket_counts: Sequence[float],
) -> Summary.Value:
    """A histogram from statistics computed elsewhere (torch's ``add_histogram_raw``)."""
    return Summary.Value(
        tag=tag,
        histo=HistogramProto(
            min=min,
            max=max,
            num=num,
            sum=sum,
            sum_squares=sum_squares,
            bucket_limit=bucket_limits,
            bucket=bucket_counts,
        ),
    )


def histogram_of(value: Summary.Value, plugin: str | None) -> HistogramProto | None:
    """The histogram a value holds: a ``HistogramProto``, or a histograms-plugin ``(k, 3)`` tensor of
    ``[left, right, count]`` rows (TensorFlow 2's layout), converted."""
    if value.HasField("histo"):
        return value.histo
    if value.HasField("tensor") and plugin == metadata.PLUGIN_NAME:
        rows = tensor_util.make_ndarray(value.tensor).reshape(-1, 3).astype(np.float64)
        if not len(rows):
            return HistogramProto()
        counts = rows[:, 2]
        centers = (rows[:, 0] + rows[:, 1]) / 2
        return HistogramProto(
            min=float(rows[0, 0]),
            max=float(rows[-1, 1]),
            num=float(counts.sum()),
            sum=float((centers * counts).sum()),
            sum_squares=float((centers**2 * counts).sum()),
            bucket_limit=rows[:, 1].tolist(),
            bucket=counts.tolist(),
        )
    return None


# -- binning on the device ------------------------------------------------------------------------------

_DEVICE_STATS = 6  # min, max, num, sum, sum_squares, non-finite count


def device_bins(values: Any, bins: int | str, sample: int | None = None) -> Any:
    """Bin a torch tensor where it lives, with no host sync: ``[min, max, num, sum, sum_squares,
    non-finite count, counts...]`` for ``bins`` "tensorflow" or a number of equal-width bins between the
    finite min and max. Only this small tensor need travel to the host (see ``from_device_bins``).
    With ``sample``, a larger tensor is binned from an evenly strided sample of about that many
    elements: the shape of the distribution, at a bounded cost (``watch`` does this every step)."""
    import torch

    x = values.detach().reshape(-1)
    if sample is not None and x.numel() > sample:
        x = x[:: -(-x.numel() // sample)]
    x = x.double()
    finite = torch.isfinite(x)
    clean = torch.where(finite, x, 0.0)
    low = torch.where(finite, x, torch.inf).min()
    high = torch.where(finite, x, -torch.inf).max()
    if isinstance(bins, str):
        edges = _edges_on(x.device)
        low_edge, high_edge = tensorflow_edges()[[0, -1]].tolist()  # host numbers: a device scalar could sync
        index = torch.bucketize(clean.clamp(low_edge, high_edge), edges, right=True) - 1
        count = len(edges) - 1
    else:
        width = (high - low).clamp_min(1e-300)
        index = ((clean - low) / width * bins).long()
        count = bins
    index = index.clamp(0, count - 1)
    counts = torch.zeros(count, dtype=torch.float64, device=x.device).scatter_add_(0, index, finite.double())
    stats = torch.stack(
        [low, high, finite.sum().double(), clean.sum(), (clean * clean).sum(), (~finite).sum().double()]
    )
    return torch.cat([stats, counts])


@cache
def _edges_on(device: Any) -> Any:
    """``tensorflow_edges()`` on ``device``, copied there once: from pinned memory and asynchronously,
    since a copy from pageable memory would synchronize with the device."""
    import torch

    host = torch.from_numpy(tensorflow_edges())
    if device.type == "cuda":
        host = host.pin_memory()  # the host allocator keeps it alive until the copy is done
    return host.to(device, non_blocking=True)


def from_device_bins(
    tag: str, packed: np.ndarray, bins: int | str, max_bins: int | None = None
) -> tuple[Summary.Value, int]:
    """The histogram ``device_bins`` packed, and the count of NaN/Inf values left out of it."""
    low, high, num, total, squares, dropped = packed[:_DEVICE_STATS].tolist()
    counts = packed[_DEVICE_STATS:]
    if num == 0:
        return histogram_raw_value(tag, 0.0, 0.0, 0, 0.0, 0.0, [], []), int(dropped)
    limits = tensorflow_edges() if isinstance(bins, str) else np.linspace(low, high, len(counts) + 1)
    nonzero = np.flatnonzero(counts)
    first, last = int(nonzero[0]), int(nonzero[-1])
    counts, rights = _merged(counts[first : last + 1], limits[first + 1 : last + 2], max_bins)
    value = histogram_raw_value(tag, low, high, int(num), total, squares, rights.tolist(), counts.tolist())
    return value, int(dropped)
