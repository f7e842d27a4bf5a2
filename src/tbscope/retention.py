"""Retention: which ended runs to delete, oldest first, when a run starts or ``tbscope prune`` runs.

A running run is never deleted, nor anything that is not a tbscope run, nor anything behind a symbolic
link or outside the root; each run is checked again at the moment it is deleted.
"""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from tbscope import remote, schema
from tbscope.rundir import DELETABLE, RunDir, effective_status, find_runs, read_meta


@dataclass(frozen=True)
class Retention:
    """Which ended runs to delete when a run starts (or with ``tbscope prune``), oldest first.

    ``keep_last`` keeps the newest N runs of each experiment; ``max_age`` deletes runs created
    longer ago than that; ``max_total_bytes`` deletes the oldest ended runs until the runs in
    scope fit. ``scope`` is "experiment" (the new run's experiment) or "root" (every experiment).
    A running run is never deleted, nor anything that is not a tbscope run, nor anything behind a
    symbolic link or outside the root.

    Example:
        >>> from datetime import timedelta
        >>> Retention(keep_last=20, max_age=timedelta(days=30)).scope
        'experiment'
    """

    keep_last: int | None = None
    max_age: timedelta | None = None
    max_total_bytes: int | None = None
    scope: str = "experiment"

    def __post_init__(self) -> None:
        if self.keep_last is not None and self.keep_last < 1:
            raise ValueError(f"Retention: keep_last must be at least 1, got {self.keep_last}")
        if self.max_total_bytes is not None and self.max_total_bytes < 0:
            raise ValueError(f"Retention: max_total_bytes must not be negative, got {self.max_total_bytes}")
        if self.scope not in ("experiment", "root"):
            raise ValueError(f"Retention: scope must be 'experiment' or 'root', got {self.scope!r}")


def plan_retention(runs: Iterable[RunDir], retention: Retention, now: datetime | None = None) -> list[RunDir]:
    """The runs ``retention`` deletes, oldest first: only ended ones, never a running run."""
    runs = list(runs)
    now = now or datetime.now(timezone.utc)
    doomed: dict[Path, RunDir] = {}
    if retention.keep_last is not None:
        by_experiment: dict[Path, list[RunDir]] = {}  # by folder: run.json's "experiment" may say anything
        for run in runs:
            by_experiment.setdefault(run.path.parent, []).append(run)
        for group in by_experiment.values():
            for run in group[: max(0, len(group) - retention.keep_last)]:
                doomed[run.path] = run
    if retention.max_age is not None:
        for run in runs:
            if now - run.created > retention.max_age:
                doomed[run.path] = run
    doomed = {path: run for path, run in doomed.items() if run.status in DELETABLE}
    if retention.max_total_bytes is not None:
        total = sum(run.bytes for run in runs if run.path not in doomed)
        for run in runs:
            if total <= retention.max_total_bytes:
                break
            if run.path not in doomed and run.status in DELETABLE:
                doomed[run.path] = run
                total -= run.bytes
    return [run for run in runs if run.path in doomed]


def delete_run(root: Path, run: RunDir) -> bool:
    """Delete one run's directory, if it still may be: checked again at this moment (a run resumed
    since it was planned, or a process stopped and continued, is kept). Returns whether it was deleted;
    a run gone already (another process pruned it) is not an error."""
    path = run.path
    if path.is_symlink() or not path.resolve().is_relative_to(root.resolve()):
        return False
    meta = read_meta(path)
    if meta is None or meta.get("id") != run.meta.get("id") or effective_status(meta) not in DELETABLE:
        return False
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        return False
    return True


def apply_retention(root: Path, retention: Retention, experiment: str | None) -> list[tuple[Path, int]]:
    """Delete what ``retention`` selects under ``root`` (one experiment, or all); returns (path, bytes)."""
    if not root.is_dir():
        return []
    deleted = []
    for run in plan_retention(find_runs(root, experiment), retention):
        if delete_run(root, run):
            deleted.append((run.path, run.bytes))
    if deleted:
        refresh_columns(root)
    return deleted


def refresh_columns(root: Path) -> None:
    """After runs were deleted: the root's HParams columns, brought up to date with the runs left (a
    warning where they cannot be written)."""
    try:
        schema.refresh(root)
    except OSError as err:
        warnings.warn(f"tbscope: could not update the HParams columns of {root}: {err}", RuntimeWarning, stacklevel=3)


def delete_stored_run(url: str, relative: str, run_id: object) -> bool:
    """Delete the objects of the run at ``relative`` under ``url`` if it still may be: its run.json, read from
    the store at this moment, names the same run (``run_id``) and says it ended (a fresh heartbeat keeps it: a
    run on another host has no process to check). Returns whether it was deleted."""
    fs, root = remote.filesystem(url)
    target = f"{root}/{relative}"
    try:
        meta = json.loads(fs.cat_file(f"{target}/run.json"))
    except Exception:  # gone, unreadable or damaged: not provably an ended run
        return False
    if not isinstance(meta, dict) or meta.get("id") != run_id or effective_status(meta) not in DELETABLE:
        return False
    try:
        fs.rm(target, recursive=True)
    except Exception as err:
        raise ValueError(f"could not delete {url}/{relative}: {remote.quiet(err)}") from None
    return True
