"""Histograms: values binned into a ``HistogramProto``, the encoding torch and TensorBoard share.

TensorBoard shows bucket ``i`` as spanning ``bucket_limit[i-1]`` to ``bucket_limit[i]``, with the
histogram's ``min`` and ``max`` as the outer edges, so empty buckets at both ends are dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

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


def check_bins(bins: Bins) -> None:
    """Raise a ValueError for a bins name that neither TensorFlow nor NumPy knows."""
    if isinstance(bins, str) and bins != "tensorflow" and bins not in NUMPY_BIN_NAMES:
        raise ValueError(
            f"add_histogram: bins must be 'tensorflow', one of {', '.join(NUMPY_BIN_NAMES)}, "
            f"a number of bins or the bin edges; got {bins!r}"
        )


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
    counts, rights = counts[first : last + 1], limits[first + 1 : last + 2]
    if max_bins is not None and len(counts) > max_bins:
        group = -(-len(counts) // max_bins)
        counts = np.add.reduceat(counts, np.arange(0, len(counts), group))
        rights = np.append(rights[group - 1 :: group][: len(counts) - 1], rights[-1])
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
