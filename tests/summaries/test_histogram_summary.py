"""summaries/histogram.py: host and device binning, as TensorBoard's histogram loader reads them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from conftest import logged
from tbscope.summaries import histogram


def test_tensorflow_bins_read_back_with_the_values_statistics(tmp_path: Path) -> None:
    values = np.array([-2.0, 0.5, 0.5, 3.0, np.nan])
    value, dropped = histogram.histogram_value("w", values)
    (event,) = logged(tmp_path, value).Histograms("w")
    h = event.histogram_value
    assert dropped == 1
    assert (h.min, h.max, h.num, h.sum, h.sum_squares) == (-2.0, 3.0, 4, 2.0, 13.5)
    assert sum(h.bucket) == 4 and list(h.bucket_limit) == sorted(h.bucket_limit)


def test_max_bins_merges_adjacent_buckets_and_keeps_every_count(tmp_path: Path) -> None:
    value, _ = histogram.histogram_value("u", np.arange(1000.0), bins=100, max_bins=10)
    h = logged(tmp_path, value).Histograms("u")[0].histogram_value
    assert len(h.bucket) == 10 and sum(h.bucket) == 1000 and h.bucket_limit[-1] == 999.0


def test_bins_made_on_the_device_match_bins_made_on_the_host(tmp_path: Path) -> None:
    values = torch.randn(10_000, dtype=torch.float64)
    for bins in ("tensorflow", 30):
        on_host, _ = histogram.histogram_value("h", values.numpy(), bins)
        on_device, _ = histogram.from_device_bins("h", histogram.device_bins(values, bins).numpy(), bins)
        assert list(on_device.histo.bucket) == list(on_host.histo.bucket)
        assert np.allclose(on_device.histo.bucket_limit, on_host.histo.bucket_limit)
    sampled = histogram.device_bins(torch.arange(4_000_000.0), 16, sample=1000).numpy()
    value, _ = histogram.from_device_bins("s", sampled, 16)
    h = logged(tmp_path, value).Histograms("s")[0].histogram_value
    assert 1000 <= h.num <= 1001 and h.max < 4_000_000


def test_a_histograms_plugin_tensor_reads_as_the_same_histogram() -> None:
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.util import tensor_util

    rows = np.array([[0.0, 1.0, 3.0], [1.0, 2.0, 1.0]])
    value = Summary.Value(tag="t", tensor=tensor_util.make_tensor_proto(rows))
    h = histogram.histogram_of(value, "histograms")
    assert h is not None and (h.min, h.max, h.num, list(h.bucket)) == (0.0, 2.0, 4.0, [3.0, 1.0])
