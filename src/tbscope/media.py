"""Computer-vision pictures: image grids, boxes, masks and confusion matrices, drawn with NumPy and Pillow.

Each ``*_value`` function runs on the pipeline thread and returns the PNG ``Summary.Value`` TensorBoard
shows; each ``check_*`` function runs on the caller's thread, reads shapes (and host values, when they
are on the host), and raises a ValueError that names the argument and what it received.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from tensorboard.compat.proto.summary_pb2 import Summary

from tbscope.summaries.image import downscale, encoded_value, to_uint8

# Colours that stay apart for the first classes; later classes get evenly spaced hues.
_PALETTE = [
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255),
    (170, 110, 40), (255, 250, 200), (128, 0, 0), (170, 255, 195), (128, 128, 0), (255, 215, 180),
    (0, 0, 128), (128, 128, 128),
]  # fmt: skip
BOX_FORMATS = ("xyxy", "xywh", "cxcywh")


def color(index: int) -> tuple[int, int, int]:
    """The colour of class ``index``: the same in every picture tbscope draws."""
    if index < len(_PALETTE):
        return _PALETTE[index]
    r, g, b = colorsys.hsv_to_rgb((index * 0.618034) % 1.0, 0.75, 0.95)
    return round(r * 255), round(g * 255), round(b * 255)


def _font(size: int = 11) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _rgb(hwc: np.ndarray) -> Image.Image:
    return Image.fromarray(hwc if hwc.shape[2] > 1 else hwc[:, :, 0]).convert("RGB")


def batch_layout(shape: Sequence[int], dataformats: str) -> str:
    """ "NCHW" or "NHWC" for a batch of ``shape``; "auto" decides by where 1 or 3 channels are."""
    if dataformats != "auto":
        if dataformats not in ("NCHW", "NHWC"):
            raise ValueError(f"add_image_grid: dataformats must be 'auto', 'NCHW' or 'NHWC', got {dataformats!r}")
        return dataformats
    return "NCHW" if shape[1] in (1, 3, 4) else "NHWC"


def check_batch(method: str, argument: str, shape: Sequence[int], layout: str) -> None:
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
    """A batch as one picture, ``nrow`` images a row, ``padding`` pixels apart, captions underneath."""
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
    caption_height = 14 if captions else 0
    cell_h, cell_w = h + caption_height + padding, w + padding
    canvas = np.zeros((nrows * cell_h + padding, ncols * cell_w + padding, c), dtype=np.uint8)
    for i in range(n):
        row, col = divmod(i, ncols)
        y, x = padding + row * cell_h, padding + col * cell_w
        canvas[y : y + h, x : x + w] = batch[i]
    if captions:
        picture = _rgb(canvas)
        draw = ImageDraw.Draw(picture)
        for i, caption in enumerate(captions):
            row, col = divmod(i, ncols)
            draw.text((padding + col * cell_w, padding + row * cell_h + h + 1), str(caption)[: max(1, w // 6)],
                      fill=(255, 255, 255), font=_font(10))  # fmt: skip
        canvas = np.asarray(picture)
    return encoded_value(tag, downscale(canvas, max_side))


def to_xyxy(boxes: np.ndarray, box_format: str, normalized: bool, width: int, height: int) -> np.ndarray:
    """Boxes in pixels, ``x1, y1, x2, y2``, from any of ``BOX_FORMATS``, normalized or not."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
    if box_format == "xywh":
        b[:, 2:] += b[:, :2]
    elif box_format == "cxcywh":
        b = np.concatenate([b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2], axis=1)
    if normalized:
        b *= [width, height, width, height]
    return b


def check_boxes(boxes: np.ndarray, box_format: str, normalized: bool, width: int, height: int) -> None:
    """Raise a ValueError for boxes outside the image or upside down."""
    xyxy = to_xyxy(boxes, box_format, normalized, width, height)
    slack = 0.5  # rounding of coordinates that touch the border
    outside = (
        (xyxy[:, 0] < -slack) | (xyxy[:, 1] < -slack) | (xyxy[:, 2] > width + slack) | (xyxy[:, 3] > height + slack)
    )
    inverted = (xyxy[:, 2] < xyxy[:, 0]) | (xyxy[:, 3] < xyxy[:, 1])
    for name, bad in (("outside the image", outside), ("with x2 < x1 or y2 < y1", inverted)):
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"add_image_with_detections: box {i} {np.asarray(boxes).reshape(-1, 4)[i].tolist()} ({box_format}"
                f"{', normalized' if normalized else ''}) is {name} of {width}x{height}; {int(bad.sum())} such box(es)"
            )


