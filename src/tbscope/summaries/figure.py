"""Figures: a matplotlib figure rendered to pixels, to be logged as an image.

Rendering happens on the caller's thread: a figure is mutable user state and matplotlib is not
thread-safe, so it is rasterised before ``add_figure`` returns (and closed, by default). The PNG
encoding of the pixels still happens on the pipeline thread.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def render(figure: Any, close: bool) -> np.ndarray:
    """The figure as an HWC uint8 RGB array, with the Agg renderer (no display needed)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
    except ImportError as err:
        raise ImportError("add_figure needs matplotlib: pip install matplotlib") from err
    if not hasattr(figure, "set_canvas"):
        raise TypeError(f"add_figure: expected a matplotlib Figure, got {type(figure).__name__}")
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    pixels = np.asarray(canvas.buffer_rgba())[:, :, :3].copy()
    if close:
        close_figure(figure)
    return pixels


def close_figure(figure: Any) -> None:
    """Close ``figure`` in pyplot, which otherwise keeps every figure alive."""
    import matplotlib.pyplot as plt

    plt.close(figure)
