"""Coloured shapes on noisy backgrounds, with boxes and masks: a CV data set made in milliseconds.

No download: every image is drawn from a seed, so two runs of the demo see the same data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CLASS_NAMES = ("circle", "square", "triangle", "ring", "cross", "diamond")


@dataclass(frozen=True)
class Shapes:
    """A labelled batch: ``images`` (N, 3, S, S) float32 in [0, 1], ``labels`` (N,), ``boxes`` (N, 4)
    xyxy in pixel coordinates (``x2, y2``: the edges just past the shape's last pixels, so that a box
    drawn there encloses the shape) and ``masks`` (N, S, S) bool."""

    images: np.ndarray
    labels: np.ndarray
    boxes: np.ndarray
    masks: np.ndarray


def make_shapes(n: int, size: int = 48, seed: int = 0) -> Shapes:
    """``n`` images of one shape each, of a random class, colour, size and place.

    Example:
        >>> data = make_shapes(4, size=32)
        >>> data.images.shape, data.labels.shape, data.boxes.shape, data.masks.shape
        ((4, 3, 32, 32), (4,), (4, 4), (4, 32, 32))
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    images = np.empty((n, 3, size, size), dtype=np.float32)
    labels = rng.integers(0, len(CLASS_NAMES), size=n)
    boxes = np.empty((n, 4), dtype=np.float32)
    masks = np.empty((n, size, size), dtype=bool)
    for i in range(n):
        radius = rng.uniform(size * 0.1, size * 0.25)
        cx, cy = rng.uniform(radius, size - radius, size=2)
        dx, dy = np.abs(xx - cx), np.abs(yy - cy)
        if labels[i] == 0:
            mask = dx**2 + dy**2 <= radius**2
        elif labels[i] == 1:
            mask = (dx <= radius * 0.85) & (dy <= radius * 0.85)
        elif labels[i] == 2:
            top = cy - radius
            mask = (yy >= top) & (yy <= cy + radius * 0.8) & (dx <= (yy - top) / 1.8)
        elif labels[i] == 3:
            mask = (dx**2 + dy**2 <= radius**2) & (dx**2 + dy**2 >= (radius * 0.6) ** 2)
        elif labels[i] == 4:
            mask = ((dx <= radius * 0.3) & (dy <= radius)) | ((dy <= radius * 0.3) & (dx <= radius))
        else:
            mask = dx + dy <= radius
        background = rng.uniform(0.0, 0.35, size=(3, 1, 1)) + rng.normal(0, 0.12, size=(3, size, size))
        colour = rng.uniform(0.3, 1.0, size=(3, 1, 1))
        images[i] = np.clip(np.where(mask, colour + rng.normal(0, 0.12, size=(3, size, size)), background), 0.0, 1.0)
        ys, xs = np.nonzero(mask)
        boxes[i] = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        masks[i] = mask
    return Shapes(images, labels, boxes, masks)
