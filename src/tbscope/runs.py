"""The live run: ``tbscope.init`` makes one, with its directory, its writer and its ``run.json``.

``run.json`` is always whole: it is written to a temporary file and renamed over the old one, at every
flush of the writer (a heartbeat, per-tag scalar statistics, bytes on disk) and when the run ends
(its status). Reading runs back is ``rundir``'s; deleting old ones is ``retention``'s.
Nothing here imports torch.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import enum
import json
import math
import os
import re
import secrets
import socket
import subprocess
import sys
import threading
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePath
from types import TracebackType
from typing import Any

from tensorboard.compat.proto.event_pb2 import Event, SessionLog

from tbscope import atomic, remote, schema, tagstats
from tbscope.cli.units import format_bytes
from tbscope.integrations import distributed
from tbscope.integrations.hydra import hydra_job, name_from_overrides
from tbscope.pipeline import end_status, on_exit, warn_once
from tbscope.policy import Budget, Cadence, Spaced
from tbscope.retention import Retention, apply_retention
from tbscope.rundir import (
    END_STATUSES,
    RUN_FILE,
    SCHEMA_VERSION,
    dir_bytes,
    headline_metrics,
    process_identity,
    read_meta,
)
from tbscope.spool import Upload, reachable
from tbscope.summaries.hparams import HParamValue, flatten
from tbscope.writer import NullWriter, Writer

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# A run folder's leading number (see _create_run_dir); folders of tbscope before it start with a UTC time.
_NUMBERED = re.compile(r"^(\d+)-")
# An event file's name as ``pipeline.event_file_name`` makes it: time, host, pid, counter.
_EVENT_FILE = re.compile(r"^events\.out\.tfevents\.\d+\.(?P<host>.+)\.(?P<pid>\d+)\.\d+")


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


# Longest experiment or run name: a run folder, "<n>-<name>", stays under the 255 bytes file systems allow.
MAX_NAME_CHARS = 200


def check_name(what: str, name: str) -> None:
    """Raise a ValueError unless ``name`` is a plain name: no path separators, no ``..``, not too long."""
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise ValueError(
            f"init: {what} must be a plain name of letters, digits, '.', '_' and '-' (no path separators "
            f"or '..'), got {name!r}"
        )
    if len(name) > MAX_NAME_CHARS:
        raise ValueError(f"init: {what} must be at most {MAX_NAME_CHARS} characters, got {len(name)}")


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


# A tensor or an array with more values than this is stored as a description, not its values.
_MAX_ARRAY_VALUES = 100


def _jsonable(value: Any, where: str, texted: list[str]) -> Any:
    """``value`` as run.json holds it, the way Lightning's loggers store hyperparameters: a Namespace or a
    dataclass as a dict, a tensor or an array of one value as that number and a larger one as the text of
    its values (its shape, past ``_MAX_ARRAY_VALUES``), a class or a function as its qualified name, and
    anything else as its text, its place noted in ``texted``. Never raises: a config never stops a run."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        return value if not isinstance(value, float) or math.isfinite(value) else str(value)
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, argparse.Namespace):
        value = vars(value)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, f"{where}[{k!r}]", texted) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v, f"{where}[{i}]", texted) for i, v in enumerate(value)]
    if hasattr(value, "ndim") and hasattr(value, "tolist") and hasattr(value, "shape"):  # a tensor, an array
        size = math.prod(value.shape)
        if size == 1:
            return _jsonable(value.item(), where, texted)
        if size <= _MAX_ARRAY_VALUES:
            return str(value.tolist())
        return f"{type(value).__name__} of shape {tuple(value.shape)}"
    if isinstance(value, type) or callable(value):
        name = getattr(value, "__qualname__", None) or getattr(value, "__name__", None)
        if isinstance(name, str):
            return f"{getattr(value, '__module__', None) or ''}.{name}".lstrip(".")
    texted.append(f"{where} ({type(value).__name__})")
    try:
        return str(value)
    except Exception:  # a broken __str__ is still no reason to stop a run
        return f"<{type(value).__name__}>"


def plain_config(config: Any, where: str = "config") -> dict[str, Any]:
    """``config`` (see ``config_as_dict``) as run.json holds it (see ``_jsonable``), with one warning
    naming what was stored as its text."""
    texted: list[str] = []
    plain = _jsonable(config_as_dict(config), where, texted)
    if texted:
        warnings.warn(
            f"tbscope: stored as text, which run.json and the HParams dashboard can hold: {', '.join(texted)}",
            RuntimeWarning,
            stacklevel=3,
        )
    return dict(plain)


