"""CUDA tensors are logged without a host-device sync. Runs where a CUDA GPU is present; skips elsewhere."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

import tbscope
from conftest import accumulate
from tbscope import Writer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@contextlib.contextmanager
def sync_is_an_error() -> Iterator[None]:
    """Within the block, anything that synchronizes with the device raises. Set-up (moving a model to
    the GPU) and closing the writer, which may wait for the device, stay outside it."""
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_cuda_scalars_are_logged_without_device_sync(tmp_path: Path) -> None:
    loss = torch.zeros((), device="cuda")
    with Writer(tmp_path) as w, sync_is_an_error():
        for step in range(200):
            loss = loss + 1
            w.add_scalar("train/loss", loss, step)
            w.add_scalar("train/loss64", loss.double(), step, double_precision=True)
    acc = accumulate(tmp_path)
    assert [e.value for e in acc.Scalars("train/loss")] == [float(s + 1) for s in range(200)]
    assert len(acc.Tensors("train/loss64")) == 200


def test_cuda_value_is_the_one_at_call_time(tmp_path: Path) -> None:
    x = torch.full((), 3.0, device="cuda")
    image = torch.zeros(3, 16, 16, device="cuda")
    values = torch.arange(1000.0, device="cuda")
    with Writer(tmp_path) as w, sync_is_an_error():
        w.add_scalar("x", x, 0)
        w.add_image("img", image, 0)
        w.add_histogram("h", values, 0)
        x.add_(100)
        image.fill_(1.0)
        values.mul_(-1)
    acc = accumulate(tmp_path)
    assert acc.Scalars("x")[0].value == 3.0
    assert acc.Histograms("h")[0].histogram_value.min == 0.0
    import io

    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(acc.Images("img")[0].encoded_image_string)))
    assert (pixels == 0).all()


def test_watch_and_media_helpers_never_sync_and_histograms_move_only_bins(tmp_path: Path) -> None:
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
            with sync_is_an_error():
                for step in range(12):
                    x = torch.randn(32, 64, device="cuda")
                    optimizer.zero_grad()
                    model(x).square().mean().backward()
                    optimizer.step()
                    w.add_image_grid("batch", images, step)
                    w.add_histogram("acts", torch.randn(100_000, device="cuda"), step)
    finally:
        torch.Tensor.to = real_to  # type: ignore[method-assign]
    acc = accumulate(tmp_path)
    assert [e.step for e in acc.Images("batch")] == [0, 5, 10]
    assert [e.step for e in accumulate(tmp_path / "watch" / "0.weight").Scalars("watch/grad_norm")] == [0, 5, 10]
    assert 100_000 not in copies and 64 * 64 not in copies  # bins and statistics travel, never the tensors


def test_every_public_call_with_cuda_tensors_never_syncs(tmp_path: Path) -> None:
    """The issue's list: every method that takes a tensor, given CUDA tensors, inside the sync check."""
    labels = torch.randint(0, 4, (64,), device="cuda")
    scores = torch.rand(64, 4, device="cuda")
    images = torch.rand(4, 3, 16, 16, device="cuda")
    features = torch.randn(64, 8, device="cuda")
    masks = torch.randint(0, 3, (16, 16), device="cuda")
    boxes = torch.tensor([[1.0, 1.0, 8.0, 8.0]], device="cuda")
    with Writer(tmp_path) as w, sync_is_an_error():
        for step in range(3):
            loss = scores.mean()
            w.add_scalar("loss", loss, step)
            w.add_scalars("pair", {"a": loss, "b": loss * 2}, step)
            w.add_image("image", images[0], step)
            w.add_images("images", images, step)
            w.add_image_grid("grid", images, step)
            w.add_image_with_detections("detections", images[0], boxes, step)
            w.add_image_with_mask("mask", images[0], masks, step)
            w.add_tensor("tensor", features, step)
            w.add_histogram("histogram", features, step)
            w.add_histogram("histogram64", features, step, bins=64)
            w.add_pr_curve("pr", labels == 1, scores[:, 1], step)
            w.add_pr_curves("prs", labels, scores, step)
            w.add_confusion_matrix("confusion", labels, scores.argmax(1), ["a", "b", "c", "d"], step)
            w.add_embedding(features, metadata=list(range(64)), label_img=images.repeat(16, 1, 1, 1), global_step=step)
    acc = accumulate(tmp_path)
    assert [e.step for e in acc.Scalars("loss")] == [0, 1, 2]
    assert {"image", "images", "grid", "detections", "mask", "confusion"} <= {
        t.split("/")[0] for t in acc.Tags()["images"]
    }
    assert len(acc.Histograms("histogram")) == 3 and len(acc.Histograms("histogram64")) == 3
