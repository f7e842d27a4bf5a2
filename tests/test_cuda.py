"""CUDA tensors are logged without a host-device sync. Runs where a CUDA GPU is present; skips elsewhere."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import accumulate
from tbscope import Writer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture
def sync_is_an_error() -> Iterator[None]:
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_cuda_scalars_are_logged_without_device_sync(tmp_path: Path, sync_is_an_error: None) -> None:
    with Writer(tmp_path) as w:
        loss = torch.zeros((), device="cuda")
        for step in range(200):
            loss = loss + 1
            w.add_scalar("train/loss", loss, step)
            w.add_scalar("train/loss64", loss.double(), step, double_precision=True)
        torch.cuda.set_sync_debug_mode("default")  # close() may wait; the loop above may not
    acc = accumulate(tmp_path)
    assert [e.value for e in acc.Scalars("train/loss")] == [float(s + 1) for s in range(200)]
    assert len(acc.Tensors("train/loss64")) == 200


def test_cuda_value_is_the_one_at_call_time(tmp_path: Path, sync_is_an_error: None) -> None:
    x = torch.full((), 3.0, device="cuda")
    image = torch.zeros(3, 16, 16, device="cuda")
    values = torch.arange(1000.0, device="cuda")
    with Writer(tmp_path) as w:
        w.add_scalar("x", x, 0)
        w.add_image("img", image, 0)
        w.add_histogram("h", values, 0)
        x.add_(100)
        image.fill_(1.0)
        values.mul_(-1)
        torch.cuda.set_sync_debug_mode("default")
    acc = accumulate(tmp_path)
    assert acc.Scalars("x")[0].value == 3.0
    assert acc.Histograms("h")[0].histogram_value.min == 0.0
    import io

    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(acc.Images("img")[0].encoded_image_string)))
    assert (pixels == 0).all()
