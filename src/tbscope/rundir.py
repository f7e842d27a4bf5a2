"""A run on disk: its ``run.json`` read with suspicion, the status a reader should believe, its size,
and finding the runs under a root. What ``ls``, ``compare``, ``du``, ``prune`` and the Profile tab need
of a run, without the writer: nothing here imports torch, pandas or the writer's pipeline.

A run lives at ``root/experiment/<n>-<name>`` or ``<n>-<id>`` (made by tbscope before run numbers:
``<UTC time>-<id>[-<name>]``). Its ``run.json`` holds what the run is
(id, experiment, config, code version, host) and how it is going (status, a heartbeat, per-tag scalar
statistics and bytes on disk). Readers tell a run that died without a word ("crashed") from one still
running by its pid and its heartbeat.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import socket
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from tbscope import reader, tagstats
from tbscope.logdir import open_inside

SCHEMA_VERSION = 1
RUN_FILE = "run.json"
END_STATUSES = ("finished", "failed", "interrupted")
# The folder in a run where the other ranks of a torchrun job record themselves (rank 0 copies them to run.json).
RANKS = ".ranks"
# What retention and prune may delete: runs that ended, or whose process is proved gone.
DELETABLE = (*END_STATUSES, "crashed")
# A running run's heartbeat is rewritten at every flush (5 s by default). One this old means the
# process is gone, or frozen, even where its pid cannot be checked (another host).
STALE_AFTER = timedelta(minutes=10)
# Scalar tags shown as a run's headline metrics when ``metrics=`` is not given.
DEFAULT_METRIC_PREFIXES = ("val/", "test/", "metrics/")


def parse_time(text: str) -> datetime:
    """A ``run.json`` timestamp as an aware datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


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


