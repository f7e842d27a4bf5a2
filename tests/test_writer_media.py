"""Images, figures, video, audio and histograms, decoded from what TensorBoard's loader reads."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tensorboard.util import tensor_util

from conftest import accumulate
from tbscope import Writer


def decoded(log_dir: Path, tag: str, index: int = -1) -> np.ndarray:
    event = accumulate(log_dir).Images(tag)[index]
    return np.asarray(Image.open(io.BytesIO(event.encoded_image_string)))


@pytest.mark.parametrize(
    ("layout", "array"),
    [
        ("CHW", np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)),
        ("HWC", np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5).transpose(1, 2, 0)),
        ("WHC", np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5).transpose(2, 1, 0)),
    ],
)
def test_image_layouts_give_the_same_pixels(tmp_path: Path, layout: str, array: np.ndarray) -> None:
    with Writer(tmp_path) as w:
        w.add_image("img", array, 0, dataformats=layout)
    expected = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5).transpose(1, 2, 0)
    assert np.array_equal(decoded(tmp_path, "img"), expected)


def test_float_images_are_scaled_from_0_1_and_grayscale_stays_one_channel(tmp_path: Path) -> None:
    gray = torch.tensor([[0.0, 0.5], [1.0, 2.0]])
    with Writer(tmp_path) as w:
        w.add_image("gray", gray, 0, dataformats="HW")
        w.add_image("rgb", torch.full((3, 2, 2), 0.25), 0)
    assert decoded(tmp_path, "gray").tolist() == [[0, 128], [255, 255]]
    assert (decoded(tmp_path, "rgb") == 64).all()
    event = accumulate(tmp_path).Images("gray")[0]
    assert (event.width, event.height) == (2, 2)


def test_a_batch_becomes_a_grid_eight_a_row(tmp_path: Path) -> None:
    batch = np.zeros((10, 3, 4, 6), dtype=np.uint8)
    for i in range(10):
        batch[i] = i * 20
    with Writer(tmp_path) as w:
        w.add_images("batch", batch, 0)
        w.add_images("nhwc", batch.transpose(0, 2, 3, 1), 0, dataformats="NHWC")
        w.add_images("mono", np.ones((2, 1, 4, 4), dtype=np.float32), 0)
    grid = decoded(tmp_path, "batch")
    assert grid.shape == (8, 48, 3)
    assert grid[0, 0, 0] == 0 and grid[0, 6 * 7, 0] == 140 and grid[4, 6, 0] == 180
    assert (grid[4:, 12:] == 0).all()
    assert np.array_equal(decoded(tmp_path, "nhwc"), grid)
    assert decoded(tmp_path, "mono").shape == (4, 8, 3)


def test_image_logged_is_the_one_at_call_time(tmp_path: Path) -> None:
    img = torch.zeros(3, 4, 4)
    with Writer(tmp_path) as w:
        w.add_image("img", img, 0)
        img.fill_(1.0)
    assert (decoded(tmp_path, "img") == 0).all()


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda w: w.add_image("i", np.zeros((1, 3, 8, 8))), ValueError,
         r"add_image: expected 3 dims \(C,H,W\) for dataformats='CHW', got shape \(1, 3, 8, 8\); use add_images"),
        (lambda w: w.add_image("i", np.zeros((5, 8, 8))), ValueError, r"expected 1, 3 or 4 channels on axis 0"),
        (lambda w: w.add_image("i", np.zeros((3, 8, 8)), dataformats="XYZ"), ValueError,
         r"dataformats must be a permutation of HW, CHW or NCHW, got 'XYZ'"),
        (lambda w: w.add_image("i", np.zeros((3, 8, 8), dtype=np.int64)), TypeError,
         r"expected uint8 \(0-255\) or float \(0-1\) pixels, got int64"),
        (lambda w: w.add_images("i", np.zeros((0, 3, 8, 8))), ValueError, r"got an empty image"),
        (lambda w: w.add_image("i", "not an image"), TypeError, r"add_image: expected"),
        (lambda w: w.add_image_with_boxes("i", np.zeros((3, 8, 8)), np.zeros((2, 3))), ValueError,
         r"box_tensor must have shape \(N, 4\), got \(2, 3\)"),
        (lambda w: w.add_video("v", np.zeros((2, 3, 8, 8))), ValueError, r"expected shape \(N, T, C, H, W\)"),
        (lambda w: w.add_audio("a", np.zeros((1, 2, 3))), ValueError, r"expected shape \(L,\) or \(C, L\)"),
        (lambda w: w.add_histogram("h", np.zeros(0)), ValueError, r"values is empty"),
        (lambda w: w.add_histogram("h", np.zeros(3), bins="nope"), ValueError, r"bins must be 'tensorflow'"),
        (lambda w: w.add_histogram_raw("h", 0, 1, 2, 1, 1, [1, 2], [1]), ValueError,
         r"2 bucket_limits but 1 bucket_counts"),
    ],
)  # fmt: skip
def test_bad_media_input_is_a_clear_error_and_nothing_is_written(
    tmp_path: Path, call: object, error: type, match: str
) -> None:
    with Writer(tmp_path) as w, pytest.raises(error, match=match):
        call(w)  # type: ignore[operator]
    tags = accumulate(tmp_path).Tags()
    assert tags["images"] == [] and tags["histograms"] == [] and tags["audio"] == []


def test_boxes_are_drawn_where_they_are(tmp_path: Path) -> None:
    with Writer(tmp_path) as w:
        w.add_image_with_boxes("boxed", np.zeros((3, 32, 32)), torch.tensor([[4, 6, 20, 24]]), 0, labels=["cat"])
        w.add_image_with_boxes("scaled", np.zeros((3, 16, 16)), np.array([[2, 3, 10, 12]]), 0, rescale=2)
    img = decoded(tmp_path, "boxed")
    assert tuple(img[6, 12]) == (255, 0, 0)  # top edge
    assert tuple(img[15, 4]) == (255, 0, 0)  # left edge
    assert tuple(img[21, 12]) == (0, 0, 0)  # inside, below the label
    scaled = decoded(tmp_path, "scaled")
    assert scaled.shape == (32, 32, 3) and tuple(scaled[6, 12]) == (255, 0, 0)


def test_box_labels_are_taken_as_torch_takes_them(tmp_path: Path) -> None:
    """A single string is one label; a label count that does not match the boxes draws the boxes
    without labels, with one warning."""
    image, boxes = np.zeros((3, 32, 32)), np.array([[4, 6, 20, 24], [2, 2, 8, 8]])
    with Writer(tmp_path) as w:
        w.add_image_with_boxes("list", image, boxes[:1], 0, labels=["cat"])
        w.add_image_with_boxes("string", image, boxes[:1], 0, labels="cat")
        w.add_image_with_boxes("plain", image, boxes[:1], 0)
        w.add_image_with_boxes("none", image, boxes, 0)
        with pytest.warns(RuntimeWarning, match=r"'mismatch' got 1 labels for 2 boxes; the boxes are drawn without"):
            w.add_image_with_boxes("mismatch", image, boxes, 0, labels=["cat"])
    assert np.array_equal(decoded(tmp_path, "string"), decoded(tmp_path, "list"))
    assert np.array_equal(decoded(tmp_path, "mismatch"), decoded(tmp_path, "none"))
    assert not np.array_equal(decoded(tmp_path, "list"), decoded(tmp_path, "plain"))  # the label is drawn


def test_figure_is_rendered_headless_and_closed(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 1), dpi=50)
    ax.set_title("loss")
    ax.plot([0, 1], [1, 0])
    second = plt.figure(figsize=(1, 1), dpi=50)
    with Writer(tmp_path) as w:
        w.add_figure("fig", fig, 0)
        w.add_figure("figs", [plt.figure(figsize=(2, 1), dpi=50), second], 0)
    assert not plt.get_fignums()
    img = decoded(tmp_path, "fig")
    assert img.shape == (50, 100, 3) and (img < 128).any() and (img == 255).any()
    assert decoded(tmp_path, "figs").shape == (50, 200, 3)


def test_video_is_an_animated_gif_of_the_right_size_and_length(tmp_path: Path) -> None:
    clips = torch.zeros(2, 5, 3, 8, 10)
    clips[:, 2] = 1.0
    with Writer(tmp_path) as w:
        w.add_video("clip", clips, 0, fps=10)
    event = accumulate(tmp_path).Images("clip")[0]
    gif = Image.open(io.BytesIO(event.encoded_image_string))
    assert gif.format == "GIF" and gif.size == (20, 8)
    frames = []
    for i in range(gif.n_frames):  # identical neighbours are merged into one longer frame
        gif.seek(i)
        frames.append((gif.info["duration"], np.asarray(gif.convert("RGB")).min()))
    assert sum(d for d, _ in frames) == 500
    assert [v for _, v in frames] == [0, 255, 0]


def test_audio_is_a_wav_of_the_samples(tmp_path: Path) -> None:
    samples = np.sin(np.linspace(0, 100, 8000)).astype(np.float32)
    with Writer(tmp_path) as w:
        w.add_audio("tone", samples[None], 0, sample_rate=8000)
    event = accumulate(tmp_path).Audio("tone")[0]
    assert event.sample_rate == 8000 and event.content_type == "audio/wav"
    with wave.open(io.BytesIO(event.encoded_audio_string)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getnframes()) == (8000, 1, 8000)
        pcm = np.frombuffer(wav.readframes(8000), dtype="<i2")
    assert np.abs(pcm / 32767 - samples).max() < 1e-4


def test_histogram_buckets_hold_every_value(tmp_path: Path) -> None:
    values = torch.randn(10_000, generator=torch.Generator().manual_seed(0))
    with Writer(tmp_path) as w:
        w.add_histogram("w", values, 0)
        w.add_histogram("w", values * 2, 1)
        w.add_histogram("uniform", torch.arange(100.0), 0, bins=10)
    acc = accumulate(tmp_path)
    first = acc.Histograms("w")[0].histogram_value
    assert first.num == 10_000 and sum(first.bucket) == 10_000
    assert first.min == pytest.approx(values.min().item()) and first.max == pytest.approx(values.max().item())
    assert first.sum == pytest.approx(values.sum().item(), abs=1e-2)
    # TensorFlow's buckets: right edges grow by 10% from 1e-12; each count is the values below its edge.
    limits = np.array(first.bucket_limit)
    assert np.allclose(limits[limits > 0][1:] / limits[limits > 0][:-1], 1.1)
    below = np.searchsorted(np.sort(values.double().numpy()), limits, side="right")
    assert np.array_equal(np.cumsum(first.bucket)[:-1], below[:-1])
    uniform = acc.Histograms("uniform")[0].histogram_value
    assert list(uniform.bucket) == [10.0] * 10
    assert [e.step for e in acc.Histograms("w")] == [0, 1]


def test_histogram_leaves_out_nan_with_a_warning_and_honours_max_bins(tmp_path: Path) -> None:
    values = np.concatenate([np.arange(1000.0), [np.nan, np.inf]])
    with pytest.warns(RuntimeWarning, match=r"'h' had 2 NaN/Inf value\(s\)"), Writer(tmp_path) as w:
        w.add_histogram("h", values, 0)
        w.add_histogram("few", np.arange(1000.0), 0, bins=100, max_bins=30)
    acc = accumulate(tmp_path)
    assert acc.Histograms("h")[0].histogram_value.num == 1000
    few = acc.Histograms("few")[0].histogram_value
    assert len(few.bucket) <= 30 and sum(few.bucket) == 1000 and few.bucket_limit[-1] == 999


def test_histogram_raw_is_written_as_given(tmp_path: Path) -> None:
    with Writer(tmp_path) as w:
        w.add_histogram_raw("raw", 0, 10, 6, 30, 200, [2, 5, 10], [1, 2, 3], 4)
    h = accumulate(tmp_path).Histograms("raw")[0]
    assert h.step == 4 and list(h.histogram_value.bucket) == [1, 2, 3]
    assert list(h.histogram_value.bucket_limit) == [2, 5, 10]


def test_histogram_of_a_tensor_modified_later_is_the_original(tmp_path: Path) -> None:
    values = torch.zeros(100)
    with Writer(tmp_path) as w:
        w.add_histogram("h", values, 0)
        values += 5
    assert accumulate(tmp_path).Histograms("h")[0].histogram_value.max == 0


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda w: w.add_histogram("h", np.ones(3), 0, bins=10**9),
            r"add_histogram: bins must be between 1 and 100,000",
        ),
        (lambda w: w.add_histogram("h", np.ones(3), 0, bins=0), r"add_histogram: bins must be between 1 and"),
        (lambda w: w.add_histogram("h", np.ones(3), 0, max_bins=0), r"add_histogram: max_bins must be a positive int"),
        (lambda w: w.add_video("v", np.zeros((1, 2, 3, 4, 4)), 0, fps=0), r"add_video: fps must be a positive number"),
        (lambda w: w.add_audio("a", np.zeros(10), 0, sample_rate=0), r"add_audio: sample_rate must be a positive"),
        (lambda w: w.add_graph(5), r"add_graph: model must be a torch.nn.Module, got int 5"),
    ],
)
def test_arguments_that_would_fail_later_are_refused_at_the_call_naming_it(
    tmp_path: Path, call: object, match: str
) -> None:
    with Writer(tmp_path) as w:
        with pytest.raises((ValueError, TypeError), match=match):
            call(w)  # type: ignore[operator]
        w.add_scalar("after", 1.0, 0)
    assert accumulate(tmp_path).Scalars("after")[0].value == 1.0


def test_nan_predictions_are_left_out_of_a_pr_curve_with_a_warning(tmp_path: Path) -> None:
    labels = np.array([1, 0, 1, 0])
    with pytest.warns(RuntimeWarning, match=r"PR curve 'pr': 1 NaN prediction\(s\) left out"), Writer(tmp_path) as w:
        w.add_pr_curve("pr", labels, np.array([0.9, 0.1, np.nan, 0.2]), 0, num_thresholds=3)
        w.flush()
    data = tensor_util.make_ndarray(accumulate(tmp_path).Tensors("pr")[0].tensor_proto)
    assert data[0, 0] + data[3, 0] == 1  # true positives and false negatives at threshold 0: one positive left
