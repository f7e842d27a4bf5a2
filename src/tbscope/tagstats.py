"""Per-tag statistics of a run's scalars: ``{last, min, max, last_step, count}``, one home for them.

The writer keeps them as it encodes (``Writer.scalar_stats``), a tbscope run stores them in its
run.json under "summary", and the catalog computes them from the event files of any other run: the
same numbers, whoever wrote the run. ``last`` is the last value written; ``min`` and ``max`` leave
NaN and Inf out (None when no value was finite); ``last_step`` is the step of the last value.

Example:
    >>> merge({"loss": entry(0.5, 0.5, 0.9, 9, 10)}, {"loss": entry(0.4, 0.4, 0.45, 19, 10)})["loss"]
    {'last': 0.4, 'min': 0.4, 'max': 0.9, 'last_step': 19, 'count': 20}
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pandas as pd

TagStats = dict[str, float | int | None]
RunStats = dict[str, TagStats]
Direction = Literal["min", "max"]
# The last path part of a tag that is better when smaller: losses, errors, distances, times.
# Short names count only as whole words between non-letters ("fid", not "confidence").
_MINIMISED = re.compile(
    r"loss|error|perplexity|latency|duration|distance|regret|cost|time"
    r"|(?<![a-z])(err|mse|mae|rmse|nll|ppl|wer|cer|fid|eer)(?![a-z])",
    re.IGNORECASE,
)


def entry(last: float, low: float, high: float, last_step: int, count: int) -> TagStats:
    """One tag's statistics; a bound that is not finite (no finite value was seen) is None."""
    return {
        "last": last,
        "min": low if math.isfinite(low) else None,
        "max": high if math.isfinite(high) else None,
        "last_step": int(last_step),
        "count": int(count),
    }


def of_frame(frame: pd.DataFrame) -> RunStats:
    """Per tag of one run's scalars, as ``reader.read_scalars`` gives them (in the order written)."""
    import numpy as np

    out: RunStats = {}
    for tag, rows in frame.groupby("tag", observed=True, sort=False):
        values = rows["value"].to_numpy()
        finite = values[np.isfinite(values)]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (math.nan, math.nan)
        out[str(tag)] = entry(float(values[-1]), low, high, int(rows["step"].iloc[-1]), len(values))
    return out


def merge(earlier: Mapping[str, Mapping[str, Any]], later: Mapping[str, Mapping[str, Any]]) -> RunStats:
    """The statistics of a run logged in two parts (before and after a resume), as one."""
    merged = {tag: dict(stats) for tag, stats in earlier.items()}
    for tag, stats in later.items():
        before = merged.get(tag)
        if before is None:
            merged[tag] = dict(stats)
            continue
        lows = [v for v in (before["min"], stats["min"]) if v is not None]
        highs = [v for v in (before["max"], stats["max"]) if v is not None]
        merged[tag] = {
            "last": stats["last"],
            "min": min(lows) if lows else None,
            "max": max(highs) if highs else None,
            "last_step": stats["last_step"],
            "count": before["count"] + stats["count"],
        }
    return merged


def is_number(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if type(value) is not int:  # bool is no number here
        return False
    try:
        float(value)
    except OverflowError:
        return False
    return True


def is_count(value: Any, upper: int = 1 << 63) -> bool:
    return type(value) is int and -upper <= value < upper


def is_valid(stats: Any) -> bool:
    """Whether ``stats`` (read from a run.json nobody vouches for) has the shape ``entry`` gives."""
    if not isinstance(stats, Mapping):
        return False
    numbers = all(stats.get(k) is None or is_number(stats.get(k)) for k in ("last", "min", "max"))
    return numbers and all(stats.get(k) is None or is_count(stats.get(k)) for k in ("last_step", "count"))


def direction(tag: str) -> Direction:
    """Whether a metric is better when smaller (``min``: loss, error, time) or larger (``max``: accuracy,
    AP, IoU, F1 and anything else).

    Example:
        >>> [direction(t) for t in ("val/loss", "val/acc", "val/pr/mAP", "profile/step_time_ms", "val/top1_err")]
        ['min', 'max', 'max', 'min', 'min']
        >>> direction("val/confidence"), direction("val/FID")
        ('max', 'min')
    """
    return "min" if _MINIMISED.search(tag.rsplit("/", 1)[-1]) else "max"
