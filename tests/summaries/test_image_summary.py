"""summaries/image.py: PNG images for TensorBoard's Images dashboard."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from conftest import logged
from tbscope.summaries import image


def decoded(acc: object, tag: str) -> np.ndarray:
    (event,) = acc.Images(tag)  # type: ignore[attr-defined]
    return np.asarray(Image.open(io.BytesIO(event.encoded_image_string)))


def test_a_float_chw_image_reads_back_as_the_same_pixels(tmp_path: Path) -> None:
    chw = np.zeros((3, 4, 5), dtype=np.float32)
    chw[0] = 1.0  # red
    chw[2, :, 4] = 0.5
    acc = logged(tmp_path, image.image_value("img", chw, "CHW"))
    (event,) = acc.Images("img")
    pixels = decoded(acc, "img")
    assert (event.width, event.height) == (5, 4) and pixels.shape == (4, 5, 3)
    assert (pixels[:, :, 0] == 255).all() and (pixels[:, 4, 2] == 128).all() and (pixels[:, :3, 2] == 0).all()


def test_a_batch_is_tiled_and_a_large_image_is_scaled_to_max_side(tmp_path: Path) -> None:
    batch = np.full((10, 1, 6, 6), 255, dtype=np.uint8)
    acc = logged(tmp_path / "grid", image.image_value("grid", batch, "NCHW"))
    event = acc.Images("grid")[0]
    assert (event.width, event.height) == (8 * 6, 2 * 6)
    big = np.zeros((2000, 1000), dtype=np.uint8)
    event = logged(tmp_path / "big", image.image_value("big", big, "HW", max_side=500)).Images("big")[0]
    assert (event.width, event.height) == (250, 500)
