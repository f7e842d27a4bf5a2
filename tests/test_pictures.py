"""Pictures on small images, read back through TensorBoard's loader and decoded: labels outside the boxes,
legends whole, confusion matrices legible at 10 and 100 classes, captions that fit, AP beside PR curves."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import tbscope
from conftest import accumulate
from tbscope import Writer
from tbscope.summaries.confusion import layout
from tbscope.summaries.drawing import color, enlargement, legend, text_width

GREY = (128, 128, 128)
NAMES = ["circle", "triangle", "square"]


def picture(log_dir: Path, tag: str) -> np.ndarray:
    event = accumulate(log_dir).Images(tag)[-1]
    return np.asarray(Image.open(io.BytesIO(event.encoded_image_string)).convert("RGB"))


def longest_run(row: np.ndarray, rgb: tuple[int, int, int]) -> int:
    """The longest stretch of pixels of colour ``rgb`` in ``row``."""
    best = run = 0
    for hit in (row == rgb).all(axis=1):
        run = run + 1 if hit else 0
        best = max(best, run)
    return best


@pytest.mark.parametrize(
    ("truth", "predicted"),
    [([4, 16, 22, 40], [28, 6, 44, 30]), ([2, 1, 20, 47], [26, 0, 46, 46]), ([10, 12, 38, 40], [10, 12, 38, 40])],
    ids=["room-above", "boxes-the-whole-height", "one-box-twice"],
)
def test_a_48px_detection_labels_its_boxes_outside_them_and_shows_a_whole_legend(
    tmp_path: Path, truth: list[int], predicted: list[int]
) -> None:
    image = np.full((3, 48, 48), 128, dtype=np.uint8)
    with Writer(tmp_path) as w:
        w.add_image_with_detections("det", image, [predicted], 0, labels=[1], scores=[0.87], class_names=NAMES,
                                    target_boxes=[truth], target_labels=[0])  # fmt: skip
    drawn = picture(tmp_path, "det")
    f = enlargement(48, 48)
    assert f > 1 and drawn.shape[1] == 48 * f and drawn.shape[0] > 48 * f  # enlarged, a legend under it
    band = int(np.argmax((drawn[:, 0] == GREY).all(axis=1)))  # labels with no room beside a box: a band over it
    for (x1, y1, x2, y2), cls, text in ((truth, 0, "circle"), (predicted, 1, "triangle 0.87")):
        inside = drawn[band + y1 * f + 3 : band + y2 * f - 3, x1 * f + 3 : x2 * f - 3]
        assert (inside == GREY).all(), f"something covers the inside of the {text!r} box"
        banner = max(longest_run(row, color(cls)) for row in drawn[: band + 48 * f])
        assert banner >= text_width(text) + 4, f"the label {text!r} is cut"  # its banner is as wide as its text
    legend_rows = drawn[band + 48 * f :]
    for cls in (0, 1):
        assert (legend_rows == color(cls)).all(axis=2).any(), f"class {cls} is missing from the legend"


def test_a_48px_mask_legend_shows_long_class_names_whole(tmp_path: Path) -> None:
    image = np.full((3, 48, 48), 0.5, dtype=np.float32)
    mask = np.zeros((48, 48), dtype=np.int64)
    mask[10:30, 10:30], mask[32:46, 2:20] = 1, 2
    names = ["background", "a_rather_long_class_name_for_a_triangle", "diamond"]
    with Writer(tmp_path) as w:
        w.add_image_with_mask("seg", image, mask, 0, class_names=names, target=mask)
    drawn = picture(tmp_path, "seg")
    strip = legend([(n, color(k), "swatch") for k, n in enumerate(names[1:], 1)], drawn.shape[1])
    assert drawn.shape[1] >= 18 + text_width(names[1])  # as wide as its longest entry
    bottom = drawn[-strip.shape[0] :]
    assert np.array_equal(bottom[:, : strip.shape[1]], strip)  # the legend as drawn whole, nothing cut


@pytest.mark.parametrize("classes", [10, 100])
@pytest.mark.parametrize("normalize", [None, "true"])
def test_confusion_matrix_is_legible_with_axis_titles_and_shortened_names(
    tmp_path: Path, classes: int, normalize: str | None
) -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, classes, 20 * classes)
    predicted = np.where(rng.random(truth.size) < 0.6, truth, rng.integers(0, classes, truth.size))
    names = [f"class_{k:02d}_longname_of_a_category" for k in range(classes)]
    with Writer(tmp_path) as w:
        w.add_confusion_matrix("cm", truth, predicted, names, 0, normalize=normalize)
    drawn = picture(tmp_path, "cm")
    at = layout(names)
    assert at.left < 160 and at.top < 160  # names shortened, not a margin as wide as the longest name
    grid = drawn[at.top : at.top + classes * at.cell, at.left : at.left + classes * at.cell]
    gaps = grid[:, at.cell - 1 :: at.cell]
    assert (gaps == 255).all(), "a cell's text runs over into its neighbour"
    diagonal = [grid[i * at.cell : (i + 1) * at.cell - 1, i * at.cell : (i + 1) * at.cell - 1] for i in range(classes)]
    assert all(len({tuple(p) for p in cell.reshape(-1, 3)}) > 1 for cell in diagonal)  # every count is written
    assert (drawn[: at.top - 40, at.left :] != 255).any()  # "predicted" over the columns
    assert (drawn[at.top :, :16] != 255).any()  # "true" beside the rows


def test_captions_of_small_images_fit_under_them(tmp_path: Path) -> None:
    images = np.random.default_rng(0).random((8, 3, 32, 32))
    captions = ["triangle -> circle"] * 8
    with Writer(tmp_path) as w:
        w.add_image_grid("mistakes", images, 0, nrow=4, captions=captions)
    drawn = picture(tmp_path, "mistakes")
    cell = (drawn.shape[1] - 2) // 4 - 2
    assert cell % 32 == 0 and cell >= text_width(captions[0], 10)  # enlarged by a whole factor, to fit


def test_pr_curves_log_each_class_average_precision_and_the_mean(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, 300)
    probabilities = rng.dirichlet(np.ones(3), 300)
    probabilities[np.arange(300), labels] += 0.3
    with Writer(tmp_path) as w:
        w.add_pr_curves("val/pr", labels, probabilities, 4, class_names=NAMES)
    acc = accumulate(tmp_path)
    precisions = []
    for k, name in enumerate(NAMES):
        order = np.argsort(-probabilities[:, k])
        hits = labels[order] == k
        expected = np.mean(np.cumsum(hits)[hits] / (np.flatnonzero(hits) + 1))  # precision at each positive
        (event,) = acc.Scalars(f"val/pr/AP/{name}")
        assert event.step == 4 and event.value == pytest.approx(expected, rel=1e-6)
        precisions.append(expected)
    assert acc.Scalars("val/pr/mAP")[0].value == pytest.approx(np.mean(precisions), rel=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"target_boxes": [[0, 0, 60, 5]]},
            r"target_boxes box 0 \[0, 0, 60, 5\] \(xyxy\) is outside the image of 48x48",
        ),
        ({"target_boxes": [[0, 0, 5, 5]], "target_labels": [0, 1]}, r"target_labels has shape \(2,\) for 1 boxes"),
        ({"target_boxes": [[0, 0, 5]]}, r"target_boxes must have shape \(N, 4\), got \(1, 3\)"),
        ({"target_boxes": [[0, 0, 5, 5]], "target_labels": [7]}, r"target_labels holds class id 7, but class_names"),
    ],
)
def test_bad_ground_truth_is_a_clear_error_naming_the_argument(tmp_path: Path, kwargs: dict, match: str) -> None:
    with Writer(tmp_path) as w, pytest.raises(ValueError, match=match):
        w.add_image_with_detections("d", np.zeros((3, 48, 48)), [[1, 1, 9, 9]], 0, class_names=NAMES, **kwargs)


def test_the_ap_scalars_are_among_the_runs_statistics_and_headline_metrics(tmp_path: Path) -> None:
    import json

    ids = np.array([0, 1, 1, 0])
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]])
    with tbscope.init("cv", root=tmp_path) as run:
        run.writer.add_pr_curves("val/pr", ids, probabilities, 3, class_names=["cat", "dog"])
    meta = json.loads((run.dir / "run.json").read_text())
    assert {"val/pr/AP/cat", "val/pr/AP/dog", "val/pr/mAP"} <= set(meta["summary"])
    assert meta["summary"]["val/pr/mAP"]["last_step"] == 3
    from tbscope.catalog import catalog

    (entry,) = catalog(tmp_path)
    assert "val/pr/mAP" in entry.headline and entry.summary["val/pr/mAP"]["count"] == 1