def write_json_atomically(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` as JSON to ``path`` so that a reader, or a kill, never sees half a file."""
    atomic.write_text(path, json.dumps(data, indent=1, allow_nan=False))


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


# -- the root's HParams columns ----------------------------------------------------------------------


class _ColumnsRefresher:
    """Refreshes runs roots' HParams columns (``schema.refresh``) on a thread of its own, one root at a
    time, so that the writer's thread never waits on the root's lock: another process may hold it for as
    long as it is stopped. A refresh that cannot take the lock gives up after ``schema.LOCK_SECONDS``
    with one warning per root; the run asks again at its next flush, and that refresh catches up."""

    def __init__(self) -> None:
        self._start()
        os.register_at_fork(after_in_child=self._start)  # a forked child has no thread, and no lock held

    def _start(self) -> None:
        self._lock = threading.Lock()
        self._wanted: dict[Path, Future[bool]] = {}
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def request(self, root: Path) -> Future[bool]:
        """Refresh ``root``'s columns soon; the future says whether it was done (False: gave up, warned)."""
        with self._lock:
            future = self._wanted.get(root)
            if future is None:
                future = self._wanted[root] = Future()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="tbscope-hparams-columns", daemon=True)
                self._thread.start()
        self._wake.set()
        return future

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            with self._lock:
                wanted, self._wanted = self._wanted, {}
            for root, future in wanted.items():
                try:
                    schema.refresh(root)
                except Exception as err:  # the dashboard's columns are never worth a failed run, nor this thread
                    warn_once(
                        ("hparams-columns", str(root)),
                        f"tbscope: could not update the HParams columns of {root}: {err}. Training goes on; a "
                        "later flush tries again",
                    )
                    future.set_result(False)
                else:
                    future.set_result(True)


_columns = _ColumnsRefresher()


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
        cadence: Cadence | Spaced | None,
        purge_step: int | None,
        flat_config: Mapping[str, HParamValue],
        earlier: Mapping[str, Mapping[str, Any]] | None = None,
        rank: int = 0,
        all_ranks: bool = False,
        writer_options: Mapping[str, Any] | None = None,
        upload: Upload | None = None,
    ) -> None:
        self.dir = run_dir
        self._upload = upload  # of a run on a URL root: sends the spool that holds ``dir``
        # where the run lives in object storage (None: ``dir`` is where it lives)
        self.url = None if upload is None else f"{upload.url}/{run_dir.relative_to(upload.dir).as_posix()}"
        self.rank = rank  # under torch.distributed: only rank 0 writes run.json and the run's own events
        self._earlier = dict(earlier or {})  # a resumed run's summary of what it logged before
        # a resumed run's count of the heavy calls its earlier attempts did not log
        self._skipped_before = {tag: n for tag, n in dict(meta.get("skipped") or {}).items() if isinstance(n, int)}
        self.id: str = meta["id"]
        self.experiment: str = meta["experiment"]
        self.name: str | None = meta["name"]
        self._meta = meta
        self._lock = threading.RLock()  # reentrant: a SIGTERM handler may end the run in the middle of a save
        self._finished = False
        self._ending: str | None = None  # the status of an end under way (see finish)
        self._pid = os.getpid()
        self._note: Path | None = None  # rank 0's note for the other ranks, removed when the run ends
        self._columns: object = None  # what this run last told the root's HParams columns (see _save)
        self._published: Future[bool] | None = None  # that refresh, done on another thread
        self.writer: Writer
        if rank:
            self.writer = (
                Writer(run_dir / f"rank{rank}", cadence=cadence, budget=budget, **(writer_options or {}))
                if all_ranks
                else NullWriter(run_dir)
            )
            self._session, self._finished = True, False
            distributed.report(run_dir, rank, "running")
            on_exit(self.finish)
            return
        self._files_before = {path.name for path in run_dir.glob("events.out.tfevents.*")}  # a resumed run's
        self.writer = Writer(
            run_dir, purge_step=purge_step, cadence=cadence, budget=budget, on_flush=self._update,
            on_flushed=self._columns_shown, spool=upload, **(writer_options or {}),
        )  # fmt: skip
        # The run's HParams session: TensorBoard shows the first one a run writes, so without a config
        # it waits for add_config (a Lightning logger learns the hyperparameters after the run starts),
        # or, failing that, for the end of the run.
        self._session = bool(flat_config)
        if self._session:
            self.writer.add_hparams(flat_config, {})
        self._save()
        if upload is not None:
            upload.start()
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
        try:
            given = plain_config(config)
        except TypeError as err:  # mid-run: a config that is no mapping is reported, never raised
            warnings.warn(f"tbscope: add_config ignored: {err}", RuntimeWarning, stacklevel=2)
            return
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

    def purge(self, step: int) -> None:
        """Hide every value the run logged at or after ``step``, as ``Resume(run, step=step)`` does: for a
        resumed run whose first step is known only when it logs it (Lightning's ``fit(ckpt_path=...)``).
        Call it before the resumed run logs anything.

        Example:
            >>> import tempfile, tbscope
            >>> with tbscope.init("cnn", root=tempfile.mkdtemp()) as run:
            ...     for step in range(5):
            ...         run.writer.add_scalar("loss", float(step), step)
            >>> with tbscope.init("cnn", root=run.dir.parent.parent, resume=run.dir) as resumed:
            ...     resumed.purge(3)  # restarted from step 3: steps 3 and 4 are logged again
            ...     for step in (3, 4):
            ...         resumed.writer.add_scalar("loss", 10.0 + step, step)
            >>> tbscope.read_scalars(run.dir)["value"].tolist()
            [0.0, 1.0, 2.0, 13.0, 14.0]
        """
        self.writer.flush()  # what was logged goes first, then the purge, then what comes after it
        self.writer._get_file_writer().add_event(Event(session_log=SessionLog(status=SessionLog.START)), step)
        self.writer.flush()
        if not self.rank:
            with self._lock:
                self._earlier = {tag: stats for tag, stats in _logged_before(self.dir, step).items()}
                if self._meta.get("resumed"):
                    self._meta["resumed"][-1]["step"] = step  # run.json: where it was resumed

    def _save(self) -> None:
        if os.getpid() != self._pid or self.rank:
            return  # a forked child (a DataLoader worker), or another rank: run.json is not theirs to write
        with self._lock:
            self._meta["heartbeat"] = _now()
            summary = tagstats.merge(self._earlier, self.writer.scalar_stats())
            self._meta["summary"] = tagstats.merge(summary, self._workers_stats())
            self._meta["bytes"] = dir_bytes(self.dir)
            lost = self.writer.lost_values()
            if lost or "lost" in self._meta:
                self._meta["lost"] = lost  # the values not on disk, as the writer's warning counts them
            if self._meta.get("world_size"):  # a torchrun job: how its other ranks stand
                self._meta["ranks"] = distributed.rank_states(self.dir, ending=self._meta["status"] != "running")
            now = dict(self.writer.gate.skipped)  # one step under the GIL: the training thread adds to it
            if now or self._skipped_before:
                before = self._skipped_before
                self._meta["skipped"] = {tag: before.get(tag, 0) + now.get(tag, 0) for tag in {**before, **now}}
            write_json_atomically(self.dir / RUN_FILE, self._meta)
            columns = (
                sorted(self._meta["config_flat"].items(), key=lambda item: item[0]),
                headline_metrics(self._meta),
            )
        published = self._published
        if columns != self._columns or (published is not None and published.done() and not published.result()):
            self._columns = columns  # new keys or metrics, or a refresh that gave up: the root's columns again
            self._published = _columns.request(self.dir.parent.parent)

    def _workers_stats(self) -> tagstats.RunStats:
        """What forked children (DataLoader workers) logged through the run's writer, read back from the
        event files each of them wrote in the run's folder: they cannot write run.json themselves."""
        host = socket.gethostname()
        files = sorted(
            path for path in self.dir.glob("events.out.tfevents.*")
            if (match := _EVENT_FILE.match(path.name)) and match["host"] == host
            and int(match["pid"]) != self._pid and path.name not in self._files_before
        )  # fmt: skip
        if not files:
            return {}
        import pandas as pd

        from tbscope.reader import run_scalars

        rows = run_scalars(files, None, purge=False, use_cache=True, progress=lambda _: None)
        tags = pd.Categorical.from_codes(rows.tag, rows.tags)
        return tagstats.of_frame(pd.DataFrame({"tag": tags, "step": rows.step, "value": rows.value}))

    def _columns_shown(self) -> None:
        """Wait, boundedly, for the HParams columns asked for by the last save (see ``_ColumnsRefresher``)."""
        if self._published is not None:
            with contextlib.suppress(Exception):
                self._published.result(timeout=2 * schema.LOCK_SECONDS)

    def _update(self) -> None:
        if self._ending is None:  # the close's own flush leaves run.json to finish's one write
            self._save()

    def finish(self, status: str = "finished") -> None:
        """End the run: write everything, close the writer and record ``status`` in run.json.

        ``status`` is "finished", "failed" or "interrupted". A second call does nothing, except where
        it interrupted the first (a SIGTERM during ``finish()``): then it completes that end, with the
        first call's status, before the process goes.
        """
        if status not in END_STATUSES:
            raise ValueError(f"finish: status must be one of {', '.join(END_STATUSES)}, got {status!r}")
        if self._finished:
            if self._upload is not None:  # a SIGTERM while the end was being sent: wait for the same rounds
                self._upload.close()
            return
        if self._ending is not None:
            status = self._ending
        self._ending = status
        if self.rank:
            self.writer.close()
            distributed.report(self.dir, self.rank, status)
            self._finished = True
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
        self._finished = True
        self._columns_shown()  # the columns show this run when the script ends
        if self._upload is not None:
            self._upload.close()  # run.json's end too; a second finish (a SIGTERM) waits for the same rounds

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.finish(end_status(exc_type))

    def __repr__(self) -> str:
        return f"Run({str(self.dir)!r}, status={self.status!r})"


def numbered(experiment_dir: Path, folder: str, elsewhere: Sequence[str] = ()) -> int:
    """The next free number ``n`` for a folder pattern such as ``version_{n}`` in ``experiment_dir``: one past
    the largest taken, from 0, as Lightning numbers its versions. ``elsewhere``: folder names taken too (the
    runs of a URL root in the store)."""
    head, _, tail = folder.partition("{n}")
    pattern = re.compile(re.escape(head) + r"(\d+)" + re.escape(tail) + "$")
    taken = [int(match[1]) for name in elsewhere if (match := pattern.match(name))]
    with contextlib.suppress(OSError):
        taken += [int(match[1]) for p in experiment_dir.iterdir() if (match := pattern.match(p.name)) and p.is_dir()]
    return max(taken, default=-1) + 1


def _create_run_dir(
    experiment_dir: Path, name: str | None, folder: str | None = None, elsewhere: Sequence[str] = ()
) -> tuple[Path, str]:
    """A new, empty run directory, ``<n>-<name>`` (``<n>-<id>`` without a name): ``n`` counts the
    experiment's runs in the order they start (taken under the root's lock, so concurrent starts never
    share one), and the name comes right after it, where TensorBoard's run selector, legends and HParams
    table show it. ``folder`` names it instead: ``{n}`` in it is the next free number (``version_{n}``),
    and a plain name is taken as it is, an empty folder of that name included. ``elsewhere``: folder names
    taken too (the runs of a URL root in the store)."""
    run_id = secrets.token_hex(4)
    lock = experiment_dir.parent / schema.HOME / schema.LOCK
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(atomic.locked(lock, schema.LOCK_SECONDS))
        except OSError as err:  # a read-only root's .tbscope, or a file of that name: the run starts anyway
            warnings.warn(
                f"tbscope: cannot take the runs root's lock {lock}: {err}; the run starts without it (mkdir "
                "still gives it a folder of its own; one started at the same moment may be numbered out of order)",
                RuntimeWarning,
                stacklevel=4,
            )
        if folder is not None and "{n}" not in folder:
            path = experiment_dir / folder
            path.mkdir(exist_ok=True)
            return path, run_id
        if folder is not None:
            number = numbered(experiment_dir, folder, elsewhere)
        else:
            names = [*elsewhere, *(p.name for p in experiment_dir.iterdir())]
            taken = [int(match[1]) for name in names if (match := _NUMBERED.match(name))]
            number = max(taken, default=0) + 1
        while True:
            path = experiment_dir / (folder.replace("{n}", str(number)) if folder else f"{number:04d}-{name or run_id}")
            try:
                path.mkdir()
            except FileExistsError:  # a folder made without the lock
                number += 1
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
    cadence: Cadence | Spaced | None = None,
    all_ranks: bool = False,
    folder: str | None = None,
    join_ranks: bool = True,
    writer_options: Mapping[str, Any] | None = None,
) -> Run:
    """Start a run of ``experiment``: its directory, its writer, its run.json and its hyperparameters.

    The run goes to ``root/experiment/<n>-<name>`` (``0003-baseline``: the experiment's third run;
    ``<n>-<id>`` without a name), so that folders list in start order and TensorBoard shows the name; any
    number of processes may start runs of one experiment at once and each gets its own directory.
    Inside a Hydra app the name defaults to the command line's overrides (``lr-0.01_model.width-16``)
    and run.json records Hydra's output directory. ``config`` (a dict, dataclass,
    ``argparse.Namespace`` or OmegaConf config) is stored in run.json and becomes the run's HParams
    session, flattened with "/". ``metrics`` names the scalar tags that are the run's headline
    metrics (default: every tag under ``val/``, ``test/`` or ``metrics/``). ``budget`` bounds the
    run's size (default ``Budget()``: 1 GiB); ``retention`` deletes old ended runs first;
    ``resume`` continues an earlier run (see ``Resume``); ``cadence`` (default ``Spaced()``) says at
    which steps images, histograms and other heavy data are kept: a tag's first call always, later ones
    spaced out as the run grows; each call not kept is counted in run.json's ``skipped``. ``folder``
    names the run's folder instead of ``<n>-<name>``: ``{n}`` in it is the next free number
    (``version_{n}`` numbers runs as Lightning does), and a folder that holds a run already continues
    it, as ``resume`` would. ``writer_options`` are passed to the run's ``Writer`` (``flush_secs``,
    ``max_queue``, ``filename_suffix``, ``strict``). Under ``torch.distributed`` every rank joins rank
    0's run; ``join_ranks=False`` starts this process's run alone, waiting for no other rank (Lightning's
    logger: Lightning logs from rank 0 only).

    ``root`` may be a URL of object storage (``s3://bucket/runs``, any fsspec URL; ``pip install
    tbscope[s3]``): the run is written to a local spool (``run.dir``) and sent to ``run.url`` in the
    background (see ``tbscope.spool``); a missing bucket or refused credentials are an error here. Such a
    root takes no ``resume`` or ``retention`` (``tbscope prune URL`` deletes old runs there), and under
    ``torch.distributed`` needs ``join_ranks=False``.

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
    if folder is not None:
        check_name("folder", folder.replace("{n}", "0"))
    url = str(root).rstrip("/") if remote.is_url(str(root)) else None
    upload, elsewhere = None, []
    if url is not None:
        if resume is not None or retention is not None or (join_ranks and distributed.place() is not None):
            raise ValueError(
                f"init: root {url!r} is a URL: it takes no resume or retention (`tbscope prune {url}` deletes old "
                "runs), and under torch.distributed it needs join_ranks=False"
            )
        fs, path = reachable(url)
        with contextlib.suppress(FileNotFoundError):  # the experiment's runs so far: their numbers are taken
            elsewhere = [PurePath(e).name for e in fs.ls(f"{path}/{experiment}", detail=False, refresh=True)]
        upload = Upload(url)
        root = upload.dir
    root_path = Path(root)
    if root_path.exists() and not root_path.is_dir():
        raise NotADirectoryError(f"init: root {str(root_path)!r} exists and is not a directory")
    given = plain_config(config)
    flat = flatten(given)
    if metrics is not None and (isinstance(metrics, str) or not all(isinstance(m, str) for m in metrics)):
        raise TypeError(f"init: metrics must be a list of scalar tags, got {metrics!r}")
    budget = budget if budget is not None else Budget()
    cadence = cadence if cadence is not None else Spaced()
    experiment_dir = root_path / experiment
    experiment_dir.mkdir(parents=True, exist_ok=True)
    seat = distributed.place()  # (rank, world size) in a job of several processes
    place = seat if join_ranks else None
    if place is not None and place[0] != 0:  # another rank of a torchrun job: rank 0's run
        run_dir = distributed.receive(experiment_dir, place[0])
        seen = read_meta(run_dir) or {"id": run_dir.name, "experiment": experiment, "name": name, "status": "running"}
        return Run(run_dir, seen, budget, cadence, None, {}, rank=place[0], all_ranks=all_ranks,
                   writer_options=writer_options)  # fmt: skip
    resume_target = Resume(resume) if isinstance(resume, str | os.PathLike) else resume
    if resume_target is None and folder is not None and (experiment_dir / folder / RUN_FILE).is_file():
        resume_target = Resume(experiment_dir / folder)
    purge_step = None
    if resume_target is not None:
        run_dir = _find_run(root_path, experiment, resume_target.run)
        meta = read_meta(run_dir)
        assert meta is not None
        meta.setdefault("resumed", []).append({"at": _now(), "step": resume_target.step, "pid": os.getpid()})
        purge_step = resume_target.step
        earlier = _logged_before(run_dir, purge_step)
        if config is None and isinstance(meta.get("config"), dict):  # resumed as it was configured
            given = meta["config"]
            flat = flatten(given)
    else:
        run_dir, run_id = _create_run_dir(experiment_dir, name, folder, elsewhere)
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
        world_size=seat[1] if seat is not None else None,
        metrics=list(metrics) if metrics is not None else None,
    )
    run = Run(run_dir, meta, budget, cadence, purge_step, flat, earlier, writer_options=writer_options, upload=upload)
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
    from tbscope.reader import read_scalars

    frame = read_scalars(run_dir, runs=["."])
    return tagstats.of_frame(frame if step is None else frame[frame["step"] < step])
