"""Groups: runs that differ only in their seed, as one; their curves as mean and bands, their final values
with confidence intervals, and whether the best group's lead is real.

Runs of an experiment form a group when their config is the same once the seed is left out (a key named
``seed`` or ending in ``seed``); ``by`` names the keys to group by instead, ``ignore`` more keys to leave
out. A run without config is a group of its own. Curves are aligned on the union of the group's steps:
a run contributes a point only inside its own first and last step (linearly between its own points, its
own values where it has them), so nothing is invented outside a run's range, and every point says how
many runs (``n``) it is made of. Smoothing is TensorBoard's (a debiased exponential moving average),
applied to each run before aggregating, as TensorBoard smooths each line it draws. Intervals are
Student's t (right for a handful of seeds); a lead is tested with Welch's t-test (unequal variances),
its effect size is Cohen's d. SciPy is imported where it is used.

Example:
    >>> from tbscope.catalog import RunEntry
    >>> def run(path, lr, seed, acc):
    ...     summary = {"val/acc": {"last": acc, "min": acc, "max": acc, "last_step": 9, "count": 1}}
    ...     return RunEntry(path, "e", path, "finished", None, None, 9, 0, {"lr": lr, "seed": seed}, summary,
    ...                     ["val/acc"])
    >>> runs = [run("e/1", 0.1, 0, 0.90), run("e/2", 0.1, 1, 0.92), run("e/3", 0.01, 0, 0.70),
    ...         run("e/4", 0.01, 1, 0.71)]
    >>> [(g.label, g.runs) for g in group_runs(runs)]
    [('lr=0.1', ['e/1', 'e/2']), ('lr=0.01', ['e/3', 'e/4'])]
    >>> rows = finals(runs, group_runs(runs), "val/acc")
    >>> [(f.label, f.n, round(f.mean, 3)) for f in rows]
    [('lr=0.1', 2, 0.91), ('lr=0.01', 2, 0.705)]
    >>> lead(rows, "val/acc").leader
    'lr=0.1'
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from tbscope import remote
from tbscope.tagstats import Direction, direction

if TYPE_CHECKING:
    import pandas as pd

    from tbscope.catalog import RunEntry
    from tbscope.summaries.hparams import HParamValue

# A lead is called significant below this p-value.
ALPHA = 0.05
# Interval of the mean: 95%.
CONFIDENCE = 0.95
STATS = ("mean", "std", "sem", "ci_low", "ci_high", "min", "max", "n")


def is_seed(key: str) -> bool:
    """A config key that names a seed: ``seed`` or ending in ``seed`` (``data.seed``, ``random_seed``)."""
    return key.lower().endswith("seed")


@dataclass
class Group:
    """Runs of one experiment whose config is the same but for the keys left out."""

    label: str  # what the group is called on every screen: the keys that tell groups apart, ``lr=0.01``
    experiment: str
    key: dict[str, HParamValue | None]  # the config the group's runs share (the keys it is grouped by)
    runs: list[str] = field(default_factory=list)  # TensorBoard run names (paths under the root)

    def as_json(self) -> dict[str, Any]:
        return {"label": self.label, "experiment": self.experiment, "key": self.key, "runs": self.runs,
                "n": len(self.runs)}  # fmt: skip


def config_keys(entries: Sequence[RunEntry]) -> list[str]:
    """The config keys whose values differ between runs: what a group-by control offers."""
    keys = sorted({k for e in entries for k in e.hparams})
    return [k for k in keys if len({repr(e.hparams.get(k)) for e in entries}) > 1]


def _shown(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def group_runs(entries: Sequence[RunEntry], by: Sequence[str] | None = None, ignore: Sequence[str] = ()) -> list[Group]:
    """The runs in groups, in the order their first run is listed; see the module's docstring.

    Args:
        entries: the runs, as ``catalog.catalog`` lists them.
        by: group by these config keys only (a run lacking one has None there); default: every key but the
            seeds and ``ignore``.
        ignore: config keys left out besides the seeds.
    """
    left_out = set(ignore)
    found: dict[tuple[str, str], Group] = {}
    for entry in entries:
        if not entry.hparams:
            found[(entry.experiment, f"run:{entry.path}")] = Group("", entry.experiment, {}, [entry.path])
            continue
        if by is not None:
            key = {k: entry.hparams.get(k) for k in by}
        else:
            key = {k: v for k, v in sorted(entry.hparams.items()) if not is_seed(k) and k not in left_out}
        group = found.setdefault((entry.experiment, repr(sorted(key.items()))), Group("", entry.experiment, key))
        group.runs.append(entry.path)
    groups = list(found.values())
    _label(groups)
    return groups


def _label(groups: list[Group]) -> None:
    """Name each group by the keys whose values tell the groups apart (all its keys when none do), with
    the experiment in front when there are several; a run without config by its path."""
    keys = sorted({k for g in groups for k in g.key})
    telling = [k for k in keys if len({repr(g.key.get(k)) for g in groups if g.key}) > 1] or keys
    several = len({g.experiment for g in groups}) > 1
    for group in groups:
        if not group.key:
            group.label = group.runs[0]
            continue
        text = ", ".join(f"{k}={_shown(group.key.get(k))}" for k in telling if k in group.key) or "all runs"
        group.label = f"{group.experiment}: {text}" if several else text


# -- curves -------------------------------------------------------------------------------------------


def smooth(values: np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard's smoothing of one line: an exponential moving average, debiased so that the first
    points are not pulled towards zero; a value that is not finite stays as it is and is skipped.

    Example:
        >>> smooth(np.array([1.0, 0.0, 1.0]), 0.5).round(4).tolist()
        [1.0, 0.3333, 0.7143]
    """
    if weight <= 0 or values.size == 0:
        return values
    out = values.astype(np.float64, copy=True)
    if np.all(values == values[0]):
        return out  # TensorBoard leaves a constant line alone (no rounding drift)
    last, accumulated = 0.0, 0
    for i, value in enumerate(values):
        if not math.isfinite(value):
            continue
        last = last * weight + (1 - weight) * value
        accumulated += 1
        out[i] = last / (1 - weight**accumulated) if weight < 1 else last
    return out


