"""summaries/figure.py: matplotlib figures rendered to pixels (encoded as images by summaries/image.py)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from tbscope.summaries import figure


def test_a_figure_renders_at_its_size_and_dpi_and_is_closed_when_asked() -> None:
    fig = plt.figure(figsize=(2, 1), dpi=50)
    fig.patch.set_facecolor("red")
    pixels = figure.render(fig, close=True)
    assert pixels.shape == (50, 100, 3) and pixels.dtype == np.uint8
    assert (pixels[..., 0] == 255).all() and (pixels[..., 1] == 0).all()
    assert fig.number not in plt.get_fignums()
