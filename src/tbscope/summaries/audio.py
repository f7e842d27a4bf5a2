"""Audio: samples in [-1, 1] become a 16-bit PCM WAV ``Summary.Audio`` value."""

from __future__ import annotations

import io
import wave

import numpy as np
from tensorboard.compat.proto.summary_pb2 import Summary


def audio_value(tag: str, samples: np.ndarray, sample_rate: int) -> Summary.Value:
    """A WAV clip of ``samples``: shape (L,) or (1, L) for mono, (C, L) for C channels."""
    clip = np.atleast_2d(np.asarray(samples, dtype=np.float32))
    pcm = (np.clip(np.nan_to_num(clip), -1.0, 1.0) * 32767).astype("<i2")
    channels, frames = pcm.shape
    buf = io.BytesIO()
    with wave.open(buf, "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(pcm.T.tobytes())
    return Summary.Value(
        tag=tag,
        audio=Summary.Audio(
            sample_rate=sample_rate,
            num_channels=channels,
            length_frames=frames,
            encoded_audio_string=buf.getvalue(),
            content_type="audio/wav",
        ),
    )
