"""Runs: the layout ``root/experiment/<UTC time>-<id>[-<name>]``, ``run.json``, status, resume and retention.

``run.json`` is always whole: it is written to a temporary file and renamed over the old one. It
holds what the run is (id, experiment, config, code version, host) and how it is going (status,
a heartbeat, per-tag scalar summaries and bytes on disk, kept current at every flush). Readers tell
a run that died without a word ("crashed") from one still running by its pid and its heartbeat.
Nothing here imports torch.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import enum
import functools
import json
import math
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path, PurePath
from types import TracebackType
from typing import Any

from tbscope import atomic, reader, record
from tbscope.integrations import distributed
from tbscope.integrations.hydra import hydra_job, name_from_overrides
from tbscope.pipeline import end_status, on_exit
from tbscope.policy import Budget, Cadence
from tbscope.summaries.hparams import HParamValue, flatten
from tbscope.writer import NullWriter, Writer

SCHEMA_VERSION = 1
RUN_FILE = "run.json"
END_STATUSES = ("finished", "failed", "interrupted")
# What retention and prune may delete: runs that ended, or whose process is proved gone.
DELETABLE = (*END_STATUSES, "crashed")
# A running run's heartbeat is rewritten at every flush (5 s by default). One this old means the
# process is gone, or frozen, even where its pid cannot be checked (another host).
STALE_AFTER = timedelta(minutes=10)
# Scalar tags shown as a run's headline metrics when ``metrics=`` is not given.
DEFAULT_METRIC_PREFIXES = ("val/", "test/", "metrics/")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


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


@dataclass(frozen=True)
class Resume:
    """Continue an earlier run in its own directory: ``run`` is its directory or its id.

    With ``step``, everything that run logged at or after ``step`` is hidden, as TensorBoard's
    purge does, so curves restarted from a checkpoint don't zig-zag.
    """

    run: str | os.PathLike[str]
    step: int | None = None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    """A ``run.json`` timestamp as an aware datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def check_name(what: str, name: str) -> None:
    """Raise a ValueError unless ``name`` is a plain name: no path separators, no ``..``."""
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise ValueError(
            f"init: {what} must be a plain name of letters, digits, '.', '_' and '-' (no path separators "
            f"or '..'), got {name!r}"
        )


# -- config -------------------------------------------------------------------------------------------


def config_as_dict(config: Any) -> dict[str, Any]:
    """A dict, a dataclass, an ``argparse.Namespace`` or an OmegaConf config (resolved) as a plain dict."""
    if config is None:
        return {}
    if type(config).__module__.startswith("omegaconf"):
        from omegaconf import OmegaConf

        container = OmegaConf.to_container(config, resolve=True)
        if not isinstance(container, dict):
            raise TypeError("init: an OmegaConf config must be a DictConfig, got a ListConfig")
        return {str(k): v for k, v in container.items()}
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return dataclasses.asdict(config)
    if isinstance(config, argparse.Namespace):
        return dict(vars(config))
    if isinstance(config, Mapping):
        return dict(config)
    raise TypeError(
        f"init: config must be a dict, a dataclass, an argparse.Namespace or an OmegaConf config, "
        f"got {type(config).__name__}"
    )


def _jsonable(value: Any, where: str) -> Any:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        return value if not isinstance(value, float) or math.isfinite(value) else str(value)
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
        return _jsonable(value.item(), where)
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise ValueError(
        f"init: {where} is a {type(value).__name__}, which run.json cannot hold; "
        "pass plain values (numbers, strings, bools, lists, dicts, paths), e.g. its name"
    )


# -- run.json -------------------------------------------------------------------------------------------


