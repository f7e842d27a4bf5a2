"""summaries/pr_curve.py: precision-recall curves for TensorBoard's PR Curves dashboard."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tensorboard.plugins.pr_curve import metadata
from tensorboard.util import tensor_util

from conftest import logged
from tbscope.summaries import pr_curve


def curve(acc: object, tag: str) -> np.ndarray:
    (event,) = acc.Tensors(tag)  # type: ignore[attr-defined]
    return tensor_util.make_ndarray(event.tensor_proto)


def test_a_perfect_classifier_has_precision_and_recall_one_at_the_middle_threshold(tmp_path: Path) -> None:
    labels = np.array([0, 0, 1, 1], dtype=bool)
    acc = logged(tmp_path, pr_curve.pr_curve_value("pr", labels, np.array([0.1, 0.2, 0.8, 0.9]), 11, None))
    data = curve(acc, "pr")
    assert acc.SummaryMetadata("pr").plugin_data.plugin_name == metadata.PLUGIN_NAME
    assert data.shape == (6, 11)  # TP, FP, TN, FN, precision, recall per threshold
    middle = 5  # threshold 0.5
    assert list(data[:4, middle]) == [2, 0, 2, 0] and data[4, middle] == 1.0 and data[5, middle] == 1.0


def test_per_class_curves_are_one_vs_rest_under_the_class_names(tmp_path: Path) -> None:
    ids = np.array([0, 1, 2, 2])
    probabilities = np.eye(3)[ids] * 0.9 + 0.05
    values = pr_curve.per_class_values("val/pr", ids, probabilities, ["cat", "dog", "fox"], 5)
    acc = logged(tmp_path, values)
    assert sorted(acc.Tags()["tensors"]) == ["val/pr/cat", "val/pr/dog", "val/pr/fox"]
    assert curve(acc, "val/pr/fox")[0, 0] == 2  # true positives at threshold 0
