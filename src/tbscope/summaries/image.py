"""Images: arrays in any of torch's layouts become PNG-encoded ``Summary.Image`` values, and back.

The shape check runs on the caller's thread (it reads a shape, nothing more); conversion and PNG
encoding run on the pipeline thread.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
from PIL import Image
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.plugins.image import metadata

from tbscope.summaries import drawing

_LAYOUT_LETTERS = {2: "HW", 3: "CHW", 4: "NCHW"}


def check_layout(method: str, shape: Sequence[int], dataformats: str, batch_method: str = "") -> None:
    """Raise a ValueError naming ``method`` when ``shape`` does not fit ``dataformats``.

    ``dataformats`` is a permutation of HW, CHW or NCHW (torch's convention). The channel axis
    must hold 1, 3 or 4 channels.
    """
    fmt = dataformats.upper()
    letters = _LAYOUT_LETTERS.get(len(fmt))
    if letters is None or sorted(fmt) != sorted(letters):
        raise ValueError(f"{method}: dataformats must be a permutation of HW, CHW or NCHW, got {dataformats!r}")
    if len(shape) != len(fmt):
        hint = f"; use {batch_method} for a batch" if batch_method and len(shape) == len(fmt) + 1 else ""
        raise ValueError(
            f"{method}: expected {len(fmt)} dims ({','.join(fmt)}) for dataformats={dataformats!r}, "
            f"got shape {tuple(shape)}{hint}"
        )
    if "C" in fmt and shape[fmt.index("C")] not in (1, 3, 4):
        raise ValueError(
            f"{method}: expected 1, 3 or 4 channels on axis {fmt.index('C')} for dataformats="
            f"{dataformats!r}, got shape {tuple(shape)}"
        )
    if any(size == 0 for size in shape):
        raise ValueError(f"{method}: got an empty image, shape {tuple(shape)}")


def image_size(shape: Sequence[int], dataformats: str) -> tuple[int, int]:
    """(height, width) of an image of ``shape`` laid out as ``dataformats``."""
    fmt = dataformats.upper()
    return int(shape[fmt.index("H")]), int(shape[fmt.index("W")])


def check_dtype(method: str, dtype: np.dtype) -> None:
    """Raise a TypeError unless ``dtype`` is uint8, bool or floating point (values in [0, 1])."""
    if dtype != np.uint8 and dtype.kind not in "fb":
        raise TypeError(
            f"{method}: expected uint8 (0-255) or float (0-1) pixels, got {dtype}; "
            "convert integers with .to(torch.uint8) or scale floats to [0, 1]"
        )


def to_uint8(array: np.ndarray) -> np.ndarray:
    """Pixels as uint8: uint8 unchanged, floats in [0, 1] scaled and rounded, NaN as 0."""
    if array.dtype == np.uint8:
        return array
    scaled = np.nan_to_num(array.astype(np.float32), nan=0.0) * 255.0 + 0.5
    return np.clip(scaled, 0, 255).astype(np.uint8)


def tile(batch: np.ndarray, ncols: int = 8) -> np.ndarray:
    """Lay an NHWC batch out as one HWC image, ``ncols`` images a row (torch's grid, no padding)."""
    n, h, w, c = batch.shape
    ncols = min(n, ncols)
    nrows = math.ceil(n / ncols)
    canvas = np.zeros((nrows * h, ncols * w, c), dtype=batch.dtype)
    for i in range(n):
        row, col = divmod(i, ncols)
        canvas[row * h : (row + 1) * h, col * w : (col + 1) * w] = batch[i]
    return canvas


def to_hwc(array: np.ndarray, dataformats: str) -> np.ndarray:
    """An array in ``dataformats`` layout as one HWC image; a batch is tiled into a grid."""
    fmt = dataformats.upper()
    if len(fmt) == 2:
        return array.transpose([fmt.index(a) for a in "HW"])[:, :, None]
    if len(fmt) == 3:
        return array.transpose([fmt.index(a) for a in "HWC"])
    batch = array.transpose([fmt.index(a) for a in "NHWC"])
    if batch.shape[3] == 1:
        batch = np.repeat(batch, 3, axis=3)
    return tile(batch)


def encode_png(hwc: np.ndarray) -> bytes:
    """PNG bytes of an HWC uint8 image with 1, 3 or 4 channels."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(hwc if hwc.shape[2] > 1 else hwc[:, :, 0])).save(buf, format="PNG")
    return buf.getvalue()


def image_value(
    tag: str,
    array: np.ndarray,
    dataformats: str,
    boxes: np.ndarray | None = None,
    labels: Sequence[str] | None = None,
    rescale: float = 1.0,
    max_side: int | None = None,
) -> Summary.Value:
    """A ``Summary.Image`` of ``array`` (uint8, bool or float in [0, 1]) laid out as ``dataformats``,
    with ``boxes`` (N, 4 pixel ``x1, y1, x2, y2``) drawn on it when given, scaled by ``rescale``,
    and downscaled to ``max_side`` when larger."""
    hwc = to_uint8(to_hwc(array, dataformats))
    if rescale != 1.0:
        height, width = max(1, round(hwc.shape[0] * rescale)), max(1, round(hwc.shape[1] * rescale))
        resized = Image.fromarray(hwc if hwc.shape[2] > 1 else hwc[:, :, 0]).resize((width, height))
        hwc = np.asarray(resized).reshape(height, width, -1)
        boxes = None if boxes is None else boxes * rescale
    if boxes is not None:  # torch's way: red, and a label per box when there is one for every box
        red = (255, 0, 0)
        shown = [drawing.Box(tuple(b), red, labels[i] if labels else "") for i, b in enumerate(boxes.tolist())]
        hwc = np.asarray(drawing.draw_boxes(drawing.rgb(hwc), shown))
    return encoded_value(tag, downscale(hwc, max_side))


def downscale(hwc: np.ndarray, max_side: int | None) -> np.ndarray:
    """``hwc`` (uint8) shrunk to fit ``max_side`` on both sides, aspect ratio kept; as is if it fits."""
    height, width = hwc.shape[:2]
    if max_side is None or max(height, width) <= max_side:
        return hwc
    scale = max_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    shrunk = Image.fromarray(hwc if hwc.shape[2] > 1 else hwc[:, :, 0]).resize(size, Image.Resampling.LANCZOS)
    return np.asarray(shrunk).reshape(size[1], size[0], -1)


def encoded_value(tag: str, hwc: np.ndarray) -> Summary.Value:
    """An HWC uint8 image as a PNG ``Summary.Image``."""
    height, width, channels = hwc.shape
    return Summary.Value(
        tag=tag,
        image=Summary.Image(height=height, width=width, colorspace=channels, encoded_image_string=encode_png(hwc)),
    )


def images_of(value: Summary.Value, plugin: str | None) -> list[tuple[int, int, bytes]]:
    """The ``(width, height, encoded bytes)`` of each image a value holds: a ``Summary.Image``, or
    an images-plugin string tensor ``[width, height, image, image, ...]`` (TensorFlow 2's layout)."""
    if value.HasField("image"):
        return [(value.image.width, value.image.height, value.image.encoded_image_string)]
    if value.HasField("tensor") and plugin == metadata.PLUGIN_NAME:
        strings = list(value.tensor.string_val)
        if len(strings) >= 3:
            width, height = int(strings[0]), int(strings[1])
            return [(width, height, image) for image in strings[2:]]
    return []