def proved_dead(meta: Mapping[str, Any]) -> bool:
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
    gone (see ``proved_dead``). One whose process cannot be checked (another host, a container) and
    whose heartbeat is older than ``STALE_AFTER`` is "stale": maybe gone, maybe stopped; prune keeps it."""
    status = meta.get("status")
    if not isinstance(status, str):
        return "unknown"
    if status != "running":
        return status
    if proved_dead(meta):
        return "crashed"
    if _same_machine_and_namespace(meta):
        return "running"  # its process is there: training, or stopped (Ctrl-Z, a scheduler's suspend)
    beat = read_time(meta.get("heartbeat"))
    silent = beat is None or (now or datetime.now(timezone.utc)) - beat > STALE_AFTER
    return "stale" if silent else "running"


def rank_statuses(meta: Mapping[str, Any], run_dir: Path | None = None) -> dict[str, str]:
    """How the other ranks of a ``torchrun`` job stand, as rank 0 last recorded them in run.json (``ranks``):
    a rank recorded "running" whose process is proved gone is "crashed", unless its own record in the run's
    ``RANKS`` folder (read when ``run_dir`` is given) says how it ended after rank 0 last wrote."""
    statuses = {}
    for rank, state in meta.get("ranks", {}).items():
        status = state["status"]
        if status == "running" and proved_dead(state):
            status = _own_end(run_dir, rank) if run_dir is not None else None
        statuses[rank] = status or "crashed"
    return statuses


def _own_end(run_dir: Path, rank: str) -> str | None:
    """The end status rank ``rank`` recorded for itself, if any (read only from inside the run's folder)."""
    try:
        with open_inside(run_dir / RANKS / f"{int(rank)}.json", run_dir) as f:
            own = json.loads(f.read(1 << 16).decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    status = own.get("status") if isinstance(own, dict) else None
    return status if status in END_STATUSES else None


def dir_bytes(path: Path) -> int:
    """Bytes of the files under ``path``, not following symbolic links."""
    total = 0
    for folder, _, files in os.walk(path, followlinks=False):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(folder, name)).st_size
    return total


def headline_metrics(meta: Mapping[str, Any]) -> list[str]:
    """The scalar tags that are a run's headline metrics: ``metrics=`` if given, else val/test/metrics tags."""
    named = meta.get("metrics")
    tags = list(meta.get("summary", {}))
    if named is not None:
        return [t for t in named if t in tags]
    return [t for t in tags if t.startswith(DEFAULT_METRIC_PREFIXES)]


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
    if check("pid", tagstats.is_count(meta.get("pid"), 1 << 31) and meta["pid"] > 0):
        clean["pid"] = meta["pid"]
    else:
        clean.pop("host", None)  # no pid to check on this host: the heartbeat alone tells a dead run
    if check("bytes", tagstats.is_count(meta.get("bytes")) and meta["bytes"] >= 0):
        clean["bytes"] = meta["bytes"]
    if check("metrics", isinstance(meta.get("metrics"), list) and all(isinstance(m, str) for m in meta["metrics"])):
        clean["metrics"] = meta["metrics"]
    if check("config", isinstance(meta.get("config"), Mapping)):
        clean["config"] = meta["config"]
    if check("summary", isinstance(meta.get("summary"), Mapping)):
        clean["summary"] = {}
        for tag, stats in meta["summary"].items():
            if tagstats.is_valid(stats):
                clean["summary"][tag] = dict(stats)
            else:
                problems.append(f"summary[{_shown(tag)}] ({_shown(stats)})")
    if check("ranks", isinstance(meta.get("ranks"), Mapping)):
        clean["ranks"] = {}
        for rank, state in meta["ranks"].items():
            if isinstance(state, Mapping) and isinstance(state.get("status"), str):
                clean["ranks"][str(rank)] = _identity(state)
            else:
                problems.append(f"ranks[{_shown(rank)}] ({_shown(state)})")
    if check("skipped", isinstance(meta.get("skipped"), Mapping)):
        clean["skipped"] = {}
        for tag, count in meta["skipped"].items():
            if tagstats.is_count(count):
                clean["skipped"][tag] = count
            else:
                problems.append(f"skipped[{_shown(tag)}] ({_shown(count)})")
    if check("config_flat", isinstance(meta.get("config_flat"), Mapping)):
        clean["config_flat"] = {}
        for key, value in meta["config_flat"].items():
            if isinstance(value, bool | str) or tagstats.is_number(value):
                clean["config_flat"][key] = value
            else:
                problems.append(f"config_flat[{_shown(key)}] ({_shown(value)})")
    return clean, problems


def _identity(state: Mapping[str, Any]) -> dict[str, Any]:
    """A rank's record in run.json: its status, and the fields that prove its process gone, where valid."""
    kept = {key: state[key] for key in ("status", "host", "pid_namespace", "boot_id", "pid_start")
            if isinstance(state.get(key), str)}  # fmt: skip
    if tagstats.is_count(state.get("pid"), 1 << 31) and state["pid"] > 0:
        kept["pid"] = state["pid"]
    return kept


def _read_run_json(run_dir: Path, logdir: Path, unusable: str) -> tuple[dict[str, Any] | None, list[str]]:
    """``run_meta``'s reading: the checked fields and the problems with the others, or None (told in a
    warning that ends with ``unusable``, what becomes of the folder) when it is no tbscope run.json."""
    path = run_dir / RUN_FILE
    why = reader.why_unreadable(path, logdir)
    if why is not None:
        reader.warn_skipped(path, f"{why}; {unusable}")
        return None, []
    try:
        with open_inside(path, logdir, links=True) as f:
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


def names_run(folder: str, meta: Mapping[str, Any]) -> bool:
    """Whether a folder named ``folder`` is the one tbscope made for the run of run.json ``meta``:
    ``<n>-<name>``, ``<n>-<id>`` without a name, or, from tbscope before run numbers,
    ``<UTC time>-<id>[-<name>]``.

    Example:
        >>> names_run("0003-baseline", {"id": "1f2e3d4c", "name": "baseline"})
        True
        >>> names_run("20260101T000000Z-1f2e3d4c-x", {"id": "1f2e3d4c", "name": "x"})
        True
        >>> names_run("0003-copy", {"id": "1f2e3d4c", "name": "baseline"})
        False
    """
    number, _, rest = folder.partition("-")
    own = meta.get("name") or meta["id"]
    return (number.isdigit() and rest == own) or folder.split("-")[1:2] == [meta["id"]]


def run_folders(root: Path, experiment: str | None = None) -> list[Path]:
    """The folders ``root/<experiment>/<run>`` that hold something named run.json, in name order, symlinks
    not followed; a folder that cannot be listed is left out with a warning."""

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
        found += [run_dir for run_dir in folders(experiment_dir) if os.path.lexists(run_dir / RUN_FILE)]
    return found


def find_runs(root: Path, experiment: str | None = None) -> list[RunDir]:
    """Every tbscope run directly under ``root/<experiment>/``, oldest first, symlinks not followed, each
    run.json read as ``run_meta`` reads it. A run whose run.json has no valid
    created time, experiment or status is left out, so never deleted, with the warning that names it."""
    logdir = root.resolve()
    found = []
    for run_dir in run_folders(root, experiment):
        meta, problems = _read_run_json(run_dir, logdir, "prune leaves its folder alone")
        if meta is None or not names_run(run_dir.name, meta):
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
