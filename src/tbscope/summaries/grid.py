"""Image grids: a batch as one picture, ``nrow`` images a row, with captions under them (small images
enlarged so that a caption fits); a PNG ``Summary.Image``."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import ImageDraw
from tensorboard.compat.proto.summary_pb2 import Summary

from tbscope.summaries import drawing
from tbscope.summaries.image import downscale, encoded_value, to_uint8

CAPTION_SIZE = 10


def batch_layout(shape: Sequence[int], dataformats: str) -> str:
    """ "NCHW" or "NHWC" for a batch of ``shape``; "auto" decides by where 1 or 3 channels are."""
    if dataformats != "auto":
        if dataformats not in ("NCHW", "NHWC"):
            raise ValueError(f"add_image_grid: dataformats must be 'auto', 'NCHW' or 'NHWC', got {dataformats!r}")
        return dataformats
    return "NCHW" if shape[1] in (1, 3, 4) else "NHWC"


def check_batch(method: str, argument: str, shape: Sequence[int], layout: str) -> None:
    """Raise a ValueError unless ``shape`` is a non-empty batch of 1, 3 or 4 channels in ``layout``."""
    if len(shape) != 4 or 0 in shape:
        raise ValueError(
            f"{method}: {argument} must be a non-empty batch (N, C, H, W) or (N, H, W, C), got {tuple(shape)}"
        )
    channels = shape[1] if layout == "NCHW" else shape[3]
    if channels not in (1, 3, 4):
        raise ValueError(f"{method}: {argument} must have 1, 3 or 4 channels ({layout}), got shape {tuple(shape)}")


def grid_value(
    tag: str,
    images: np.ndarray,
    layout: str,
    nrow: int,
    padding: int,
    normalize: bool,
    value_range: tuple[float, float] | None,
    captions: Sequence[str] | None,
    max_side: int | None,
) -> Summary.Value:
    """A batch as one picture, ``nrow`` images a row, ``padding`` pixels apart. With ``captions``, each
    image is enlarged (a whole factor, nearest neighbour) until its caption fits under it, as far as
    ``max_side`` allows; a caption that still does not fit is shortened with an ellipsis."""
    batch = images.transpose(0, 2, 3, 1) if layout == "NCHW" else images
    if normalize:
        low, high = value_range if value_range is not None else (float(np.nanmin(batch)), float(np.nanmax(batch)))
        batch = np.clip((batch.astype(np.float32) - low) / max(high - low, 1e-12), 0.0, 1.0)
    batch = to_uint8(batch)
    if batch.shape[3] == 1:
        batch = np.repeat(batch, 3, axis=3)
    n, h, w, c = batch.shape
    ncols = min(nrow, n)
    nrows = math.ceil(n / ncols)
    factor = 1
    if captions:
        widest = max(drawing.text_width(str(t), CAPTION_SIZE) for t in captions) + 2
        room = (max_side or 1 << 30) // ncols - padding
        factor = max(1, min(math.ceil(widest / w), room // w))
        batch = drawing.enlarged(batch, factor)
        h, w = h * factor, w * factor
    caption_height = 14 if captions else 0
    cell_h, cell_w = h + caption_height + padding, w + padding
    canvas = np.zeros((nrows * cell_h + padding, ncols * cell_w + padding, c), dtype=np.uint8)
    for i in range(n):
        row, col = divmod(i, ncols)
        y, x = padding + row * cell_h, padding + col * cell_w
        canvas[y : y + h, x : x + w] = batch[i]
    if captions:
        picture = drawing.rgb(canvas)
        draw = ImageDraw.Draw(picture)
        face = drawing.font(CAPTION_SIZE)
        for i, caption in enumerate(captions):
            row, col = divmod(i, ncols)
            text = drawing.ellipsized(str(caption), w, CAPTION_SIZE)
            draw.text((padding + col * cell_w, padding + row * cell_h + h + 1), text, fill=drawing.WHITE, font=face)
        canvas = np.asarray(picture)
    return encoded_value(tag, downscale(canvas, max_side))