def check_class_ids(method: str, argument: str, ids: np.ndarray, class_names: Sequence[str] | None) -> None:
    """Raise a ValueError for class ids that are negative or have no name in ``class_names``."""
    if ids.size == 0:
        return
    low, high = int(ids.min()), int(ids.max())
    if low < 0 or (class_names is not None and high >= len(class_names)):
        bad = low if low < 0 else high
        raise ValueError(
            f"{method}: {argument} holds class id {bad}, but class_names has {len(class_names or [])} names "
            f"(ids 0..{len(class_names or []) - 1})"
        )


def detections_value(
    tag: str,
    image: np.ndarray,
    dataformats: str,
    boxes: np.ndarray,
    labels: np.ndarray | None,
    scores: np.ndarray | None,
    class_names: Sequence[str] | None,
    box_format: str,
    normalized: bool,
    score_threshold: float,
    max_side: int | None,
) -> Summary.Value:
    """The image with each box above ``score_threshold`` drawn in its class's colour, named and scored."""
    from tbscope.summaries.image import to_hwc

    hwc = to_uint8(to_hwc(image, dataformats))
    height, width = hwc.shape[:2]
    check_boxes(boxes, box_format, normalized, width, height)
    if labels is not None:
        check_class_ids("add_image_with_detections", "labels", np.asarray(labels), class_names)
    xyxy = to_xyxy(boxes, box_format, normalized, width, height)
    picture = _rgb(hwc)
    draw = ImageDraw.Draw(picture)
    line = max(1, round(max(width, height) / 200))
    for i, (x1, y1, x2, y2) in enumerate(xyxy.tolist()):
        score = None if scores is None else float(np.asarray(scores).reshape(-1)[i])
        if score is not None and score < score_threshold:
            continue
        cls = None if labels is None else int(np.asarray(labels).reshape(-1)[i])
        fill = color(cls if cls is not None else 0)
        draw.rectangle([x1, y1, x2, y2], outline=fill, width=line)
        name = (
            (class_names[cls] if class_names is not None and cls is not None else str(cls)) if cls is not None else ""
        )
        text = " ".join(t for t in (name, f"{score:.2f}" if score is not None else "") if t)
        if text:
            left, top, right, bottom = draw.textbbox((0, 0), text, font=_font())
            text_w, text_h = right - left + 4, bottom - top + 3
            x = min(max(0.0, x1), max(0.0, width - text_w))  # keep the label inside the picture
            y = y1 - text_h if y1 - text_h >= 0 else y1 + line
            draw.rectangle([x, y, x + text_w, y + text_h], fill=fill)
            draw.text((x + 2 - left, y + 1 - top), text, fill=(0, 0, 0), font=_font())
    return encoded_value(tag, downscale(np.asarray(picture), max_side))


def _mask_ids(mask: np.ndarray) -> np.ndarray:
    """Class ids per pixel: a (H, W) integer mask as is, (K, H, W) probabilities by their argmax."""
    return mask.argmax(axis=0) if mask.ndim == 3 else mask.astype(np.int64)


