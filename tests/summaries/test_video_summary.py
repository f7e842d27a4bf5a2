"""summaries/video.py: clips as animated GIFs, shown by TensorBoard's Images dashboard."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from conftest import logged
from tbscope.summaries import video


def test_clips_read_back_as_one_animated_gif_with_every_frame(tmp_path: Path) -> None:
    clips = np.zeros((2, 5, 3, 8, 8), dtype=np.uint8)
    clips[:, :, 0] = np.arange(5)[None, :, None, None] * 50
    (event,) = logged(tmp_path, video.video_value("clip", clips, fps=5.0)).Images("clip")
    gif = Image.open(io.BytesIO(event.encoded_image_string))
    assert gif.format == "GIF" and gif.n_frames == 5
    assert gif.info["duration"] == 200
