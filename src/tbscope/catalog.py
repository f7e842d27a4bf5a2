"""Catalog: every run under a root, tbscope's or anyone's, with its status, size, hyperparameters and
per-tag scalar summaries; what ``tbscope ls`` and ``tbscope compare`` show.

A tbscope run is described by its ``run.json`` alone: no event file is opened. Any other run (torch's
SummaryWriter, tensorboardX, Lightning's ``version_N``) is described from its event files, and from
Lightning's ``hparams.yaml`` or Hydra's ``.hydra/config.yaml`` when there is one; the summaries are the same either way.

A ``run.json`` is read with suspicion (``rundir.run_meta``): one that cannot be read as a JSON object is no
run.json, and its folder is shown from its event files; a field of another type than tbscope writes is
left out. Either way one warning names the file, and the rest is shown.
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from tbscope import reader, rundir, schema, tagstats
from tbscope.logdir import open_inside
from tbscope.summaries.hparams import HParamValue, flatten
from tbscope.tagstats import Direction, direction


@dataclass
class RunEntry:
    """One run as the CLI shows it."""

    path: str  # relative to the root, TensorBoard's run name
    experiment: str
    run: str
    status: str
    started: datetime | None
    duration: float | None
    last_step: int | None
    bytes: int
    hparams: dict[str, HParamValue] = field(default_factory=dict)
    summary: tagstats.RunStats = field(default_factory=dict)
    headline: list[str] = field(default_factory=list)
    ranks: dict[str, str] = field(default_factory=dict)  # a torchrun job's other ranks: rank -> status

    @property
    def shown_status(self) -> str:
        """The status, and the other ranks of a torchrun job that died or failed: "interrupted (rank 1 crashed)"."""
        down = [f"rank {rank} {status}" for rank, status in self.ranks.items() if status not in ("running", "finished")]
        return f"{self.status} ({', '.join(down)})" if down else self.status

    skipped: dict[str, int] = field(default_factory=dict)  # heavy calls the cadence or a budget dropped, by tag

    def as_json(self) -> dict[str, Any]:
        return {
            "path": self.path, "experiment": self.experiment, "run": self.run, "status": self.status,
            "started": self.started.isoformat() if self.started else None, "duration_s": self.duration,
            "last_step": self.last_step, "bytes": self.bytes, "hparams": self.hparams,
            "metrics": {tag: self.summary[tag] for tag in self.headline}, "summary": self.summary,
            "ranks": self.ranks,
            "skipped": self.skipped,
        }  # fmt: skip


# -- entries ------------------------------------------------------------------------------------------


def _tbscope_entry(root: Path, run_dir: Path, meta: dict[str, Any]) -> RunEntry:
    """A run from its run.json as ``run_meta`` gives it (every field there has the right type)."""
    created = rundir.read_time(meta.get("created"))
    end = rundir.read_time(meta.get("ended") or meta.get("heartbeat"))
    summary: tagstats.RunStats = meta.get("summary", {})
    steps = [int(step) for s in summary.values() if (step := s.get("last_step")) is not None]
    parent = os.path.relpath(run_dir.parent, root)
    return RunEntry(
        path=str(run_dir.relative_to(root)),
        experiment=meta.get("experiment", parent),
        run=run_dir.name,
        status=rundir.effective_status(meta) if "status" in meta else "unknown",
        started=created,
        duration=(end - created).total_seconds() if end and created else None,
        last_step=max(steps) if steps else None,
        bytes=int(meta.get("bytes") or rundir.dir_bytes(run_dir)),
        hparams=dict(meta.get("config_flat", {})),
        summary=summary,
        headline=rundir.headline_metrics(meta),
        ranks=rundir.rank_statuses(meta, run_dir),
        skipped=dict(meta.get("skipped", {})),
    )


# Config files other tools leave beside a run: Lightning's loggers, and Hydra in each job's folder.
CONFIG_FILES = ("hparams.yaml", os.path.join(".hydra", "config.yaml"))


def _config_file(root: Path, run_dir: Path) -> Path | None:
    """A Lightning ``hparams.yaml`` or a Hydra ``.hydra/config.yaml`` in the run's folder or a folder
    above it inside the root (a Hydra job whose writer logged into a subfolder)."""
    folder = run_dir
    while True:
        for name in CONFIG_FILES:
            if os.path.lexists(folder / name):
                return folder / name
        if folder == root or folder.parent == folder or not folder.is_relative_to(root):
            return None
        folder = folder.parent


def _read_config_file(root: Path, path: Path) -> dict[str, HParamValue]:
    why = reader.why_unreadable(path, root.resolve())
    if why is not None:
        reader.warn_skipped(path, why)
        return {}
    import yaml

    try:
        with open_inside(path, root, links=True) as f:
            loaded = yaml.safe_load(f.read(rundir.MAX_RUN_JSON_BYTES).decode("utf-8"))
        return flatten(loaded) if isinstance(loaded, dict) else {}
    except (OSError, ValueError, RecursionError, yaml.YAMLError) as err:
        reader.warn_skipped(path, f"could not read it: {err}")
        return {}


def _files_bytes(folder: Path) -> int:
    """Bytes of the files directly in ``folder`` (not following symlinks)."""
    total = 0
    try:
        with os.scandir(folder) as items:
            for item in items:
                with contextlib.suppress(OSError):
                    if item.is_file(follow_symlinks=False):
                        total += item.stat(follow_symlinks=False).st_size
    except OSError:
        pass
    return total


def _foreign_entry(root: Path, run: str, frame: pd.DataFrame, hparams: dict[str, HParamValue],
                   status: str | None) -> RunEntry:  # fmt: skip
    run_dir = root / run
    parent = os.path.dirname(run) if run != "." else ""
    config_file = _config_file(root, run_dir)
    if config_file is not None and config_file.parent.name == ".hydra":
        parent = os.path.relpath(config_file.parent.parent.parent, root)  # a Hydra sweep: its jobs' folder
    if not hparams and config_file is not None:
        hparams = _read_config_file(root, config_file)
    summary = tagstats.of_frame(frame)
    walls = frame["wall_time"].to_numpy()
    return RunEntry(
        path=run,
        experiment=parent or ".",
        run=os.path.basename(run) if run != "." else ".",
        status=status or "unknown",
        started=datetime.fromtimestamp(float(walls.min()), timezone.utc) if walls.size else None,
        duration=float(walls.max() - walls.min()) if walls.size else None,
        last_step=int(frame["step"].max()) if len(frame) else None,
        bytes=_files_bytes(run_dir),
        hparams=hparams,
        summary=summary,
        headline=[t for t in summary if t.startswith(rundir.DEFAULT_METRIC_PREFIXES)] or list(summary)[:3],
    )


def catalog(root: str | os.PathLike[str]) -> list[RunEntry]:
    """Every run under ``root``: tbscope runs from their run.json, any other directory of event files
    (outside a tbscope run) from its events; folder by folder, the runs of each in the order they started."""
    root_path = Path(root)
    entries: list[RunEntry] = []
    tbscope_dirs: list[Path] = []
    logdir = root_path.resolve()
    for folder, dirs, files in os.walk(root_path):
        dirs.sort()
        if rundir.RUN_FILE in files:
            meta = rundir.run_meta(Path(folder), logdir)
            if meta is not None:
                tbscope_dirs.append(Path(folder))
                entries.append(_tbscope_entry(root_path, Path(folder), meta))
                dirs.clear()  # its sub-runs (add_scalars, ...) belong to it
    owned = {d.relative_to(root_path).parts for d in tbscope_dirs}
    foreign = [
        run for run in reader.find_event_files(root_path)
        if not schema.is_home(run) and not any(Path(run).parts[:i] in owned for i in range(len(Path(run).parts) + 1))
    ]  # fmt: skip
    if foreign:
        frame = reader.read_scalars(root_path, runs=set(foreign))
        sessions = reader.read_events(root_path, "hparams", runs=set(foreign))
        by_run = {row.run: row for row in sessions.itertuples()}
        grouped = dict(iter(frame.groupby("run", observed=True)))
        for run in foreign:
            session = by_run.get(run)
            rows = grouped.get(run, frame.iloc[0:0])
            entries.append(
                _foreign_entry(root_path, run, rows, dict(session.hparams) if session else {},
                               session.status if session else None)
            )  # fmt: skip
    return sorted(entries, key=_start_order)


def _start_order(entry: RunEntry) -> tuple[str, bool, datetime, str]:
    """The runs of a folder in the order they started (unknown starts last), the folders by path."""
    unknown = entry.started is None
    return os.path.dirname(entry.path), unknown, entry.started or datetime.min.replace(tzinfo=timezone.utc), entry.path


def metric_value(entry: RunEntry, tag: str, agg: str, toward: Direction | None = None) -> float:
    """A run's ``last``, ``min`` or ``max`` of scalar ``tag``, or its ``best`` (the minimum or maximum,
    by ``toward``, by default the tag's ``groups.direction``); NaN when it has none."""
    stats = entry.summary.get(tag)
    if agg == "best":
        agg = toward or direction(tag)
    value = stats.get(agg) if stats else None
    return float(value) if value is not None else math.nan
