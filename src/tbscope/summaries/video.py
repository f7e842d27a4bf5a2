"""Video: an (N, T, C, H, W) batch of clips becomes one animated GIF that the Images dashboard plays."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from tensorboard.compat.proto.summary_pb2 import Summary

from tbscope.summaries.image import tile, to_uint8


def check_shape(shape: tuple[int, ...]) -> None:
    """Raise a ValueError unless ``shape`` is (N, T, C, H, W) with 1, 3 or 4 channels."""
    if len(shape) != 5 or shape[2] not in (1, 3, 4) or 0 in shape:
        raise ValueError(f"add_video: expected shape (N, T, C, H, W) with C in 1, 3, 4 and no empty axis, got {shape}")


def video_value(tag: str, clips: np.ndarray, fps: float) -> Summary.Value:
    """The clips side by side in a grid, one GIF frame per time step, at ``fps`` frames a second."""
    frames_nthwc = to_uint8(clips.transpose(0, 1, 3, 4, 2))
    if frames_nthwc.shape[-1] == 1:
        frames_nthwc = np.repeat(frames_nthwc, 3, axis=-1)
    frames = [Image.fromarray(tile(frames_nthwc[:, t])[:, :, :3]) for t in range(frames_nthwc.shape[1])]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=int(1000 / fps), loop=0)
    height, width = frames[0].height, frames[0].width
    return Summary.Value(
        tag=tag,
        image=Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=buf.getvalue()),
    )
