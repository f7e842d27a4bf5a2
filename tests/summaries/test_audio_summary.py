"""summaries/audio.py: WAV clips for TensorBoard's Audio dashboard."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import numpy as np

from conftest import logged
from tbscope.summaries import audio


def test_a_stereo_clip_reads_back_as_a_wav_of_its_rate_channels_and_length(tmp_path: Path) -> None:
    samples = np.stack([np.sin(np.linspace(0, 20, 800)), np.zeros(800)]).astype(np.float32)
    (event,) = logged(tmp_path, audio.audio_value("sound", samples, 8000)).Audio("sound")
    assert event.sample_rate == 8000 and event.content_type == "audio/wav"
    with wave.open(io.BytesIO(event.encoded_audio_string)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getnframes()) == (8000, 2, 800)
        frames = np.frombuffer(wav.readframes(800), dtype=np.int16).reshape(800, 2)
    assert frames[:, 1].max() == 0 and frames[:, 0].max() > 30_000
