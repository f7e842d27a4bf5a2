"""Confusion matrices: counts of true against predicted classes as a picture with axis titles, class
names (shortened with an ellipsis, never cut) and each cell's count or share; a PNG ``Summary.Image``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
from PIL import Image, ImageDraw
from tensorboard.compat.proto.summary_pb2 import Summary

from tbscope.summaries import drawing
from tbscope.summaries.image import encoded_value

# The widest a class name is shown, in pixels, before it is shortened.
NAME_WIDTH = 110
_TITLE = 18


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
    """The colour of a cell holding ``share`` (0..1) of the largest cell: white to blue, linear in each
    channel, so the picture encodes the matrix (``share = (255 - red) / 200``)."""
    return 255 - round(200 * share), 255 - round(140 * share), 255 - round(40 * share)


class Layout(NamedTuple):
    """Where the cells are: cell (i, j) spans ``left + j * cell`` and ``top + i * cell``, ``cell - 1``
    pixels a side; its text is ``font_size`` points."""

    left: int
    top: int
    cell: int
    font_size: int


def layout(class_names: Sequence[str]) -> Layout:
    """The picture's layout for ``class_names``: cells shrink as classes grow (44 pixels up to 12
    classes, 26 from 31), the name margins fit the longest name up to ``NAME_WIDTH``."""
    k = len(class_names)
    cell, size = (44, drawing.FONT_SIZE) if k <= 12 else (32, 10) if k <= 30 else (26, 9)
    names = min(NAME_WIDTH, max(drawing.text_width(str(n), size) for n in class_names)) + 6
    return Layout(_TITLE + names, _TITLE + names, cell, size)


def _cell_text(value: float, normalized: bool, room: int, size: int) -> str:
    """The shortest faithful text of a cell's ``value`` that fits ``room`` pixels."""
    if normalized:
        candidates = [f"{value:.2f}", f"{value:.2f}".removeprefix("0"), f"{value:.1f}".removeprefix("0")]
    else:
        candidates = [f"{int(value)}", f"{value / 1000:.0f}k", f"{value / 1e6:.0f}M"]
    return next((t for t in candidates if drawing.text_width(t, size) <= room), candidates[-1])


def confusion_value(
    tag: str, y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str], normalize: str | None
) -> Summary.Value:
    """The confusion matrix as a picture (see ``layout``): predicted classes along the top under the
    title "predicted", true classes down the left beside the title "true", each cell coloured by
    ``heat`` and labelled with its count or share (empty cells left blank past 30 classes)."""
    for argument, ids in (("y_true", y_true), ("y_pred", y_pred)):
        drawing.check_class_ids("add_confusion_matrix", argument, np.asarray(ids), class_names)
    k = len(class_names)
    matrix = confusion_matrix(y_true, y_pred, k, normalize)
    top_value = matrix.max() if matrix.max() > 0 else 1.0
    at = layout(class_names)
    side_w, side_h = at.left + k * at.cell + 2, at.top + k * at.cell + 2
    picture = Image.new("RGB", (side_w, side_h), drawing.WHITE)
    draw = ImageDraw.Draw(picture)
    face = drawing.font(at.font_size)
    names = [drawing.ellipsized(str(n), at.left - _TITLE - 6, at.font_size) for n in class_names]
    grid = k * at.cell
    title = drawing.font()
    draw.text((at.left + grid // 2, 2), "predicted", fill=drawing.BLACK, font=title, anchor="ma")
    vertical = Image.new("RGB", (max(grid, 40), _TITLE - 4), drawing.WHITE)
    ImageDraw.Draw(vertical).text((vertical.size[0] // 2, 1), "true", fill=drawing.BLACK, font=title, anchor="ma")
    picture.paste(vertical.rotate(90, expand=True), (2, at.top))
    for i in range(k):
        middle = i * at.cell + at.cell // 2
        draw.text((at.left - 4, at.top + middle), names[i], fill=drawing.BLACK, font=face, anchor="rm")
        label = Image.new("RGB", (at.top - _TITLE - 2, at.cell - 2), drawing.WHITE)
        ImageDraw.Draw(label).text((2, label.size[1] // 2), names[i], fill=drawing.BLACK, font=face, anchor="lm")
        picture.paste(label.rotate(90, expand=True), (at.left + i * at.cell + 1, _TITLE))
        for j in range(k):
            value = float(matrix[i, j])
            share = value / top_value
            x, y = at.left + j * at.cell, at.top + i * at.cell
            draw.rectangle([x, y, x + at.cell - 2, y + at.cell - 2], fill=heat(share))
            if value == 0 and k > 30:
                continue
            text = _cell_text(value, normalize is not None, at.cell - 4, at.font_size)
            ink = drawing.BLACK if share < 0.6 else drawing.WHITE
            draw.text((x + (at.cell - 1) // 2, y + (at.cell - 1) // 2), text, fill=ink, font=face, anchor="mm")
    return encoded_value(tag, np.asarray(picture))


def check_same_length(method: str, **arrays: Any) -> None:
    """Raise a ValueError unless the arrays hold the same, non-zero number of elements."""
    sizes = {name: int(np.prod(a.shape)) for name, a in arrays.items()}
    if len(set(sizes.values())) != 1 or 0 in sizes.values():
        shapes = ", ".join(f"{name} {tuple(a.shape)}" for name, a in arrays.items())
        raise ValueError(f"{method}: expected the same, non-zero number of elements, got {shapes}")
