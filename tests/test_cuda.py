"""CUDA tensors are logged without a host-device sync. Runs where a CUDA GPU is present; skips elsewhere."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

import tbscope
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


def test_watch_and_media_helpers_never_sync_and_histograms_move_only_bins(
    tmp_path: Path, sync_is_an_error: None
) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 4)).cuda()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    images = torch.rand(8, 3, 16, 16, device="cuda")
    copies: list[int] = []
    real_to = torch.Tensor.to

    def counting_to(self: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        if self.is_cuda and ("cpu" in args or kwargs.get("device") == "cpu"):
            copies.append(self.numel())
        return real_to(self, *args, **kwargs)

    torch.Tensor.to = counting_to  # type: ignore[method-assign]
    try:
        with tbscope.Writer(tmp_path, cadence=tbscope.Cadence(every=5, dense_until=0)) as w:
            w.watch(model)
            for step in range(12):
                x = torch.randn(32, 64, device="cuda")
                optimizer.zero_grad()
                model(x).square().mean().backward()
                optimizer.step()
                w.add_image_grid("batch", images, step)
                w.add_histogram("acts", torch.randn(100_000, device="cuda"), step)
            torch.cuda.set_sync_debug_mode("default")
    finally:
        torch.Tensor.to = real_to  # type: ignore[method-assign]
    acc = accumulate(tmp_path)
    assert [e.step for e in acc.Images("batch")] == [0, 5, 10]
    assert [e.step for e in acc.Scalars("watch/grad_norm/0.weight")] == [0, 5, 10]
    assert 100_000 not in copies and 64 * 64 not in copies  # bins and statistics travel, never the tensors
