"""Detections: an image with its predicted boxes (dashed, named and scored) and its ground-truth boxes
(solid, named), each in its class's colour, and a legend; a PNG ``Summary.Image``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from tensorboard.compat.proto.summary_pb2 import Summary

from tbscope.summaries import drawing
from tbscope.summaries.image import downscale, encoded_value, to_hwc, to_uint8

BOX_FORMATS = ("xyxy", "xywh", "cxcywh")


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


def check_boxes(
    boxes: np.ndarray, box_format: str, normalized: bool, width: int, height: int, argument: str = "boxes"
) -> None:
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
            what = "box" if argument == "boxes" else f"{argument} box"
            raise ValueError(
                f"add_image_with_detections: {what} {i} {np.asarray(boxes).reshape(-1, 4)[i].tolist()} ({box_format}"
                f"{', normalized' if normalized else ''}) is {name} of {width}x{height}; {int(bad.sum())} such box(es)"
            )


def _name(cls: int | None, class_names: Sequence[str] | None) -> str:
    if cls is None:
        return ""
    return class_names[cls] if class_names is not None else str(cls)


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
    target_boxes: np.ndarray | None = None,
    target_labels: np.ndarray | None = None,
) -> Summary.Value:
    """The image, enlarged when small (see ``drawing``), with each predicted box scoring at least
    ``score_threshold`` dashed and labelled "name score", each ground-truth box (``target_boxes``, same
    format) solid and labelled with its name, both in their class's colour; under it a legend of the
    two line styles (with ground truth) and of the classes drawn. A label with no room above or under
    its box goes in a white band over the image, never over the object."""
    hwc = to_uint8(to_hwc(image, dataformats))
    height, width = hwc.shape[:2]
    check_boxes(boxes, box_format, normalized, width, height)
    if target_boxes is not None:
        check_boxes(target_boxes, box_format, normalized, width, height, "target_boxes")
    for argument, ids in (("labels", labels), ("target_labels", target_labels)):
        if ids is not None:
            drawing.check_class_ids("add_image_with_detections", argument, np.asarray(ids), class_names)
    factor = drawing.enlargement(height, width)
    dashed = target_boxes is not None
    shown: list[drawing.Box] = []
    classes: list[int | None] = []
    groups: list[tuple[np.ndarray, np.ndarray | None, np.ndarray | None, bool]] = []
    if target_boxes is not None:
        groups.append((target_boxes, target_labels, None, False))
    groups.append((boxes, labels, scores, dashed))
    for group_boxes, group_labels, group_scores, is_prediction in groups:
        xyxy = to_xyxy(group_boxes, box_format, normalized, width, height) * factor
        ids = None if group_labels is None else np.asarray(group_labels).reshape(-1).astype(np.int64)
        confidence = None if group_scores is None else np.asarray(group_scores, dtype=np.float64).reshape(-1)
        for i, corners in enumerate(xyxy.tolist()):
            if confidence is not None and confidence[i] < score_threshold:
                continue
            cls = None if ids is None else int(ids[i])
            text = " ".join(
                t for t in (_name(cls, class_names), "" if confidence is None else f"{confidence[i]:.2f}") if t
            )
            x1, y1, x2, y2 = corners
            shown.append(drawing.Box((x1, y1, x2 - 1, y2 - 1), drawing.color(cls or 0), text, is_prediction))
            classes.append(cls)
    picture = drawing.draw_boxes(drawing.rgb(drawing.enlarged(hwc, factor)), shown, grow=True)
    entries = []
    if target_boxes is not None:
        entries += [("ground truth", drawing.BLACK, "solid"), ("prediction", drawing.BLACK, "dashed")]
    entries += [
        (_name(c, class_names), drawing.color(c), "swatch") for c in sorted({c for c in classes if c is not None})
    ]
    parts = [np.asarray(picture)] + ([drawing.legend(entries, picture.size[0])] if entries else [])
    return encoded_value(tag, downscale(drawing.stacked(parts), max_side))