def write_json_atomically(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` as JSON to ``path`` so that a reader, or a kill, never sees half a file."""
    atomic.write_text(path, json.dumps(data, indent=1, allow_nan=False))


def read_meta(run_dir: Path) -> dict[str, Any] | None:
    """The run.json of ``run_dir``, or None when it is missing, unreadable or not a tbscope run's."""
    try:
        meta = json.loads((run_dir / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("schema") != SCHEMA_VERSION or "id" not in meta:
        return None
    return meta


def _proc(path: str) -> str | None:
    """A line of /proc (Linux); None where there is none."""
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return None


@functools.cache
def _here() -> tuple[str | None, str | None]:
    """This process's PID namespace and boot, from /proc (None each where there is none). They never
    change while it runs: read once, not once a run for every run ``ls`` looks at."""
    try:
        namespace: str | None = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = None
    return namespace, _proc("/proc/sys/kernel/random/boot_id")


def _process_start(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot) and its state letter, from /proc."""
    stat = _proc(f"/proc/{pid}/stat")
    if stat is None:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def process_identity() -> dict[str, Any]:
    """What run.json records of the process that writes it, so that a reader on the same machine can
    prove whether it is gone: host, pid, PID namespace, boot and the process's start time."""
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "pid_namespace": _here()[0],
        "boot_id": _here()[1],
        "pid_start": _process_start(os.getpid()),
    }


def _same_machine_and_namespace(meta: Mapping[str, Any]) -> bool:
    """Whether the pid in ``meta`` means the same process here: same host, PID namespace and boot
    (where /proc is missing on both sides, as on macOS, the host alone)."""
    pid = meta.get("pid")
    if type(pid) is not int or pid <= 0 or meta.get("host") != socket.gethostname():
        return False
    return (meta.get("pid_namespace"), meta.get("boot_id")) == _here()


def _proved_dead(meta: Mapping[str, Any]) -> bool:
    """Whether the process that wrote ``meta`` is certainly gone: here (see above), its pid is free, a
    zombie (killed, not yet reaped) or another process that started later. Anything that cannot be
    checked (another host, a container, an older run.json) is no proof."""
    if not _same_machine_and_namespace(meta):
        return False
    pid = int(meta["pid"])
    stat = _proc(f"/proc/{pid}/stat")
    if stat is None:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except OSError:
            return False
        return False
    fields = stat.rsplit(")", 1)[-1].split()
    recorded = meta.get("pid_start")
    return fields[:1] in (["Z"], ["X"]) or (recorded is not None and fields[19:20] != [recorded])


def effective_status(meta: Mapping[str, Any], now: datetime | None = None) -> str:
    """The status a reader should believe. A "running" run is "crashed" only when its process is proved
    gone (see ``_proved_dead``). One whose process cannot be checked (another host, a container) and
    whose heartbeat is older than ``STALE_AFTER`` is "stale": maybe gone, maybe stopped; prune keeps it."""
    status = meta.get("status")
    if not isinstance(status, str):
        return "unknown"
    if status != "running":
        return status
    if _proved_dead(meta):
        return "crashed"
    if _same_machine_and_namespace(meta):
        return "running"  # its process is there: training, or stopped (Ctrl-Z, a scheduler's suspend)
    beat = read_time(meta.get("heartbeat"))
    silent = beat is None or (now or datetime.now(timezone.utc)) - beat > STALE_AFTER
    return "stale" if silent else "running"


def dir_bytes(path: Path) -> int:
    """Bytes of the files under ``path``, not following symbolic links."""
    total = 0
    for folder, _, files in os.walk(path, followlinks=False):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(folder, name)).st_size
    return total


def _git_state(cwd: Path) -> dict[str, Any] | None:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd, capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(dirty)}


def _versions() -> dict[str, str | None]:
    from importlib import metadata

    from tbscope import __version__

    def version(package: str) -> str | None:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None

    return {
        "python": sys.version.split()[0],
        "torch": version("torch"),
        "tensorboard": version("tensorboard"),
        "tbscope": __version__,
    }


# -- the run ----------------------------------------------------------------------------------------


class Run:
    """One training run: its directory, its ``writer``, and its ``run.json``.

    Made by ``tbscope.init``. End it with ``finish()`` or a ``with run:`` block: leaving the block
    by an exception records "failed" (KeyboardInterrupt: "interrupted"). A process that exits
    without finishing records "finished", "failed" (an uncaught exception) or "interrupted"
    (SIGTERM); one that dies without a word is told "crashed" by readers.
    """

    def __init__(
        self,
        run_dir: Path,
        meta: dict[str, Any],
        budget: Budget | None,
        cadence: Cadence | None,
        purge_step: int | None,
        flat_config: Mapping[str, HParamValue],
        earlier: Mapping[str, Mapping[str, Any]] | None = None,
        rank: int = 0,
        all_ranks: bool = False,
    ) -> None:
        self.dir = run_dir
        self.rank = rank  # under torch.distributed: only rank 0 writes run.json and the run's own events
        self._earlier = dict(earlier or {})  # a resumed run's summary of what it logged before
        self.id: str = meta["id"]
        self.experiment: str = meta["experiment"]
        self.name: str | None = meta["name"]
        self._meta = meta
        self._lock = threading.Lock()
        self._finished = False
        self._pid = os.getpid()
        self._note: Path | None = None  # rank 0's note for the other ranks, removed when the run ends
        self.writer: Writer
        if rank:
            self.writer = (
                Writer(run_dir / f"rank{rank}", cadence=cadence, budget=budget) if all_ranks else NullWriter(run_dir)
            )
            self._session, self._finished = True, False
            on_exit(self.finish)
            return
        self.writer = Writer(run_dir, purge_step=purge_step, cadence=cadence, budget=budget, on_flush=self._update)
        # The run's HParams session: TensorBoard shows the first one a run writes, so without a config
        # it waits for add_config (a Lightning logger learns the hyperparameters after the run starts),
        # or, failing that, for the end of the run.
        self._session = bool(flat_config)
        if self._session:
            self.writer.add_hparams(flat_config, {})
        self._save()
        on_exit(self.finish)

    @property
    def status(self) -> str:
        return str(self._meta["status"])

    @property
    def config(self) -> dict[str, Any]:
        """The config as given (made JSON-safe), as stored in run.json."""
        return dict(self._meta["config"])

    def add_config(self, config: Any) -> None:
        """Add hyperparameters to the run's config (run.json, ``tbscope compare``) and, if the run has
        not started its HParams session yet, to TensorBoard's HParams dashboard. Keys given again are
        replaced. ``config`` is any of what ``init`` takes.

        Example:
            >>> import tempfile, tbscope
            >>> with tbscope.init("cnn", root=tempfile.mkdtemp()) as run:
            ...     run.add_config({"lr": 0.1, "model": {"width": 16}})
            >>> run.config
            {'lr': 0.1, 'model': {'width': 16}}
        """
        given = _jsonable(config_as_dict(config), "config")
        merged = {**self._meta["config"], **given}
        if self._session and merged == self._meta["config"]:
            return  # nothing new (Lightning logs the same hyperparameters at every stage)
        with self._lock:
            self._meta["config"] = merged
            self._meta["config_flat"] = flatten(merged)
        if self._session:
            warnings.warn(
                "tbscope: add_config after the run's HParams session started: the new keys are in run.json and "
                "tbscope compare, not in TensorBoard's HParams dashboard (it keeps a run's first session)",
                RuntimeWarning,
                stacklevel=2,
            )
        else:
            self._session = True
            self.writer.add_hparams(self._meta["config_flat"], {})
        self._save()

    def _save(self) -> None:
        if os.getpid() != self._pid or self.rank:
            return  # a forked child (a DataLoader worker), or another rank: run.json is not theirs to write
        with self._lock:
            self._meta["heartbeat"] = _now()
            self._meta["summary"] = merge_summaries(self._earlier, self.writer.scalar_summary())
            self._meta["bytes"] = dir_bytes(self.dir)
            write_json_atomically(self.dir / RUN_FILE, self._meta)

    def _update(self) -> None:
        if not self._finished:
            self._save()

    def finish(self, status: str = "finished") -> None:
        """End the run: write everything, close the writer and record ``status`` in run.json.

        ``status`` is "finished", "failed" or "interrupted". A second call does nothing.
        """
        if status not in END_STATUSES:
            raise ValueError(f"finish: status must be one of {', '.join(END_STATUSES)}, got {status!r}")
        if self._finished:
            return
        self._finished = True  # the close's own flush leaves run.json to the one write below
        if self.rank:
            self.writer.close()
            return
        if self._note is not None:
            with contextlib.suppress(OSError):
                self._note.unlink()
        if not self._session:  # every run shows in the HParams dashboard, with its status
            self._session = True
            self.writer.add_hparams({}, {})
        self.writer.close(status)
        self._meta["status"] = status
        self._meta["ended"] = _now()
        try:
            self._save()
        except OSError as err:  # a full disk, a deleted folder: the training script still ends cleanly
            warnings.warn(
                f"tbscope: could not record the end of run {self.dir} in {RUN_FILE}: {err}",
                RuntimeWarning,
                stacklevel=2,
            )

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.finish(end_status(exc_type))

    def __repr__(self) -> str:
        return f"Run({str(self.dir)!r}, status={self.status!r})"


def merge_summaries(
    earlier: Mapping[str, Mapping[str, Any]], later: Mapping[str, Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Per-tag summaries of a run logged in two parts (before and after a resume), as one."""
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


def _create_run_dir(experiment_dir: Path, name: str | None) -> tuple[Path, str]:
    """A new, empty run directory; ``mkdir`` fails on a clash, so concurrent starts never share one."""
    while True:
        run_id = secrets.token_hex(4)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        path = experiment_dir / f"{stamp}-{run_id}{'-' + name if name else ''}"
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path, run_id


def _find_run(root: Path, experiment: str, run: str | os.PathLike[str]) -> Path:
    candidate = Path(run)
    if (candidate / RUN_FILE).is_file():
        return candidate
    experiment_dir = root / experiment
    matches = [
        d for d in experiment_dir.iterdir() if d.is_dir() and (meta := read_meta(d)) and meta["id"] == str(run)
    ] if experiment_dir.is_dir() else []  # fmt: skip
    if len(matches) != 1:
        raise FileNotFoundError(
            f"init: resume={str(run)!r} is neither a run directory nor a run id in {experiment_dir}"
        )
    return matches[0]


def init(
    experiment: str,
    root: str | os.PathLike[str] = "runs",
    name: str | None = None,
    config: Any = None,
    metrics: Sequence[str] | None = None,
    retention: Retention | None = None,
    budget: Budget | None = None,
    resume: Resume | str | os.PathLike[str] | None = None,
    cadence: Cadence | None = None,
    all_ranks: bool = False,
) -> Run:
    """Start a run of ``experiment``: its directory, its writer, its run.json and its hyperparameters.

    The run goes to ``root/experiment/<UTC time>-<id>[-<name>]``; any number of processes may start
    runs of one experiment at once and each gets its own directory. Inside a Hydra app the name
    defaults to the command line's overrides (``lr-0.01_model.width-16``) and run.json records
    Hydra's output directory. ``config`` (a dict, dataclass,
    ``argparse.Namespace`` or OmegaConf config) is stored in run.json and becomes the run's HParams
    session, flattened with "/". ``metrics`` names the scalar tags that are the run's headline
    metrics (default: every tag under ``val/``, ``test/`` or ``metrics/``). ``budget`` bounds the
    run's size (default ``Budget()``: 1 GiB); ``retention`` deletes old ended runs first;
    ``resume`` continues an earlier run (see ``Resume``); ``cadence`` (default ``Cadence()``) says at
    which steps images, histograms and other heavy data are kept.

    Example:
        >>> import tempfile, tbscope
        >>> root = tempfile.mkdtemp()
        >>> with tbscope.init("shapes-cnn", root=root, config={"lr": 0.01, "opt": {"name": "sgd"}}) as run:
        ...     for step in range(10):
        ...         run.writer.add_scalar("train/loss", 1 / (step + 1), step)
        >>> run.status, run.dir.parent.name
        ('finished', 'shapes-cnn')
        >>> import json; meta = json.loads((run.dir / "run.json").read_text())
        >>> meta["config_flat"], meta["summary"]["train/loss"]["count"]
        ({'lr': 0.01, 'opt/name': 'sgd'}, 10)
    """
    check_name("experiment", experiment)
    job = hydra_job()
    if name is None and job is not None:
        name = name_from_overrides(job["overrides"])
    if name is not None:
        check_name("name", name)
    root_path = Path(root)
    if root_path.exists() and not root_path.is_dir():
        raise NotADirectoryError(f"init: root {str(root_path)!r} exists and is not a directory")
    given = _jsonable(config_as_dict(config), "config")
    flat = flatten(given)
    if metrics is not None and (isinstance(metrics, str) or not all(isinstance(m, str) for m in metrics)):
        raise TypeError(f"init: metrics must be a list of scalar tags, got {metrics!r}")
    budget = budget if budget is not None else Budget()
    cadence = cadence if cadence is not None else Cadence()
    experiment_dir = root_path / experiment
    experiment_dir.mkdir(parents=True, exist_ok=True)
    place = distributed.place()
    if place is not None and place[0] != 0:  # another rank of a torchrun job: rank 0's run
        run_dir = distributed.receive(experiment_dir, place[0])
        seen = read_meta(run_dir) or {"id": run_dir.name, "experiment": experiment, "name": name, "status": "running"}
        return Run(run_dir, seen, budget, cadence, None, {}, rank=place[0], all_ranks=all_ranks)
    resume_target = Resume(resume) if isinstance(resume, str | os.PathLike) else resume
    purge_step = None
    if resume_target is not None:
        run_dir = _find_run(root_path, experiment, resume_target.run)
        meta = read_meta(run_dir)
        assert meta is not None
        meta.setdefault("resumed", []).append({"at": _now(), "step": resume_target.step, "pid": os.getpid()})
        purge_step = resume_target.step
        earlier = _logged_before(run_dir, purge_step)
    else:
        run_dir, run_id = _create_run_dir(experiment_dir, name)
        earlier = {}
        meta = {"schema": SCHEMA_VERSION, "id": run_id, "experiment": experiment, "name": name, "created": _now()}
    meta.update(
        status="running",
        ended=None,
        **process_identity(),
        command=list(sys.argv),
        cwd=os.getcwd(),
        git=_git_state(Path.cwd()),
        versions=_versions(),
        config=given,
        config_flat=flat,
        hydra=job,
        world_size=place[1] if place is not None else None,
        metrics=list(metrics) if metrics is not None else None,
    )
    run = Run(run_dir, meta, budget, cadence, purge_step, flat, earlier)
    if place is not None:
        run._note = distributed.announce(experiment_dir, run_dir)
    if retention is not None:  # after the new run exists, so that it counts among the newest
        try:
            deleted = apply_retention(root_path, retention, None if retention.scope == "root" else experiment)
        except OSError as err:  # retention never stops a run from starting
            warnings.warn(f"tbscope: retention could not delete old runs: {err}", RuntimeWarning, stacklevel=2)
            deleted = []
        if deleted:
            freed = sum(size for _, size in deleted)
            print(
                f"tbscope: retention deleted {len(deleted)} old run(s), freeing {format_bytes(freed)}: "
                + ", ".join(str(path.relative_to(root_path)) for path, _ in deleted),
                file=sys.stderr,
            )
    return run


def _logged_before(run_dir: Path, step: int | None) -> dict[str, dict[str, Any]]:
    """The per-tag summary of what a run logged before it is resumed at ``step`` (which hides the rest)."""
    from tbscope.catalog import summarize
    from tbscope.reader import read_scalars

    frame = read_scalars(run_dir, runs=["."])
    return summarize(frame if step is None else frame[frame["step"] < step])


def headline_metrics(meta: Mapping[str, Any]) -> list[str]:
    """The scalar tags that are a run's headline metrics: ``metrics=`` if given, else val/test/metrics tags."""
    named = meta.get("metrics")
    tags = list(meta.get("summary", {}))
    if named is not None:
        return [t for t in named if t in tags]
    return [t for t in tags if t.startswith(DEFAULT_METRIC_PREFIXES)]


# -- finding and pruning runs -----------------------------------------------------------------------


@dataclass(frozen=True)
class RunDir:
    """A tbscope run found on disk: its directory, its run.json, its believed status and size."""

    path: Path
    meta: dict[str, Any]
    status: str
    bytes: int

    @property
    def created(self) -> datetime:
        return parse_time(self.meta["created"])


# -- run.json, read with suspicion ------------------------------------------------------------------

# A run.json is a few kilobytes; one larger than this is not one tbscope wrote.
MAX_RUN_JSON_BYTES = 1 << 26
# Fields a tbscope run.json always has: one missing is named in the warning.
_REQUIRED = ("experiment", "created", "status")
_PROBLEMS_SHOWN = 6


def read_time(value: Any) -> datetime | None:
    """A run.json timestamp as an aware datetime (UTC when it names no zone), or None."""
    if not isinstance(value, str):
        return None
    try:
        parsed = parse_time(value)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    except (ValueError, OverflowError):
        return None


def _is_number(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if type(value) is not int:  # bool is no number here
        return False
    try:
        float(value)
    except OverflowError:
        return False
    return True


def _is_count(value: Any, upper: int = 1 << 63) -> bool:
    return type(value) is int and -upper <= value < upper


def _stats_ok(stats: Any) -> bool:
    """Whether one tag's summary has the shape ``summarize`` gives it."""
    if not isinstance(stats, Mapping):
        return False
    numbers = all(stats.get(k) is None or _is_number(stats.get(k)) for k in ("last", "min", "max"))
    return numbers and all(stats.get(k) is None or _is_count(stats.get(k)) for k in ("last_step", "count"))


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _checked(meta: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The fields of a run.json that have the types tbscope writes (timestamps made aware ISO 8601),
    and the names of those that were missing or had others."""
    clean: dict[str, Any] = {"schema": meta["schema"], "id": meta["id"]}
    problems: list[str] = [f"{key} (missing)" for key in _REQUIRED if meta.get(key) is None]

    def check(key: str, ok: bool) -> bool:
        if key in meta and meta[key] is not None and not ok:
            problems.append(f"{key} ({_shown(meta[key])})")
            return False
        return key in meta and meta[key] is not None

    for key in ("experiment", "status", "host", "name", "pid_namespace", "boot_id", "pid_start"):
        if check(key, isinstance(meta.get(key), str)):
            clean[key] = meta[key]
    for key in ("created", "ended", "heartbeat"):
        when = read_time(meta.get(key))
        if check(key, when is not None) and when is not None:
            clean[key] = when.isoformat()
    if check("pid", _is_count(meta.get("pid"), 1 << 31) and meta["pid"] > 0):
        clean["pid"] = meta["pid"]
    else:
        clean.pop("host", None)  # no pid to check on this host: the heartbeat alone tells a dead run
    if check("bytes", _is_count(meta.get("bytes")) and meta["bytes"] >= 0):
        clean["bytes"] = meta["bytes"]
    if check("metrics", isinstance(meta.get("metrics"), list) and all(isinstance(m, str) for m in meta["metrics"])):
        clean["metrics"] = meta["metrics"]
    if check("config", isinstance(meta.get("config"), Mapping)):
        clean["config"] = meta["config"]
    if check("summary", isinstance(meta.get("summary"), Mapping)):
        clean["summary"] = {}
        for tag, stats in meta["summary"].items():
            if _stats_ok(stats):
                clean["summary"][tag] = dict(stats)
            else:
                problems.append(f"summary[{_shown(tag)}] ({_shown(stats)})")
    if check("config_flat", isinstance(meta.get("config_flat"), Mapping)):
        clean["config_flat"] = {}
        for key, value in meta["config_flat"].items():
            if isinstance(value, bool | str) or _is_number(value):
                clean["config_flat"][key] = value
            else:
                problems.append(f"config_flat[{_shown(key)}] ({_shown(value)})")
    return clean, problems


def _read_run_json(run_dir: Path, logdir: Path, unusable: str) -> tuple[dict[str, Any] | None, list[str]]:
    """``run_meta``'s reading: the checked fields and the problems with the others, or None (told in a
    warning that ends with ``unusable``, what becomes of the folder) when it is no tbscope run.json."""
    path = run_dir / RUN_FILE
    why = reader.why_unreadable(path, logdir)
    if why is not None:
        reader.warn_skipped(path, f"{why}; {unusable}")
        return None, []
    try:
        with record.open_regular(path) as f:
            raw = f.read(MAX_RUN_JSON_BYTES + 1)
    except OSError as err:
        reader.warn_skipped(path, f"{err.strerror or err}; {unusable}")
        return None, []
    if len(raw) > MAX_RUN_JSON_BYTES:
        reader.warn_skipped(path, f"larger than {MAX_RUN_JSON_BYTES >> 20} MB, so no run.json of tbscope's; {unusable}")
        return None, []
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as err:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        reader.warn_skipped(path, f"not JSON in UTF-8 ({err}); {unusable}")
        return None, []
    if not isinstance(meta, dict):
        reader.warn_skipped(path, f"a JSON {type(meta).__name__}, not an object; {unusable}")
        return None, []
    if "schema" not in meta and "id" not in meta:
        return None, []  # another tool's run.json
    if meta.get("schema") != SCHEMA_VERSION or not isinstance(meta.get("id"), str) or not meta["id"]:
        reader.warn_skipped(
            path, f"not a run.json of schema {SCHEMA_VERSION} with an id (schema {_shown(meta.get('schema'))}, "
            f"id {_shown(meta.get('id'))}); {unusable}",
        )  # fmt: skip
        return None, []
    return _checked(meta)


def _warn_fields(run_dir: Path, problems: list[str], consequence: str) -> None:
    more = f" and {len(problems) - _PROBLEMS_SHOWN} more" if len(problems) > _PROBLEMS_SHOWN else ""
    warnings.warn(
        f"tbscope: {run_dir / RUN_FILE}: ignored what is missing or not of the type tbscope writes: "
        f"{', '.join(problems[:_PROBLEMS_SHOWN])}{more}; {consequence}",
        RuntimeWarning,
        stacklevel=3,
    )


def run_meta(run_dir: Path, logdir: Path | None = None) -> dict[str, Any] | None:
    """The ``run.json`` of ``run_dir`` with only the fields that have the types tbscope writes, or None
    when the folder holds no tbscope run.json.

    Nothing in it is trusted: a run.json that is not a regular file inside ``logdir`` (resolved; default
    ``run_dir``), not UTF-8, not JSON, or not an object with tbscope's schema and an id, is none, with a
    warning naming it; a field of another type (a pid that is text, a summary that is a list, a time
    that is no time) is left out, and one warning names the file and the fields. A JSON object with
    neither a schema nor an id is another tool's run.json: None, without a word.
    """
    meta, problems = _read_run_json(run_dir, logdir or run_dir.resolve(), "its folder is shown from its event files")
    if problems:
        _warn_fields(run_dir, problems, "the rest of the run is shown")
    return meta


def find_runs(root: Path, experiment: str | None = None) -> list[RunDir]:
    """Every tbscope run directly under ``root/<experiment>/``, oldest first, symlinks not followed, each
    run.json read as ``run_meta`` reads it. A run whose run.json has no valid
    created time, experiment or status is left out, so never deleted, with the warning that names it."""
    logdir = root.resolve()

    def folders(parent: Path) -> list[Path]:
        try:
            return sorted(p for p in parent.iterdir() if not p.is_symlink() and p.is_dir())
        except OSError as err:
            reader.warn_skipped(parent, f"cannot list this folder: {err.strerror or err}")
            return []

    found = []
    for experiment_dir in [root / experiment] if experiment else folders(root):
        if experiment_dir.is_symlink() or not experiment_dir.is_dir():
            continue
        for run_dir in folders(experiment_dir):
            if not os.path.lexists(run_dir / RUN_FILE):
                continue
            meta, problems = _read_run_json(run_dir, logdir, "prune leaves its folder alone")
            if meta is None or run_dir.name.split("-")[1:2] != [meta["id"]]:
                continue  # not a tbscope run: never ours to touch
            complete = all(key in meta for key in _REQUIRED)
            if problems:
                _warn_fields(
                    run_dir,
                    problems,
                    "prune judges the run by the rest" if complete else "prune never deletes this run",
                )
            if complete:
                found.append(RunDir(run_dir, meta, effective_status(meta), dir_bytes(run_dir)))
    return sorted(found, key=lambda r: r.created)


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
    return deleted


# -- units the CLI and the docs speak ---------------------------------------------------------------

_UNITS = {"": 1, "B": 1, "K": 1e3, "KB": 1e3, "M": 1e6, "MB": 1e6, "G": 1e9, "GB": 1e9, "T": 1e12, "TB": 1e12,
          "KIB": 1024, "MIB": 1024**2, "GIB": 1024**3, "TIB": 1024**4}  # fmt: skip
_DURATIONS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_bytes(text: str) -> int:
    """``"20GB"`` -> 20_000_000_000; ``"1.5GiB"``, ``"500M"`` and plain numbers too."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", text)
    if not match or match.group(2).upper() not in _UNITS:
        raise ValueError(f"not a size: {text!r} (examples: 500MB, 20GB, 1.5GiB)")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def parse_duration(text: str) -> timedelta:
    """``"30d"`` -> 30 days; s, m, h, d and w."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([smhdw])\s*", text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (examples: 12h, 30d, 2w)")
    return timedelta(seconds=float(match.group(1)) * _DURATIONS[match.group(2)])


def format_bytes(n: float) -> str:
    """``1234567`` -> ``"1.2 MB"``."""
    if abs(n) < 1000:
        return f"{n:.0f} B"
    for unit in ("KB", "MB", "GB"):
        n /= 1000
        if abs(n) < 1000:
            return f"{n:.1f} {unit}"
    return f"{n / 1000:.1f} TB"


def format_duration(seconds: float) -> str:
    """``3725`` -> ``"1h02m"``."""
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
