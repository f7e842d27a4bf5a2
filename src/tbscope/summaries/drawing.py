"""Drawing for people: class colours, small images enlarged, boxes labelled outside themselves, legends
that are never cut, text shortened with an ellipsis. The one box renderer of tbscope.

CV data sets are often 32 to 64 pixels a side, where no label fits. Pictures smaller than ``MIN_SIDE``
are drawn on a copy enlarged by a whole factor, nearest neighbour, so that every pixel of the image
stays a sharp square.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Colours that stay apart for the first classes; later classes get evenly spaced hues.
_PALETTE = [
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255),
    (170, 110, 40), (255, 250, 200), (128, 0, 0), (170, 255, 195), (128, 128, 0), (255, 215, 180),
    (0, 0, 128), (128, 128, 128),
]  # fmt: skip
# A picture whose longer side is under this is enlarged to reach it.
MIN_SIDE = 256
FONT_SIZE = 11
WHITE, BLACK = (255, 255, 255), (0, 0, 0)
Font = ImageFont.ImageFont | ImageFont.FreeTypeFont


def color(index: int) -> tuple[int, int, int]:
    """The colour of class ``index``: the same in every picture tbscope draws."""
    if index < len(_PALETTE):
        return _PALETTE[index]
    r, g, b = colorsys.hsv_to_rgb((index * 0.618034) % 1.0, 0.75, 0.95)
    return round(r * 255), round(g * 255), round(b * 255)


def font(size: int = FONT_SIZE) -> Font:
    return ImageFont.load_default(size=size)


def text_width(text: str, size: int = FONT_SIZE) -> int:
    return math.ceil(font(size).getlength(text))


def ellipsized(text: str, width: int, size: int = FONT_SIZE) -> str:
    """``text`` as it fits in ``width`` pixels: whole, or cut with an ellipsis ("class_00_lon…")."""
    if text_width(text, size) <= width:
        return text
    while text and text_width(text + "…", size) > width:
        text = text[:-1]
    return text + "…"


def rgb(hwc: np.ndarray) -> Image.Image:
    """An HWC uint8 array (1, 3 or 4 channels) as an RGB picture."""
    return Image.fromarray(hwc if hwc.shape[2] > 1 else hwc[:, :, 0]).convert("RGB")


def enlargement(height: int, width: int) -> int:
    """The whole factor a picture of ``height`` x ``width`` is enlarged by before drawing on it: 1 from
    ``MIN_SIDE`` up."""
    return max(1, math.ceil(MIN_SIDE / max(height, width, 1)))


def enlarged(hwc: np.ndarray, factor: int) -> np.ndarray:
    """``hwc`` (or a batch of them, NHWC) enlarged ``factor`` times, each pixel a ``factor`` x ``factor`` square."""
    return hwc if factor == 1 else np.repeat(np.repeat(hwc, factor, axis=-3), factor, axis=-2)


@dataclass(frozen=True)
class Box:
    """A box to draw: ``x1, y1, x2, y2`` in pixels of the picture, its colour, its label (or ""), and
    whether its outline is dashed (a prediction beside solid ground truth)."""

    xyxy: tuple[float, float, float, float]
    color: tuple[int, int, int]
    label: str = ""
    dashed: bool = False


def _dashed_rectangle(draw: ImageDraw.ImageDraw, box: Box, line: int) -> None:
    x1, y1, x2, y2 = box.xyxy
    dash, gap = 4 * line, 3 * line
    for start, end, fixed, horizontal in ((x1, x2, y1, True), (x1, x2, y2 - line + 1, True),
                                          (y1, y2, x1, False), (y1, y2, x2 - line + 1, False)):  # fmt: skip
        pos = start
        while pos < end:
            stop = min(pos + dash - 1, end)
            if horizontal:
                draw.rectangle([pos, fixed, stop, fixed + line - 1], fill=box.color)
            else:
                draw.rectangle([fixed, pos, fixed + line - 1, stop], fill=box.color)
            pos += dash + gap


Rect = tuple[int, int, int, int]


def _overlaps(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def label_place(box: Box, size: tuple[int, int], picture: tuple[int, int], taken: Sequence[Rect] = ()) -> Rect | None:
    """Where a label of ``size`` (w, h) goes for ``box`` on a ``picture`` of (w, h), as ``x1, y1, x2, y2``
    (exclusive): above the box where it fits, else under it, moved sideways to stay in the picture and
    clear of the labels ``taken``; None where neither fits."""
    (w, h), (width, height) = size, picture
    x1, y1, _, y2 = box.xyxy
    x = int(min(max(0.0, x1), max(0, width - w)))
    for y in (int(y1) - h, int(y2) + 1):
        rect = (x, y, x + w, y + h)
        if y >= 0 and y + h <= height and not any(_overlaps(rect, t) for t in taken):
            return rect
    return None


def draw_boxes(picture: Image.Image, boxes: Sequence[Box], grow: bool = False) -> Image.Image:
    """``picture`` with ``boxes`` drawn on it, each label on a banner of the box's colour outside the box
    (see ``label_place``). A label with no room outside goes inside the box's top, or, with ``grow``, in
    a white band added over the picture, a row each: then the picture returned is taller than the one
    given."""
    face = font()

    def size_of(label: str) -> tuple[int, int]:
        left, top, right, bottom = face.getbbox(label)
        return math.ceil(right - left) + 4, math.ceil(bottom - top) + 4

    def places(boxes: Sequence[Box], size: tuple[int, int]) -> list[Rect | None]:
        taken: list[Rect] = []
        found: list[Rect | None] = []
        for box in boxes:
            rect = label_place(box, size_of(box.label), size, taken) if box.label else None
            taken += [rect] if rect else []
            found.append(rect)
        return found

    line = max(1, round(max(picture.size) / 150))
    placed = places(boxes, picture.size)
    cramped = [i for i, (box, rect) in enumerate(zip(boxes, placed, strict=True)) if box.label and rect is None]
    if grow and cramped:
        row = max(size_of(boxes[i].label)[1] for i in cramped)
        band = row * len(cramped)
        taller = Image.new("RGB", (picture.width, picture.height + band), WHITE)
        taller.paste(picture, (0, band))
        picture = taller
        boxes = [replace(b, xyxy=(b.xyxy[0], b.xyxy[1] + band, b.xyxy[2], b.xyxy[3] + band)) for b in boxes]
        placed = [None if r is None else (r[0], r[1] + band, r[2], r[3] + band) for r in placed]
        for n, i in enumerate(cramped):
            w, h = size_of(boxes[i].label)
            x = int(min(max(0.0, boxes[i].xyxy[0]), max(0, picture.width - w)))
            placed[i] = (x, n * row, x + w, n * row + h)
    draw = ImageDraw.Draw(picture)
    for box in boxes:
        if box.dashed:
            _dashed_rectangle(draw, box, line)
        else:
            draw.rectangle(list(box.xyxy), outline=box.color, width=line)
    for box, rect in zip(boxes, placed, strict=True):  # labels over every outline
        if not box.label:
            continue
        w, h = size_of(box.label)
        x, y = (rect[0], rect[1]) if rect else (int(max(0.0, box.xyxy[0])), int(box.xyxy[1]) + line)
        draw.rectangle([x, y, x + w - 1, y + h - 1], fill=box.color)
        left, top, _, _ = face.getbbox(box.label)
        ink = BLACK if sum(box.color) > 380 else WHITE
        draw.text((x + 2 - left, y + 2 - top), box.label, fill=ink, font=face)
    return picture


ROW = 16


def legend(entries: Sequence[tuple[str, tuple[int, int, int], str]], width: int) -> np.ndarray:
    """A white strip listing ``entries`` (text, colour, "swatch", "solid" or "dashed"), as many a row as
    fit in ``width``; it is wider than ``width`` only where one entry is."""
    cells = [18 + text_width(text) + 10 for text, _, _ in entries]
    width = max([width, *cells])
    rows: list[list[int]] = [[]]
    used = 0
    for i, cell in enumerate(cells):
        if rows[-1] and used + cell > width:
            rows.append([])
            used = 0
        rows[-1].append(i)
        used += cell
    strip = Image.new("RGB", (width, ROW * len(rows) + 4), WHITE)
    draw = ImageDraw.Draw(strip)
    for r, row in enumerate(rows):
        x, y = 2, 2 + r * ROW
        for i in row:
            text, fill, mark = entries[i]
            if mark == "swatch":
                draw.rectangle([x, y + 2, x + 11, y + 12], fill=fill)
            else:
                sample = Box((x, y + 2, x + 13, y + 12), fill, dashed=mark == "dashed")
                if sample.dashed:
                    _dashed_rectangle(draw, sample, 2)
                else:
                    draw.rectangle(list(sample.xyxy), outline=fill, width=2)
            draw.text((x + 18, y), text, fill=BLACK, font=font())
            x += cells[i]
    return np.asarray(strip)


def stacked(parts: Sequence[np.ndarray]) -> np.ndarray:
    """RGB pictures one under the other, each padded with white on the right to the widest."""
    width = max(p.shape[1] for p in parts)
    padded = [np.pad(p, ((0, 0), (0, width - p.shape[1]), (0, 0)), constant_values=255) for p in parts]
    return np.concatenate(padded, axis=0)


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
