"""Segmentation masks: an image with its mask overlaid (beside the ground truth, when given) and a
legend of the classes, enlarged when small; a PNG ``Summary.Image``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw
from tensorboard.compat.proto.summary_pb2 import Summary

from tbscope.summaries import drawing
from tbscope.summaries.image import downscale, encoded_value, to_hwc, to_uint8

_GAP = 4


def class_ids(mask: np.ndarray) -> np.ndarray:
    """Class ids per pixel: a (H, W) integer mask as is, (K, H, W) probabilities by their argmax."""
    return mask.argmax(axis=0) if mask.ndim == 3 else mask.astype(np.int64)


def overlay(hwc: np.ndarray, ids: np.ndarray, alpha: float) -> np.ndarray:
    """``hwc`` with each pixel of class k > 0 blended with class k's colour (class 0 is background)."""
    colors = np.array([drawing.color(k) for k in range(int(ids.max()) + 1)], dtype=np.float32)
    tint = colors[ids]
    out = hwc.astype(np.float32)
    blend = (ids > 0)[:, :, None]
    out = np.where(blend, (1 - alpha) * out + alpha * tint, out)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def mask_value(
    tag: str,
    image: np.ndarray,
    dataformats: str,
    mask: np.ndarray,
    target: np.ndarray | None,
    class_names: Sequence[str] | None,
    alpha: float,
    max_side: int | None,
) -> Summary.Value:
    """The image with its mask overlaid (and, given a target, target and prediction side by side under
    their titles), enlarged when small (see ``drawing``), and a legend of the classes present, whole."""
    hwc = to_uint8(to_hwc(image, dataformats))
    if hwc.shape[2] == 1:
        hwc = np.repeat(hwc, 3, axis=2)
    hwc = hwc[:, :, :3]
    predicted = class_ids(mask)
    drawing.check_class_ids("add_image_with_mask", "mask", predicted, class_names)
    panels = [predicted]
    if target is not None:
        truth = class_ids(target)
        drawing.check_class_ids("add_image_with_mask", "target", truth, class_names)
        panels.insert(0, truth)
    factor = drawing.enlargement(*hwc.shape[:2])
    pictures = [drawing.enlarged(overlay(hwc, ids, alpha), factor) for ids in panels]
    gap = np.full((pictures[0].shape[0], _GAP, 3), 255, dtype=np.uint8)
    body = np.concatenate([pictures[0], *(x for p in pictures[1:] for x in (gap, p))], axis=1)
    parts = [body]
    if target is not None:
        header = Image.new("RGB", (body.shape[1], drawing.ROW), drawing.WHITE)
        titles = ImageDraw.Draw(header)
        panel = pictures[0].shape[1]
        for i, title in enumerate(("target", "prediction")):
            titles.text((2 + i * (panel + _GAP), 1), drawing.ellipsized(title, panel - 2), fill=drawing.BLACK,
                        font=drawing.font())  # fmt: skip
        parts.insert(0, np.asarray(header))
    present = sorted({k for ids in panels for k in np.unique(ids).tolist() if k > 0})
    entries = [
        (class_names[k] if class_names is not None else f"class {k}", drawing.color(k), "swatch") for k in present
    ]
    if entries:
        parts.append(drawing.legend(entries, body.shape[1]))
    return encoded_value(tag, downscale(drawing.stacked(parts), max_side))
