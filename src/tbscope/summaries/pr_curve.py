"""Precision-recall curves: counts at evenly spaced thresholds in the PR Curves plugin's tensor, and
average precision."""

from __future__ import annotations

import warnings

import numpy as np
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.plugins.pr_curve import metadata
from tensorboard.util import tensor_util

from tbscope.summaries import scalar

# Keeps precision finite where nothing was predicted positive, as TensorBoard's own summary does.
_EPSILON = 1e-7


def pr_curve_value(
    tag: str,
    labels: np.ndarray,
    predictions: np.ndarray,
    num_thresholds: int = 127,
    weights: np.ndarray | None = None,
) -> Summary.Value:
    """The PR curve of binary ``labels`` against ``predictions`` in [0, 1].

    Threshold ``i`` of ``num_thresholds`` is ``i / (num_thresholds - 1)``; a prediction at or above
    it counts as positive. NaN predictions are left out, with a warning.
    """
    truth = np.asarray(labels).reshape(-1).astype(bool)
    scores = np.clip(np.asarray(predictions, dtype=np.float64).reshape(-1), 0.0, 1.0)
    w = np.ones_like(scores) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    nan = np.isnan(scores)
    if nan.any():  # no threshold can count them
        warnings.warn(
            f"tbscope: PR curve {tag!r}: {int(nan.sum())} NaN prediction(s) left out of the curve",
            RuntimeWarning,
            stacklevel=2,
        )
        truth, scores, w = truth[~nan], scores[~nan], w[~nan]
    bucket = np.floor(scores * (num_thresholds - 1)).astype(np.int64)
    # Counts of positives and negatives whose score reaches each threshold, from the top down.
    pos = np.bincount(bucket, weights=w * truth, minlength=num_thresholds)
    neg = np.bincount(bucket, weights=w * ~truth, minlength=num_thresholds)
    tp = np.cumsum(pos[::-1])[::-1]
    fp = np.cumsum(neg[::-1])[::-1]
    tn = neg.sum() - fp
    fn = pos.sum() - tp
    return pr_curve_raw_value(tag, tp, fp, tn, fn, None, None, num_thresholds)


def pr_curve_raw_value(
    tag: str,
    true_positives: np.ndarray,
    false_positives: np.ndarray,
    true_negatives: np.ndarray,
    false_negatives: np.ndarray,
    precision: np.ndarray | None,
    recall: np.ndarray | None,
    num_thresholds: int,
) -> Summary.Value:
    """A PR curve from counts per threshold; precision and recall are derived when not given."""
    tp, fp, tn, fn = (
        np.asarray(a, dtype=np.float64).reshape(-1)
        for a in (true_positives, false_positives, true_negatives, false_negatives)
    )
    if precision is None:
        precision = tp / np.maximum(_EPSILON, tp + fp)
    if recall is None:
        recall = tp / np.maximum(_EPSILON, tp + fn)
    data = np.stack([tp, fp, tn, fn, np.asarray(precision).reshape(-1), np.asarray(recall).reshape(-1)])
    return Summary.Value(
        tag=tag,
        tensor=tensor_util.make_tensor_proto(data.astype(np.float32)),
        metadata=metadata.create_summary_metadata(display_name=tag, description="", num_thresholds=num_thresholds),
    )


def pr_curve_of(value: Summary.Value, plugin: str | None) -> tuple[np.ndarray, np.ndarray] | None:
    """The ``(precision, recall)`` at each threshold of a PR Curves plugin value (the writer's tensor
    read back: rows TP, FP, TN, FN, precision, recall), or None for a value of another kind."""
    if plugin != metadata.PLUGIN_NAME or not value.HasField("tensor"):
        return None
    data = tensor_util.make_ndarray(value.tensor)
    if data.ndim != 2 or data.shape[0] != 6:
        return None
    return data[4].astype(np.float64), data[5].astype(np.float64)


def average_precision(truth: np.ndarray, scores: np.ndarray) -> float:
    """The area under the precision-recall curve taken at every distinct score (the sum over ranks of
    the recall gained times the precision there); NaN when ``truth`` holds no positive."""
    positives = int(np.count_nonzero(truth))
    if positives == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    ranked_truth, ranked = truth[order], scores[order]
    ends = np.r_[np.flatnonzero(np.diff(ranked)), len(ranked) - 1]  # the last rank of each distinct score
    tp = np.cumsum(ranked_truth)[ends]
    precision = tp / (ends + 1)
    recall = tp / positives
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def per_class_values(
    tag: str, labels: np.ndarray, probabilities: np.ndarray, class_names: list[str], num_thresholds: int
) -> list[Summary.Value]:
    """One PR curve per class, ``<tag>/<class name>``: class k against the rest, scored by column k; and
    scalars: each class's average precision, ``<tag>/AP/<class name>``, and their mean, ``<tag>/mAP``,
    over the classes that have positives."""
    ids = np.asarray(labels).reshape(-1).astype(np.int64)
    scores = np.asarray(probabilities, dtype=np.float64).reshape(len(ids), -1)
    values = []
    precisions = []
    for k, name in enumerate(class_names):
        values.append(pr_curve_value(f"{tag}/{name}", ids == k, scores[:, k], num_thresholds))
        ap = average_precision(ids == k, np.nan_to_num(scores[:, k], nan=-np.inf))
        if not np.isnan(ap):
            values.append(scalar.simple_value(f"{tag}/AP/{name}", ap))
            precisions.append(ap)
    if precisions:
        values.append(scalar.simple_value(f"{tag}/mAP", float(np.mean(precisions))))
    return values