def _interval(mean: np.ndarray, sem: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Student's t confidence interval of the mean (NaN where fewer than two values)."""
    from scipy.special import stdtrit  # Student's t quantiles, without the import time of scipy.stats

    counts = np.arange(int(n.max(initial=0)) + 1)  # a quantile per count of runs, not per point
    with np.errstate(invalid="ignore"):
        quantile = stdtrit(np.where(counts > 1, counts - 1, np.nan), 0.5 + CONFIDENCE / 2)
    half = quantile[n] * sem
    return mean - half, mean + half


def _aggregate(matrix: np.ndarray) -> dict[str, np.ndarray]:
    """The statistics of each row of ``matrix`` (a point per column, NaN where a run has none)."""
    present = np.isfinite(matrix)
    n = present.sum(axis=1)
    filled = np.where(present, matrix, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = filled.sum(axis=1) / n
        squares = np.where(present, (matrix - mean[:, None]) ** 2, 0.0).sum(axis=1)
        std = np.sqrt(squares / np.where(n > 1, n - 1, np.nan))
        sem = std / np.sqrt(n)
    low, high = _interval(mean, sem, n)
    return {
        "mean": mean, "std": std, "sem": sem, "ci_low": low, "ci_high": high,
        "min": np.where(present, matrix, np.inf).min(axis=1, initial=np.inf),
        "max": np.where(present, matrix, -np.inf).max(axis=1, initial=-np.inf), "n": n,
    }  # fmt: skip


def _aligned(lines: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """The union of the lines' steps, and a column per line: its value at each step inside its own range."""
    first = lines[0][0]
    same = all(steps.size == first.size and np.array_equal(steps, first) for steps, _ in lines[1:])
    grid = first if same else np.unique(np.concatenate([steps for steps, _ in lines]))
    matrix = np.full((grid.size, len(lines)), np.nan)
    for column, (steps, values) in enumerate(lines):
        inside = (grid >= steps[0]) & (grid <= steps[-1])
        matrix[inside, column] = np.interp(grid[inside], steps, values)
    return grid, matrix


def _line(steps: np.ndarray, values: np.ndarray, weight: float) -> tuple[np.ndarray, np.ndarray] | None:
    """One run's line of one tag: its finite values by step, the last value of a repeated step kept."""
    keep = np.isfinite(values)
    steps, values = steps[keep], values[keep]
    if steps.size == 0:
        return None
    order = np.argsort(steps, kind="stable")
    steps, values = steps[order], values[order]
    last = np.append(steps[1:] != steps[:-1], True)
    return steps[last].astype(np.float64), smooth(values[last], weight)


def downsample(size: int, keys: np.ndarray, max_points: int) -> np.ndarray:
    """Indices of at most about ``max_points`` points of a line of ``size``, keeping in each bucket the
    first point and those where ``keys`` is lowest and highest, so that spikes survive.

    Example:
        >>> line = np.zeros(1000); line[500] = 9.0
        >>> kept = downsample(1000, line, 100)
        >>> len(kept) <= 100, 500 in kept, int(kept[-1])
        (True, True, 999)
    """
    if size <= max_points:
        return np.arange(size)
    buckets = max(1, max_points // 3)
    length = -(-size // buckets)
    padded = np.full(buckets * length, np.nan)
    padded[:size] = keys
    rows = padded.reshape(buckets, length)
    missing = np.isnan(rows)
    starts = np.arange(buckets) * length
    lowest = np.where(missing, np.inf, rows).argmin(axis=1) + starts
    highest = np.where(missing, -np.inf, rows).argmax(axis=1) + starts
    chosen = np.unique(np.concatenate([starts, lowest, highest, [size - 1]]))
    return chosen[chosen < size]


def run_lines(
    frame: pd.DataFrame, runs: Collection[str], tags: Sequence[str] | None = None, smoothing: float = 0.0
) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    """Each run's line of each tag, ``{(tag, run): (steps, values)}``: its finite values by step (the last
    of a repeated step), smoothed by ``smoothing``; only ``runs`` (and ``tags``, when given)."""
    run_column, tag_column = frame["run"].astype("category"), frame["tag"].astype("category")
    run_names = [str(c) for c in run_column.cat.categories]
    tag_names = [str(c) for c in tag_column.cat.categories]
    run_codes, tag_codes = run_column.cat.codes.to_numpy(), tag_column.cat.codes.to_numpy()
    keep = np.array([name in runs for name in run_names] + [False])[run_codes]
    if tags is not None:
        wanted = set(tags)
        keep &= np.array([name in wanted for name in tag_names] + [False])[tag_codes]
    rows = np.flatnonzero(keep)
    order = rows[np.lexsort((rows, run_codes[rows], tag_codes[rows]))]  # stable: written order kept per line
    steps, values = frame["step"].to_numpy()[order], frame["value"].to_numpy(dtype=np.float64)[order]
    run_codes, tag_codes = run_codes[order], tag_codes[order]
    cuts = np.flatnonzero((run_codes[1:] != run_codes[:-1]) | (tag_codes[1:] != tag_codes[:-1])) + 1
    out = {}
    for start, end in zip(np.r_[0, cuts], np.r_[cuts, len(order)], strict=True):
        if end > start:
            line = _line(steps[start:end], values[start:end], smoothing)
            if line is not None:
                out[(tag_names[tag_codes[start]], run_names[run_codes[start]])] = line
    return out


def curves(
    frame: pd.DataFrame,
    groups: Sequence[Group],
    tags: Sequence[str] | None = None,
    smoothing: float = 0.0,
    max_points: int | None = None,
) -> pd.DataFrame:
    """Per group, tag and step: the mean, std, sem, 95% interval, min, max and n of the group's runs.

    Args:
        frame: scalars as ``reader.read_scalars`` gives them (run, tag, step, wall_time, value).
        groups: from ``group_runs``.
        tags: the tags to aggregate (default: every tag in ``frame``).
        smoothing: TensorBoard's smoothing weight (0 to 1), applied to each run before aggregating.
        max_points: at most about this many points per line, spikes kept (see ``downsample``).
    """
    import pandas as pd

    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"smoothing must be at least 0 and less than 1, got {smoothing}")
    run_group = {run: g.label for g in groups for run in g.runs}
    lines: dict[tuple[str, str], list[tuple[np.ndarray, np.ndarray]]] = {}
    found = run_lines(frame, run_group, tags, smoothing)
    for (tag, run), line in found.items():
        lines.setdefault((tag, run_group[run]), []).append(line)
    parts = []
    tag_order = list(tags) if tags is not None else list(dict.fromkeys(tag for tag, _ in found))
    for tag in tag_order:
        for group in groups:
            group_lines = lines.get((tag, group.label))
            if not group_lines:
                continue
            grid, matrix = _aligned(group_lines)
            stats = _aggregate(matrix)
            kept = downsample(grid.size, stats["mean"], max_points) if max_points else slice(None)
            part = {name: column[kept] for name, column in stats.items()}
            parts.append(pd.DataFrame({"group": group.label, "tag": tag, "step": grid[kept].astype(np.int64), **part}))
    if not parts:
        return pd.DataFrame({c: [] for c in ("group", "tag", "step", *STATS)})
    return pd.concat(parts, ignore_index=True)


# -- final values and the lead ------------------------------------------------------------------------


@dataclass
class Final:
    """A group's final values of one metric: each run's value, and their mean, spread and 95% interval."""

    label: str
    values: list[float]
    runs: list[str]
    n: int = 0
    mean: float = math.nan
    std: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan

    def __post_init__(self) -> None:
        stats = _aggregate(np.array([self.values], dtype=np.float64))
        self.n = int(stats["n"][0])
        self.mean, self.std = float(stats["mean"][0]), float(stats["std"][0])
        self.ci_low, self.ci_high = float(stats["ci_low"][0]), float(stats["ci_high"][0])

    def text(self, digits: int = 4) -> str:
        """``mean +/- std [low, high]``, the parts that exist for its n.

        Example:
            >>> Final("a", [0.9, 0.92, 0.91], ["r1", "r2", "r3"]).text()
            '0.91 +/- 0.01 [0.8852, 0.9348]'
            >>> Final("b", [0.7], ["r4"]).text()
            '0.7'
        """
        if self.n == 0:
            return "-"
        if self.n == 1:
            return f"{self.mean:.{digits}g}"
        return f"{self.mean:.{digits}g} +/- {self.std:.{digits}g} [{self.ci_low:.{digits}g}, {self.ci_high:.{digits}g}]"

    def as_json(self) -> dict[str, Any]:
        number = _number
        return {"label": self.label, "n": self.n, "mean": number(self.mean), "std": number(self.std),
                "ci_low": number(self.ci_low), "ci_high": number(self.ci_high),
                "values": [number(v) for v in self.values], "runs": self.runs}  # fmt: skip


def _number(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _numbers(column: np.ndarray) -> list[float | None]:
    """A column for JSON: NaN and infinities as None."""
    out = column.astype(object)
    out[~np.isfinite(column)] = None
    return out.tolist()


def finals(
    entries: Sequence[RunEntry], groups: Sequence[Group], tag: str, agg: str = "last",
    toward: Direction | None = None,
) -> list[Final]:  # fmt: skip
    """Each group's final values of ``tag``: ``agg`` is ``last``, ``min``, ``max`` or ``best`` (the
    minimum or maximum by ``toward``, by default the tag's ``direction``). Groups without the tag are
    left out."""
    from tbscope.catalog import metric_value

    by_path = {e.path: e for e in entries}
    out = []
    for group in groups:
        pairs = [(run, metric_value(by_path[run], tag, agg, toward)) for run in group.runs if run in by_path]
        pairs = [(run, value) for run, value in pairs if math.isfinite(value)]
        if pairs:
            out.append(Final(group.label, [v for _, v in pairs], [r for r, _ in pairs]))
    return out


@dataclass
class Comparison:
    """The leader against one other group: the difference of their means, Welch's t-test and Cohen's d."""

    other: str
    difference: float
    p_value: float | None
    effect_size: float | None
    why_untested: str | None = None

    @property
    def significant(self) -> bool:
        return self.p_value is not None and self.p_value < ALPHA

    def as_json(self) -> dict[str, Any]:
        return {"other": self.other, "difference": _number(self.difference), "p_value": self.p_value,
                "effect_size": self.effect_size, "test": "Welch's t-test", "significant": self.significant,
                "why_untested": self.why_untested}  # fmt: skip


@dataclass
class Lead:
    """Which group is best on a metric, and whether its lead over each other group is real."""

    metric: str
    toward: Direction
    leader: str
    mean: float
    comparisons: list[Comparison]

    def sentence(self, finals_by_label: Mapping[str, Final] | None = None) -> str:
        """One line for a person: who leads, by how much, and whether the lead is significant.

        Example:
            >>> rows = [Final("lr=0.1", [0.9, 0.92, 0.91], list("abc")),
            ...         Final("lr=0.01", [0.7, 0.72, 0.71], list("def"))]
            >>> print(lead(rows, "val/acc").sentence())  # doctest: +ELLIPSIS
            lr=0.1 leads val/acc (higher is better): 0.91 vs 0.71 for lr=0.01, Welch's t-test p=1.6e-05, d=20, ...
        """
        if not self.comparisons:
            return f"{self.leader} is the only group with {self.metric}"
        better = "lower" if self.toward == "min" else "higher"
        parts = []
        for c in self.comparisons:
            other_mean = self.mean - c.difference
            head = f"{self.mean:.4g} vs {other_mean:.4g} for {c.other}"
            if c.p_value is None:
                parts.append(f"{head}, not tested ({c.why_untested})")
            else:
                verdict = f"significant at {ALPHA:g}" if c.significant else f"not significant at {ALPHA:g}"
                size = f", d={c.effect_size:.2g}" if c.effect_size is not None else ""
                parts.append(f"{head}, Welch's t-test p={c.p_value:.2g}{size}, {verdict}")
        return f"{self.leader} leads {self.metric} ({better} is better): " + "; ".join(parts)

    def as_json(self) -> dict[str, Any]:
        return {"metric": self.metric, "direction": self.toward, "leader": self.leader, "mean": _number(self.mean),
                "comparisons": [c.as_json() for c in self.comparisons], "sentence": self.sentence()}  # fmt: skip


def _compare(leader: Final, other: Final) -> Comparison:
    from scipy import stats

    difference = leader.mean - other.mean
    if leader.n < 2 or other.n < 2:
        return Comparison(other.label, difference, None, None, "needs at least 2 runs in each group")
    a, b = np.array(leader.values), np.array(other.values)
    pooled = math.sqrt(((leader.n - 1) * leader.std**2 + (other.n - 1) * other.std**2) / (leader.n + other.n - 2))
    if pooled == 0:
        return Comparison(other.label, difference, None, None, "no spread within the groups")
    result = stats.ttest_ind(a, b, equal_var=False)
    return Comparison(other.label, difference, float(result.pvalue), difference / pooled)


def lead(rows: Sequence[Final], metric: str, toward: Direction | None = None) -> Lead | None:
    """The group with the best mean of ``metric`` among ``rows`` (from ``finals``), tested against each
    other group with Welch's t-test (two-sided); None when no group has a value."""
    toward = toward or direction(metric)
    present = [r for r in rows if r.n]
    if not present:
        return None
    best = (min if toward == "min" else max)(present, key=lambda r: r.mean)
    others = [r for r in present if r is not best]
    return Lead(metric, toward, best.label, best.mean, [_compare(best, other) for other in others])


def headline_tags(entries: Sequence[RunEntry]) -> list[str]:
    """The headline metrics of these runs, in the order the runs list them."""
    tags: list[str] = []
    for entry in entries:
        tags += [t for t in entry.headline if t not in tags]
    return tags


def summary(
    root: str,
    by: Sequence[str] | None = None,
    ignore: Sequence[str] = (),
    smoothing: float = 0.0,
    tags: Sequence[str] | None = None,
    agg: str = "last",
    max_points: int | None = 2000,
) -> dict[str, Any]:
    """Everything a Groups view shows for the runs under ``root``, ready for JSON: the config keys to group
    by, the groups with their runs, per metric the curves (mean and every band, with n) and the final
    values with the leader's test. ``tags`` defaults to the runs' headline metrics. Asked again while no
    run.json, event file or config file under ``root`` changed, it returns the summary it made (shared:
    not to be modified), which is what a Groups tab refreshing on a finished experiment does. ``root`` may
    be a URL of object storage (``s3://bucket/runs``), read through a local mirror (see ``tbscope.remote``)."""
    if remote.is_url(root):
        root = str(remote.mirror(root))
    key = (os.path.abspath(root), tuple(by) if by is not None else None, tuple(ignore), smoothing,
           tuple(tags) if tags is not None else None, agg, max_points, _state(root))  # fmt: skip
    with _kept_lock:
        if key in _kept:
            _kept.move_to_end(key)
            return _kept[key]
    made = _summary(root, by, ignore, smoothing, tags, agg, max_points)
    with _kept_lock:
        _kept[key] = made
        while len(_kept) > KEPT_SUMMARIES:
            _kept.popitem(last=False)
    return made


# Summaries kept for runs that have not changed since (see ``summary``): one per choice of a Groups tab's
# group-by, ignore and smoothing, and the report's.
KEPT_SUMMARIES = 32
_kept: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()
_kept_lock = threading.Lock()


def _state(root: str) -> tuple[tuple[str, int, int], ...]:
    """What a summary of ``root`` depends on: each run.json, event file and config file, by size and
    modification time (not following links)."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            if name in ("run.json", "hparams.yaml", "config.yaml") or "tfevents" in name:
                with contextlib.suppress(OSError):
                    info = os.lstat(os.path.join(folder, name))
                    found.append((os.path.join(folder, name), info.st_size, info.st_mtime_ns))
    return tuple(found)


def _summary(
    root: str, by: Sequence[str] | None, ignore: Sequence[str], smoothing: float, tags: Sequence[str] | None,
    agg: str, max_points: int | None,
) -> dict[str, Any]:  # fmt: skip
    from tbscope import catalog, reader

    entries = catalog.catalog(root)
    groups = group_runs(entries, by, ignore)
    metrics = list(tags) if tags is not None else headline_tags(entries)
    frame = reader.read_scalars(root, runs={e.path for e in entries}, tags=set(metrics))
    table = curves(frame, groups, metrics, smoothing, max_points)
    out_curves: dict[str, dict[str, dict[str, list[Any]]]] = {}
    for (tag, label), rows in table.groupby(["tag", "group"], sort=False):
        line = {"step": rows["step"].tolist()}
        for name in STATS:
            column = rows[name].to_numpy()
            line[name] = column.tolist() if name == "n" else _numbers(column)
        out_curves.setdefault(str(tag), {})[str(label)] = line
    out_finals = {}
    for tag in metrics:
        rows = finals(entries, groups, tag, agg)
        found = lead(rows, tag)
        out_finals[tag] = {"direction": direction(tag), "agg": agg, "rows": [r.as_json() for r in rows],
                           "lead": found.as_json() if found else None}  # fmt: skip
    return {
        "keys": config_keys(entries), "by": list(by) if by is not None else None, "ignore": list(ignore),
        "groups": [g.as_json() for g in groups], "metrics": metrics, "curves": out_curves, "finals": out_finals,
    }  # fmt: skip
