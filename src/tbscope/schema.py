"""The HParams dashboard's columns for a runs root: one experiment summary, kept current by tbscope.

TensorBoard takes the first experiment summary it finds under ``--logdir`` as the columns of every run
there, and without one makes every scalar tag a metric column. So tbscope keeps exactly one for a runs
root, built from the ``run.json`` of every tbscope run under it, of every experiment: as hyperparameter
columns the union of the runs' config keys, as metric columns the runs' headline metrics (``metrics=``
of ``init``, else their ``val/``, ``test/`` and ``metrics/`` tags). ``tensorboard --logdir ROOT`` and
``tbscope serve ROOT`` show it alike.

The dashboard shows five hyperparameter columns at first (those marked ``differs``, then others, each
by name) and the first five metric columns, and its parallel coordinates leave out a run that has no
value in a shown column. So the five columns marked are the keys every run has, those whose values
differ across runs first, then the keys of the largest group of runs that can all be drawn; the
metrics most runs have come first.

The summary lives in one of the users' own runs, the newest, as an event file of its own
(``events.out.tfevents.0000000000.tbscope-hparams-<digest>``): TensorBoard's HParams plugin takes the first
experiment summary of any run, so the root needs no run of tbscope's own, and the run selector lists only
the runs the user started. A change is written whole under a temporary name (no ``tfevents`` in it, so
TensorBoard does not read it half-written), renamed into the newest run, and every other copy is deleted.
Processes that start runs at once take turns through a lock file (``.tbscope/lock``: a folder without
event files is no run), and each builds the summary from every run.json on disk, so the last one to write
has seen every run.

What this placement cannot do: TensorBoard keeps the first summary it read from a run for as long as it
runs, so a TensorBoard already running when the columns change (a run with new keys starts) shows the new
columns once restarted (``tbscope serve`` brings them up to date as it starts). Only a new run can carry a
change to a running TensorBoard, and tbscope adds no run. Older versions kept the summary in a run of its
own (``.tbscope/hparams-<digest>/``); it is deleted at the next update and never listed as a run.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path
from typing import Any

from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.plugins.hparams import api_pb2

from tbscope import atomic, record, rundir
from tbscope.summaries.hparams import HParamValue, experiment_value, hparam_info

# The columns of each kind the HParams dashboard shows before the user picks others.
SHOWN = 5
# tbscope's own folder in a runs root: never a run, never an experiment. Its lock file lets one process at
# a time create a run's folder or rebuild the summary.
HOME = ".tbscope"
LOCK = "lock"
# How long anyone waits for the root's lock: a holder that is stopped or hung is not waited on forever.
LOCK_SECONDS = 10.0
_FOLDER = "hparams-"  # older versions' run of tbscope's own, under HOME
# The summary's event file in a run: first in the run's files by name (its time stamp is 0).
_EVENT_FILE = "events.out.tfevents.0000000000.tbscope-hparams-"
_PARTIAL = ".tbscope-hparams.partial"


def columns(metas: list[dict[str, Any]]) -> tuple[list[api_pb2.HParamInfo], list[str]]:
    """The dashboard's hyperparameter and metric columns for runs ``metas`` (run.json, oldest first),
    in the order the dashboard should show them (see the module)."""
    values: dict[str, list[HParamValue]] = {}
    metric_runs: dict[str, int] = {}
    for meta in metas:
        for key, value in meta.get("config_flat", {}).items():
            values.setdefault(key, []).append(value)
        for tag in rundir.headline_metrics(meta):
            metric_runs[tag] = metric_runs.get(tag, 0) + 1
    runs = len(metas)

    def varies(key: str) -> bool:
        return len({(type(v), v) for v in values[key]}) > 1

    shared = [key for key in values if len(values[key]) == runs]
    order = (
        [key for key in shared if varies(key)]
        + [key for key in shared if not varies(key)]
        + sorted((key for key in values if len(values[key]) < runs), key=lambda key: -len(values[key]))
    )
    # TensorBoard shows the first five columns, and parallel coordinates draw only the runs that have
    # every shown one. Each distinct set of a run's keys suggests a choice (its keys in the order above,
    # then the others); the first choice that leaves the most runs drawn is shown, the plain order first.
    keys_of = [set(meta.get("config_flat", {})) for meta in metas]
    suggested = [[key for key in order if key in keys] + [key for key in order if key not in keys]
                 for keys in dict.fromkeys(frozenset(keys) for keys in keys_of)]  # fmt: skip
    chosen = max([order, *suggested], key=lambda choice: sum(keys.issuperset(choice[:SHOWN]) for keys in keys_of))
    order = chosen[:SHOWN] + [key for key in order if key not in chosen[:SHOWN]]
    hparams = [hparam_info(key, values[key], differs=i < SHOWN) for i, key in enumerate(order)]
    metrics = sorted(metric_runs, key=lambda tag: -metric_runs[tag])  # stable: first seen first among equals
    return hparams, metrics


def _runs(root: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every tbscope run under ``root`` with its run.json, oldest first."""
    logdir = root.resolve()
    found = [(run_dir, meta) for run_dir in rundir.run_folders(root)
             if (meta := rundir.run_meta(run_dir, logdir)) is not None]  # fmt: skip
    return sorted(found, key=lambda found: str(found[1].get("created", "")))


def _event_file(value: Summary.Value) -> bytes:
    now = time.time()
    events = [
        Event(wall_time=now, file_version="brain.Event:2"),
        Event(wall_time=now, step=0, summary=Summary(value=[value])),
    ]
    return b"".join(record.frame(event.SerializeToString()) for event in events)


def refresh(root: str | os.PathLike[str], timeout: float | None = None) -> Path | None:
    """Bring the experiment summary of ``root`` up to date with the run.json of every tbscope run under
    it; returns its event file (in the newest run), or None where ``root`` holds no tbscope run (nothing
    is written there). Raises OSError when it cannot be written, TimeoutError (an OSError) when the root's
    lock is still held by another process after ``timeout`` seconds (default ``LOCK_SECONDS``).

    Example:
        >>> import tempfile, tbscope
        >>> root = tempfile.mkdtemp()
        >>> with tbscope.init("cnn", root=root, name="first", config={"lr": 0.1}) as run:
        ...     run.writer.add_scalar("val/acc", 0.9, 1)
        >>> refresh(root).parent.name
        '0001-first'
    """
    root_path = Path(root)
    if not rundir.run_folders(root_path):
        return None
    home = root_path / HOME
    with atomic.locked(home / LOCK, LOCK_SECONDS if timeout is None else timeout):
        runs = _runs(root_path)
        if not runs:
            return None
        hparams, metrics = columns([meta for _, meta in runs])
        value = experiment_value(hparams, metrics)
        digest = hashlib.sha1(value.SerializeToString(deterministic=True)).hexdigest()[:16]
        newest = runs[-1][0]
        target = newest / f"{_EVENT_FILE}{digest}"
        if not target.is_file():
            partial = newest / _PARTIAL
            partial.write_bytes(_event_file(value))
            partial.rename(target)  # TensorBoard sees it from now on, whole
        for run_dir, _ in runs:
            for old in run_dir.glob(f"{_EVENT_FILE}*"):
                if old != target:
                    old.unlink(missing_ok=True)
        for old in home.glob(f"{_FOLDER}*"):  # an older version's run of its own
            shutil.rmtree(old, ignore_errors=True)
    return target


def is_home(run: str) -> bool:
    """Whether TensorBoard's run name ``run`` (relative to the root) is inside tbscope's own folder (the
    summary's run of older versions)."""
    return Path(run).parts[:1] == (HOME,)