def overlay(hwc: np.ndarray, ids: np.ndarray, alpha: float) -> np.ndarray:
    """``hwc`` with each pixel of class k > 0 blended with class k's colour (class 0 is background)."""
    colors = np.array([color(k) for k in range(int(ids.max()) + 1)], dtype=np.float32)
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
    their titles), and a legend of the classes present."""
    from tbscope.summaries.image import to_hwc

    hwc = to_uint8(to_hwc(image, dataformats))
    if hwc.shape[2] == 1:
        hwc = np.repeat(hwc, 3, axis=2)
    hwc = hwc[:, :, :3]
    predicted = _mask_ids(mask)
    check_class_ids("add_image_with_mask", "mask", predicted, class_names)
    panels = [overlay(hwc, predicted, alpha)]
    present = set(np.unique(predicted).tolist())
    if target is not None:
        truth = _mask_ids(target)
        check_class_ids("add_image_with_mask", "target", truth, class_names)
        panels.insert(0, overlay(hwc, truth, alpha))
        present |= set(np.unique(truth).tolist())
    gap = np.full((hwc.shape[0], 4, 3), 255, dtype=np.uint8)
    body = np.concatenate([panels[0], *(x for p in panels[1:] for x in (gap, p))], axis=1)
    if target is not None:  # titles over the two panels
        header = Image.new("RGB", (body.shape[1], 14), (255, 255, 255))
        titles = ImageDraw.Draw(header)
        titles.text((2, 1), "target", fill=(0, 0, 0), font=_font(10))
        titles.text((hwc.shape[1] + 6, 1), "prediction", fill=(0, 0, 0), font=_font(10))
        body = np.concatenate([np.asarray(header), body], axis=0)
    classes = sorted(k for k in present if k > 0)
    row_height = 14
    legend = Image.new("RGB", (body.shape[1], row_height * max(1, len(classes)) + 4), (255, 255, 255))
    draw = ImageDraw.Draw(legend)
    for row, k in enumerate(classes):
        y = 2 + row * row_height
        draw.rectangle([2, y, 12, y + 10], fill=color(k))
        draw.text(
            (16, y - 1), class_names[k] if class_names is not None else f"class {k}", fill=(0, 0, 0), font=_font(10)
        )
    return encoded_value(tag, downscale(np.concatenate([body, np.asarray(legend)], axis=0), max_side))


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, classes: int, normalize: str | None) -> np.ndarray:
    """Counts (rows: true class, columns: predicted), normalized over rows ("true"), columns ("pred") or not."""
    counts = (
        np.bincount(
            np.asarray(y_true, dtype=np.int64).reshape(-1) * classes + np.asarray(y_pred, dtype=np.int64).reshape(-1),
            minlength=classes * classes,
        )
        .reshape(classes, classes)
        .astype(np.float64)
    )
    if normalize == "true":
        return counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    if normalize == "pred":
        return counts / np.maximum(counts.sum(axis=0, keepdims=True), 1)
    return counts


def heat(share: float) -> tuple[int, int, int]:
    """The colour of a confusion-matrix cell holding ``share`` (0..1) of the largest cell: white to blue,
    linear in each channel, so the picture encodes the matrix (``share = (255 - red) / 200``)."""
    return 255 - round(200 * share), 255 - round(140 * share), 255 - round(40 * share)


CELL = 40
_MARGIN = 90


def confusion_value(
    tag: str, y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str], normalize: str | None
) -> Summary.Value:
    """The confusion matrix as a picture: a ``CELL``-pixel square per cell, coloured by ``heat`` and
    labelled with its count or share; true classes down the left, predicted along the top."""
    for argument, ids in (("y_true", y_true), ("y_pred", y_pred)):
        check_class_ids("add_confusion_matrix", argument, np.asarray(ids), class_names)
    k = len(class_names)
    matrix = confusion_matrix(y_true, y_pred, k, normalize)
    top = matrix.max() if matrix.max() > 0 else 1.0
    picture = Image.new("RGB", (_MARGIN + k * CELL + 2, _MARGIN + k * CELL + 2), (255, 255, 255))
    draw = ImageDraw.Draw(picture)
    font = _font(10)
    for i in range(k):
        draw.text((2, _MARGIN + i * CELL + CELL // 2 - 6), str(class_names[i])[:14], fill=(0, 0, 0), font=font)
        label = Image.new("RGB", (_MARGIN - 4, 12), (255, 255, 255))
        ImageDraw.Draw(label).text((0, 0), str(class_names[i])[:14], fill=(0, 0, 0), font=font)
        picture.paste(label.rotate(90, expand=True), (_MARGIN + i * CELL + CELL // 2 - 6, 2))
        for j in range(k):
            share = float(matrix[i, j] / top)
            x, y = _MARGIN + j * CELL, _MARGIN + i * CELL
            draw.rectangle([x, y, x + CELL - 1, y + CELL - 1], fill=heat(share))
            text = f"{matrix[i, j]:.2f}" if normalize else f"{int(matrix[i, j])}"
            draw.text((x + 6, y + CELL // 2 - 6), text, fill=(0, 0, 0) if share < 0.6 else (255, 255, 255), font=font)
    return encoded_value(tag, np.asarray(picture))


def check_same_length(method: str, **arrays: Any) -> None:
    """Raise a ValueError unless the arrays hold the same, non-zero number of elements."""
    sizes = {name: int(np.prod(a.shape)) for name, a in arrays.items()}
    if len(set(sizes.values())) != 1 or 0 in sizes.values():
        shapes = ", ".join(f"{name} {tuple(a.shape)}" for name, a in arrays.items())
        raise ValueError(f"{method}: expected the same, non-zero number of elements, got {shapes}")
