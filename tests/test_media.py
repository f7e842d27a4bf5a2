"""CV helpers, cadence and budgets, read back through TensorBoard's loader and decoded."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from tensorboard.util import tensor_util

import tbscope
from conftest import accumulate
from tbscope import Cadence, Writer
from tbscope.summaries.confusion import confusion_matrix, layout
from tbscope.summaries.drawing import ROW, color, enlargement


def picture(log_dir: Path, tag: str, index: int = -1) -> np.ndarray:
    event = accumulate(log_dir).Images(tag)[index]
    return np.asarray(Image.open(io.BytesIO(event.encoded_image_string)).convert("RGB"))


def test_image_grid_lays_out_nchw_and_nhwc_alike_with_padding_and_captions(tmp_path: Path) -> None:
    batch = np.zeros((5, 3, 6, 8), dtype=np.uint8)
    for i in range(5):
        batch[i] = 40 * (i + 1)
    with Writer(tmp_path) as w:
        w.add_image_grid("nchw", batch, 0, nrow=2, padding=1)
        w.add_image_grid("nhwc", batch.transpose(0, 2, 3, 1), 0, nrow=2, padding=1)
        w.add_image_grid("float", batch / 255.0, 0, nrow=2, padding=1)
        w.add_image_grid("mono", torch.ones(3, 1, 4, 4), 0, nrow=3, padding=0)
        w.add_image_grid("captioned", batch, 0, nrow=5, captions=["a", "b", "c", "d", "e"])
    grid = picture(tmp_path, "nchw")
    assert grid.shape == (3 * 7 + 1, 2 * 9 + 1, 3)
    assert tuple(grid[1, 1]) == (40, 40, 40) and tuple(grid[1, 10]) == (80, 80, 80)
    assert tuple(grid[15, 1]) == (200, 200, 200) and tuple(grid[0, 0]) == (0, 0, 0)
    assert np.array_equal(picture(tmp_path, "nhwc"), grid) and np.array_equal(picture(tmp_path, "float"), grid)
    assert (picture(tmp_path, "mono") == 255).all()
    captioned = picture(tmp_path, "captioned")
    assert captioned.shape[0] > 6 + 4 and (captioned[2 + 6 :, :] > 128).any()  # light caption text under images


def test_image_grid_normalizes_a_value_range(tmp_path: Path) -> None:
    batch = np.array([[[[-1.0]]], [[[0.0]]], [[[1.0]]]], dtype=np.float32)
    with Writer(tmp_path) as w:
        w.add_image_grid("auto", batch, 0, normalize=True, padding=0)
        w.add_image_grid("range", batch, 0, normalize=True, value_range=(-1.0, 3.0), padding=0)
    assert picture(tmp_path, "auto")[0, :, 0].tolist() == [0, 128, 255]
    assert picture(tmp_path, "range")[0, :, 0].tolist() == [0, 64, 128]


def test_detections_are_drawn_in_their_class_colour_and_weak_ones_not_at_all(tmp_path: Path) -> None:
    image = np.zeros((3, 64, 64), dtype=np.float32)
    boxes = torch.tensor([[4.0, 40.0, 30.0, 60.0], [34.0, 30.0, 60.0, 60.0], [10.0, 10.0, 20.0, 20.0]])
    with Writer(tmp_path) as w:
        w.add_image_with_detections(
            "det", image, boxes, 0, labels=torch.tensor([0, 1, 2]), scores=torch.tensor([0.9, 0.8, 0.1]),
            class_names=["cat", "dog", "bird"], score_threshold=0.5,
        )  # fmt: skip
        as_xywh = boxes.clone()
        as_xywh[:, 2:] -= as_xywh[:, :2]
        w.add_image_with_detections("xywh", image, as_xywh / 64, 0, labels=[0, 1, 2], scores=[0.9, 0.8, 0.1],
                                    class_names=["cat", "dog", "bird"], box_format="xywh", normalized=True,
                                    score_threshold=0.5)  # fmt: skip
    drawn = picture(tmp_path, "det")
    f = enlargement(64, 64)  # a small image is drawn on an enlarged copy
    assert tuple(drawn[60 * f - 1, 17 * f]) == color(0) and tuple(drawn[45 * f, 60 * f - 1]) == color(1)  # edges
    assert tuple(drawn[15 * f, 10 * f]) == (0, 0, 0)  # the weak bird box is not drawn
    assert np.array_equal(picture(tmp_path, "xywh"), drawn)


def test_segmentation_overlay_target_beside_prediction_and_a_legend(tmp_path: Path) -> None:
    image = np.full((3, 20, 30), 0.5, dtype=np.float32)
    mask = np.zeros((20, 30), dtype=np.int64)
    mask[5:15, 10:20] = 2
    scores = np.zeros((3, 20, 30), dtype=np.float32)
    scores[1, :, :15] = 1.0  # class 1 on the left half, background elsewhere
    with Writer(tmp_path) as w:
        w.add_image_with_mask("seg", image, mask, 0, class_names=["bg", "road", "car"], alpha=1.0)
        w.add_image_with_mask("pair", image, scores, 0, class_names=["bg", "road", "car"], alpha=0.5, target=mask)
    seg = picture(tmp_path, "seg")
    f = enlargement(20, 30)  # a small image is drawn on an enlarged copy, each pixel an f x f square
    assert seg.shape[1] == 30 * f and seg.shape[0] > 20 * f  # the legend goes under the picture
    assert tuple(seg[10 * f, 15 * f]) == color(2) and tuple(seg[1, 1]) == (128, 128, 128)
    pair = picture(tmp_path, "pair")
    assert pair.shape[1] == 2 * 30 * f + 4
    top = ROW  # the "target" / "prediction" titles
    expected = tuple(round(0.5 * 128 + 0.5 * c) for c in color(2))
    assert tuple(int(v) for v in pair[top + 10 * f, 15 * f]) == pytest.approx(expected, abs=1)  # target: the car
    left = tuple(round(0.5 * 128 + 0.5 * c) for c in color(1))
    assert tuple(int(v) for v in pair[top + 10 * f, (30 + 5) * f + 4]) == pytest.approx(left, abs=1)  # prediction


def test_confusion_matrix_picture_encodes_the_matrix(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 4, 300)
    predicted = np.where(rng.random(300) < 0.7, truth, rng.integers(0, 4, 300))
    names = ["a", "b", "c", "d"]
    with Writer(tmp_path) as w:
        w.add_confusion_matrix("cm", torch.from_numpy(truth), predicted, names, 0)
        w.add_confusion_matrix("recall", truth, predicted, names, 0, normalize="true")
    at = layout(names)
    for tag, normalize in (("cm", None), ("recall", "true")):
        matrix = confusion_matrix(truth, predicted, 4, normalize)
        img = picture(tmp_path, tag)
        decoded = np.array(
            [
                [(255 - img[at.top + i * at.cell + 2, at.left + j * at.cell + 2, 0]) / 200 for j in range(4)]
                for i in range(4)
            ]
        )
        assert np.allclose(decoded, matrix / matrix.max(), atol=1 / 200)
    expected = np.zeros((4, 4))
    for t, p in zip(truth, predicted, strict=True):
        expected[t, p] += 1
    assert np.array_equal(confusion_matrix(truth, predicted, 4, None), expected)


def test_pr_curves_per_class_match_an_independent_computation(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 200)
    probabilities = rng.dirichlet(np.ones(3), 200)
    with Writer(tmp_path) as w:
        w.add_pr_curves("val/pr", labels, torch.from_numpy(probabilities), 2, class_names=["x", "y", "z"],
                        num_thresholds=5)  # fmt: skip
    acc = accumulate(tmp_path)
    assert sorted(acc.Tags()["tensors"]) == ["val/pr/x", "val/pr/y", "val/pr/z"]
    data = tensor_util.make_ndarray(acc.Tensors("val/pr/y")[0].tensor_proto)
    for i in range(5):
        predicted = probabilities[:, 1] >= i / 4
        assert data[0, i] == np.sum(predicted & (labels == 1)) and data[1, i] == np.sum(predicted & (labels != 1))


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda w: w.add_image_grid("g", np.zeros((0, 3, 4, 4))), ValueError, r"images must be a non-empty batch"),
        (lambda w: w.add_image_grid("g", np.zeros((2, 5, 4, 4)), dataformats="NCHW"), ValueError,
         r"images must have 1, 3 or 4 channels \(NCHW\), got shape \(2, 5, 4, 4\)"),
        (lambda w: w.add_image_grid("g", np.zeros((2, 3, 4, 4)), captions=["a"]), ValueError, r"1 captions for 2"),
        (lambda w: w.add_image_with_detections("d", np.zeros((3, 10, 10)), [[0, 0, 12, 5]]), ValueError,
         r"box 0 \[0, 0, 12, 5\] \(xyxy\) is outside the image of 10x10"),
        (lambda w: w.add_image_with_detections("d", np.zeros((3, 10, 10)), [[0, 0, 5]]), ValueError,
         r"boxes must have shape \(N, 4\), got \(1, 3\)"),
        (lambda w: w.add_image_with_detections("d", np.zeros((3, 10, 10)), [[0, 0, 5, 5]], labels=[3],
                                               class_names=["a"]), ValueError,
         r"labels holds class id 3, but class_names has 1 names"),
        (lambda w: w.add_image_with_detections("d", np.zeros((3, 10, 10)), [[0, 0, 5, 5]], scores=[0.1, 0.2]),
         ValueError, r"scores has shape \(2,\) for 1 boxes"),
        (lambda w: w.add_image_with_mask("m", np.zeros((3, 10, 10)), np.zeros((8, 10), dtype=int)), ValueError,
         r"mask must be \(H, W\) class ids or \(K, H, W\) scores for an image of 10x10, got shape \(8, 10\)"),
        (lambda w: w.add_image_with_mask("m", np.zeros((3, 4, 4)), np.full((4, 4), 5), class_names=["a", "b"]),
         ValueError, r"mask holds class id 5, but class_names has 2 names"),
        (lambda w: w.add_confusion_matrix("c", [0, 1], [0, 2], ["a", "b"]), ValueError,
         r"y_pred holds class id 2, but class_names has 2 names"),
        (lambda w: w.add_confusion_matrix("c", [0, 1], [0], ["a", "b"]), ValueError,
         r"same, non-zero number of elements, got y_true \(2,\), y_pred \(1,\)"),
        (lambda w: w.add_pr_curves("p", [0, 1], np.ones((3, 2))), ValueError, r"probabilities must be \(N, K\)"),
    ],
)  # fmt: skip
def test_bad_media_input_is_a_clear_error_naming_the_argument(
    tmp_path: Path, call: Any, error: type, match: str
) -> None:
    with Writer(tmp_path) as w, pytest.raises(error, match=match):
        call(w)


class Untouchable:
    """A value that fails the moment anything reads it: a skipped call must not."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"a skipped call touched its value ({name})")

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a skipped call copied its value")


def test_a_call_the_cadence_skips_touches_nothing_and_kept_steps_are_the_same_in_every_run(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cadence = Cadence(every=10, dense_until=10, dense_every=5)
    kept = []
    for run in ("a", "b"):
        with Writer(tmp_path / run, cadence=cadence) as w, pytest.warns(RuntimeWarning, match="is not logged"):
            for step in range(25):
                if cadence.keeps(step):
                    w.add_image_grid("g", np.zeros((2, 3, 4, 4)), step)
                    w.add_histogram("h", np.arange(5.0), step)
                    w.add_figure("f", plt.figure(), step)  # a tag's first call is logged, whatever its step
                else:
                    w.add_image_grid("g", Untouchable(), step)
                    w.add_histogram("h", Untouchable(), step)
                    w.add_figure("f", Untouchable(), step, close=False)
        kept.append([e.step for e in accumulate(tmp_path / run).Images("g")])
    assert kept[0] == kept[1] == [0, 5, 10, 20]


def test_budget_caps_images_per_tag_and_downscales_large_images(tmp_path: Path) -> None:
    budget = tbscope.Budget(max_images_per_tag=3, max_histograms_per_tag=2, max_image_side=50)
    with pytest.warns(RuntimeWarning, match=r"'big' has 3 images, its budget"), Writer(tmp_path, budget=budget) as w:
        for step in range(6):
            w.add_image("big", np.zeros((3, 100, 200), dtype=np.uint8), step)
            w.add_histogram("h", np.arange(10.0), step)
    acc = accumulate(tmp_path)
    events = acc.Images("big")
    assert [e.step for e in events] == [0, 1, 2]
    assert (events[0].width, events[0].height) == (50, 25)
    assert [e.step for e in acc.Histograms("h")] == [0, 1]


def test_defaults_keep_a_100k_step_run_small_and_tensorboard_shows_every_kept_image(tmp_path: Path) -> None:
    from conftest import free_port, serve, stop, wait_until

    rng = np.random.default_rng(0)
    batch = rng.random((16, 3, 32, 32)).astype(np.float32)
    weights = torch.randn(10_000)
    with tbscope.init("long", root=tmp_path) as run:
        for step in range(100_000):
            run.writer.add_image_grid("train/batch", batch, step)
            run.writer.add_histogram("fc/weight", weights, step)
    kept: list[int] = []
    for step in range(100_000):
        if tbscope.Spaced().keeps(step, kept[-1] if kept else None):
            kept.append(step)
    acc = accumulate(run.dir)
    assert [e.step for e in acc.Images("train/batch")] == kept and len(kept) == 406
    size = sum(p.stat().st_size for p in run.dir.rglob("*") if p.is_file())
    assert size < 50 * 2**20  # the documented bound for this workload
    served = serve(tmp_path, "--port", str(free_port()))
    try:
        import json
        import urllib.request

        def images() -> list[Any]:
            name = f"long/{run.dir.name}"
            url = f"{served.url}/data/plugin/images/images?run={name}&tag=train%2Fbatch&sample=0"
            with urllib.request.urlopen(url, timeout=30) as response:
                return list(json.loads(response.read()))

        wait_until(lambda: len(images()) == len(kept), what="tensorboard to show every kept image", timeout=90)
    finally:
        stop(served)


@pytest.mark.parametrize("bins", ["tensorflow", 30])
def test_binning_on_the_device_gives_the_histogram_binning_on_the_host_gives(bins: Any) -> None:
    from tbscope.summaries.histogram import device_bins, from_device_bins, histogram_value

    values = torch.cat([torch.randn(50_000, generator=torch.Generator().manual_seed(0)) * 3, torch.tensor([np.nan])])
    on_device, dropped = from_device_bins("h", device_bins(values, bins).numpy(), bins)
    on_host, host_dropped = histogram_value("h", values.numpy(), bins)
    assert dropped == host_dropped == 1
    assert list(on_device.histo.bucket) == list(on_host.histo.bucket)
    assert np.allclose(on_device.histo.bucket_limit, on_host.histo.bucket_limit)
    assert (on_device.histo.min, on_device.histo.max, on_device.histo.num) == pytest.approx(
        (on_host.histo.min, on_host.histo.max, on_host.histo.num)
    )
