"""Reader: any logdir's event files as pandas DataFrames, every scalar encoding, TensorBoard's purge, a cache.

A run is a directory holding event files, named by its path relative to the logdir ("." for the
logdir itself), as TensorBoard names runs. Only regular files that resolve inside the logdir are read;
anything else named like an event file (a dangling symlink, one pointing outside, a FIFO) and any file
that cannot be read is skipped with one warning naming it, and the rest is read. Each event file is
parsed once: its scalars are cached under the user's cache directory keyed on the file's path, size and
modification time, and a file that grew is parsed from where the last read stopped, once a fingerprint
of the part already parsed shows it is still the same file. Plain ``simple_value`` events (what torch,
tensorboardX, Lightning and tbscope write) are decoded in bulk; every other record goes through
TensorBoard's own protos. Nothing here imports torch.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import stat
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd
from tensorboard.compat.proto.event_pb2 import Event, SessionLog

from tbscope import cache, record, remote
from tbscope.logdir import file_kind, open_inside
from tbscope.profiler.trace import is_trace_file
from tbscope.summaries import histogram, hparams, image, pr_curve, scalar, text

COLUMNS = ["run", "tag", "step", "wall_time", "value"]
CACHE_VERSION = 3
# The scalars cache is kept under this many bytes, the entries used least recently deleted first, and
# entries of event files that no longer exist are deleted: ``read_scalars`` checks at most once an hour.
CACHE_MAX_BYTES = 1 << 30
PRUNE_EVERY_SECONDS = 3600.0
_PRUNED_STAMP = ".pruned"
# A cached file is the same file, grown, when these many bytes at the start and at the end of the
# part already parsed are unchanged (the end holds the last records' wall times, the start the first's).
_FINGERPRINT_BYTES = 4096
# A row's kind: a simple_value (always a scalar), or a one-element tensor that is a scalar only if
# its tag's plugin, told by the tag's first metadata anywhere in the run, is "scalars".
_SIMPLE, _TENSOR = 0, 1

Selection = str | Collection[str] | None
# Records decoded at once: bounds the reader's working memory (about 30 MB) whatever the file size.
_CHUNK_RECORDS = 1 << 16
# Reads that take longer than this show a progress line on a terminal.
PROGRESS_AFTER_SECONDS = 1.0


def cache_dir() -> Path:
    """Where parsed event files are cached (see ``tbscope.cache``)."""
    return cache.directory("scalars")


def is_event_file(name: str) -> bool:
    """TensorBoard's rule: an event file's name contains "tfevents"."""
    return "tfevents" in name


def warn_skipped(what: str | os.PathLike[str], why: str) -> None:
    """The one warning for something the reader left out: what it is, and why."""
    # One place for every such warning: Python's default filter then shows each one once, however many
    # readers (read_scalars, read_events, the catalog) meet the same damaged thing.
    warnings.warn(f"tbscope: skipped {os.fspath(what)}: {why}", RuntimeWarning, stacklevel=1)


def why_unreadable(path: Path, logdir: Path) -> str | None:
    """Why the reader must not read ``path`` (named like a file it reads), or None when it is a regular
    file that resolves inside ``logdir`` (itself resolved)."""
    try:
        info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode):
            try:
                target = path.resolve(strict=True)
            except (OSError, RuntimeError):  # RuntimeError: a symlink loop, before Python 3.13
                return f"a symbolic link to {os.readlink(path)}, which does not exist"
            if not target.is_relative_to(logdir):
                return f"a symbolic link to {target}, outside {logdir}"
            info = os.stat(target)
    except OSError as err:
        return err.strerror or str(err)
    if not stat.S_ISREG(info.st_mode):
        return f"{file_kind(info.st_mode)}, not a regular file"
    return None


def find_event_files(path: str | os.PathLike[str]) -> dict[str, list[Path]]:
    """``{run: [event files in name order]}`` under ``path``, runs named as TensorBoard names them.

    Only regular files that resolve inside ``path`` are listed: anything else named like an event file
    (a dangling symlink, a symlink to a file outside ``path``, a FIFO) is left out with a warning naming
    it, as is a folder that cannot be listed.
    """
    root = Path(path)
    if root.is_file():
        return {".": [root]}
    if not root.is_dir():
        return {}
    logdir = root.resolve()
    runs: dict[str, list[Path]] = {}

    def unlisted(err: OSError) -> None:
        warn_skipped(err.filename or root, f"cannot list this folder: {err.strerror or err}")

    for folder, dirs, files in os.walk(root, onerror=unlisted):
        dirs.sort()
        events = []
        for name in sorted(files):
            if not is_event_file(name):
                continue
            file = Path(folder) / name
            why = why_unreadable(file, logdir)
            if why is None:
                events.append(file)
            else:
                warn_skipped(file, why)
        if events:
            runs[os.path.relpath(folder, root)] = events
    return runs


def _selected(name: str, selection: Selection) -> bool:
    if selection is None:
        return True
    if isinstance(selection, str):
        return re.search(selection, name) is not None
    return name in selection


# -- one file -----------------------------------------------------------------------------------------


@dataclass
class FileScalars:
    """The scalar rows of one event file, with what the run-level purge needs to know."""

    tags: list[str] = field(default_factory=list)
    tag: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    step: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    wall_time: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    value: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    kind: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))
    record: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # ordinal in the file
    first_plugin: dict[str, str] = field(default_factory=dict)  # tag -> plugin of its first metadata
    restarts: list[tuple[int, int]] = field(default_factory=list)  # (ordinal, step) of SessionLog.START
    summary_steps: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))  # (ordinal, step)
    file_version: float = 0.0
    records: int = 0
    offset: int = 0
    skipped: int = 0
    first_bad_offset: int | None = None
    fingerprint: str = ""  # of the bytes before ``offset``: see ``_fingerprint``
    # Byte offsets of the records holding values that are no scalars (images, histograms, text, PR curves,
    # the HParams session): what ``read_events`` reads of a file the cache knows, without a pass over it.
    others: list[int] = field(default_factory=list)

    def damaged(self, offset: int) -> None:
        """Count one damaged record, at byte ``offset`` of the file."""
        self.skipped += 1
        if self.first_bad_offset is None or offset < self.first_bad_offset:
            self.first_bad_offset = offset

    def extend_rows(self, tags: list[str], tag: np.ndarray, step: np.ndarray, wall_time: np.ndarray,
                    value: np.ndarray, kind: np.ndarray, record: np.ndarray) -> None:  # fmt: skip
        """Append rows whose tag codes index ``tags``."""
        codes = {t: i for i, t in enumerate(self.tags)}
        remap = np.array([codes.setdefault(t, len(codes)) for t in tags] or [0], dtype=np.int32)
        self.tags = list(codes)
        self.tag = np.concatenate([self.tag, remap[tag]])
        self.step = np.concatenate([self.step, step])
        self.wall_time = np.concatenate([self.wall_time, wall_time])
        self.value = np.concatenate([self.value, value])
        self.kind = np.concatenate([self.kind, kind])
        self.record = np.concatenate([self.record, record])

    def extend(self, other: FileScalars) -> None:
        """Append the rows parsed from this file's new tail."""
        self.extend_rows(other.tags, other.tag, other.step, other.wall_time, other.value, other.kind, other.record)
        for t, plugin in other.first_plugin.items():
            self.first_plugin.setdefault(t, plugin)
        self.restarts += other.restarts
        self.others += other.others
        self.summary_steps = np.concatenate([self.summary_steps, other.summary_steps])
        self.file_version = self.file_version or other.file_version
        self.records, self.offset, self.fingerprint = other.records, other.offset, other.fingerprint
        self.skipped += other.skipped
        self.first_bad_offset = self.first_bad_offset if self.first_bad_offset is not None else other.first_bad_offset


def _fingerprint(file: BinaryIO, end: int) -> str:
    """What tells the first ``end`` bytes of a file from any other file's: its length, and the first and
    the last ``_FINGERPRINT_BYTES`` of them."""
    digest = hashlib.sha1(str(end).encode())
    file.seek(0)
    digest.update(file.read(min(end, _FINGERPRINT_BYTES)))
    tail = max(0, end - _FINGERPRINT_BYTES)
    file.seek(tail)
    digest.update(file.read(end - tail))
    return digest.hexdigest()


def parse_file(path: Path, offset: int = 0, first_record: int = 0, file: BinaryIO | None = None) -> FileScalars:
    """The scalars of event file ``path`` from byte ``offset`` (a record boundary) on; ``file`` is
    ``path`` already open, when it is."""
    if file is None:
        with open_inside(path, None) as opened:
            return parse_file(path, offset, first_record, opened)
    file.seek(offset)
    buf = file.read()
    report = record.ReadReport(str(path))
    starts, lengths, consumed = record.scan(buf, offset, report)
    out = FileScalars(
        records=first_record + len(starts),
        offset=offset + consumed,
        skipped=report.skipped,
        first_bad_offset=report.first_bad_offset,
    )
    data = np.frombuffer(buf, dtype=np.uint8)
    starts_array, lengths_array = np.asarray(starts), np.asarray(lengths)
    undecoded = []
    summary_steps = []
    for chunk in range(0, len(starts), _CHUNK_RECORDS):  # bounded working memory, whatever the file size
        bulk = scalar.decode_simple_events(
            data, starts_array[chunk : chunk + _CHUNK_RECORDS], lengths_array[chunk : chunk + _CHUNK_RECORDS]
        )
        out.extend_rows(bulk.tags, bulk.tag, bulk.step, bulk.wall_time, bulk.value,
                        np.zeros(len(bulk.value), np.int8), bulk.record + chunk + first_record)  # fmt: skip
        decoded = np.flatnonzero(bulk.decoded)
        steps = np.zeros(len(bulk.decoded), dtype=np.int64)
        steps[bulk.record] = bulk.step
        summary_steps.append(np.stack([decoded + chunk + first_record, steps[decoded]], axis=1))
        undecoded.append(np.flatnonzero(~bulk.decoded) + chunk)
    extra: dict[str, list[Any]] = {"tag": [], "step": [], "wall_time": [], "value": [], "kind": [], "record": []}
    codes = {t: i for i, t in enumerate(out.tags)}  # extra rows' tag codes extend the file's
    for i in np.concatenate(undecoded or [np.zeros(0, np.int64)]).tolist():
        start, length = starts[i], lengths[i]
        ordinal = first_record + int(i)
        at = offset + start - record.HEADER_SIZE
        try:
            event = Event.FromString(buf[start : start + length])
        except Exception:  # a record that checksums but is no Event: written by something else
            out.damaged(at)
            continue
        kind = event.WhichOneof("what")
        if kind == "file_version":
            with contextlib.suppress(ValueError):
                out.file_version = out.file_version or float(event.file_version.split(":")[-1])
        elif kind == "session_log" and event.session_log.status == SessionLog.START:
            out.restarts.append((ordinal, event.step))
        elif kind == "summary":
            summary_steps.append(np.array([[ordinal, event.step]], dtype=np.int64))
            other = False  # a value that is no scalar: images, histograms, text, PR curves, the HParams session
            for value in event.summary.value:
                if value.HasField("metadata") and value.tag not in out.first_plugin:
                    out.first_plugin[value.tag] = value.metadata.plugin_data.plugin_name
                which = value.WhichOneof("value")
                if which == "simple_value":
                    number, row_kind = float(value.simple_value), _SIMPLE
                elif which == "tensor":
                    try:
                        maybe = scalar.value_of(value, "scalars")  # kept only if the tag's plugin is scalars
                    except Exception:  # an unknown dtype, contents that do not fit it: TensorBoard's own error
                        if out.first_plugin.get(value.tag, "scalars") == "scalars":
                            out.damaged(at)
                        other = True
                        continue
                    if maybe is None:
                        other = True
                        continue
                    number, row_kind = maybe, _TENSOR
                else:
                    other = True
                    continue
                extra["tag"].append(codes.setdefault(value.tag, len(codes)))
                extra["step"].append(event.step)
                extra["wall_time"].append(event.wall_time)
                extra["value"].append(number)
                extra["kind"].append(row_kind)
                extra["record"].append(ordinal)
            if other:
                out.others.append(at)
    if extra["tag"]:
        out.extend_rows(list(codes), np.array(extra["tag"], np.int32), np.array(extra["step"], np.int64),
                        np.array(extra["wall_time"], np.float64), np.array(extra["value"], np.float64),
                        np.array(extra["kind"], np.int8), np.array(extra["record"], np.int64))  # fmt: skip
        order = np.argsort(out.record, kind="stable")
        for name in ("tag", "step", "wall_time", "value", "kind", "record"):
            setattr(out, name, getattr(out, name)[order])
    steps = np.concatenate(summary_steps or [np.zeros((0, 2), np.int64)])
    out.summary_steps = steps[np.argsort(steps[:, 0], kind="stable")]
    out.fingerprint = _fingerprint(file, out.offset)
    return out


# -- the cache ----------------------------------------------------------------------------------------


def _cache_path(path: Path) -> Path:
    key = hashlib.sha1(str(path.resolve()).encode()).hexdigest()
    return cache_dir() / f"{key}.scalars"


_ARRAYS = {"tag": np.int32, "step": np.int64, "wall_time": np.float64, "value": np.float64, "kind": np.int8,
           "record": np.int64, "summary_steps": np.int64}  # fmt: skip
# A cache entry's first line (its metadata) is never longer than this; a longer one is damage.
_MAX_META_BYTES = 1 << 26


def _load_cached(path: Path) -> tuple[FileScalars, dict[str, Any]] | None:
    """A cache entry: one JSON line, then the arrays in ``.npy`` format one after another. An entry
    that is damaged in any way is no entry: the file is parsed again, and the entry rewritten."""
    try:
        with open_inside(_cache_path(path), None) as f:
            meta = json.loads(f.readline(_MAX_META_BYTES))
            if meta.get("version") != CACHE_VERSION or meta.get("path") != str(path.resolve()):
                return None
            arrays = {name: np.load(f, allow_pickle=False) for name in _ARRAYS}
        parsed = FileScalars(
            tags=meta["tags"], first_plugin=meta["first_plugin"], restarts=[tuple(r) for r in meta["restarts"]],
            file_version=meta["file_version"], records=meta["records"], offset=meta["offset"],
            skipped=meta["skipped"], first_bad_offset=meta["first_bad_offset"], fingerprint=meta["fingerprint"],
            others=meta["others"], **arrays,
        )  # fmt: skip
        if not _consistent(parsed, meta):
            return None
    except Exception:  # whatever is wrong with a cache entry (a cache is only an optimisation)
        return None
    return parsed, meta


def _consistent(parsed: FileScalars, meta: dict[str, Any]) -> bool:
    """Whether a loaded cache entry is one ``_store`` could have written: types, shapes and codes in range."""
    rows = len(parsed.value)
    ints = (parsed.records, parsed.offset, parsed.skipped, meta["size"], meta["mtime_ns"])
    return (
        all(type(n) is int and n >= 0 for n in ints)
        and isinstance(parsed.fingerprint, str)
        and isinstance(parsed.file_version, int | float)
        and (parsed.first_bad_offset is None or type(parsed.first_bad_offset) is int)
        and isinstance(parsed.tags, list) and all(isinstance(t, str) for t in parsed.tags)
        and isinstance(parsed.first_plugin, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in parsed.first_plugin.items())
        and all(len(r) == 2 and all(type(n) is int for n in r) for r in parsed.restarts)
        and isinstance(parsed.others, list) and all(type(n) is int and 0 <= n < parsed.offset for n in parsed.others)
        and all(getattr(parsed, name).dtype == dtype for name, dtype in _ARRAYS.items())
        and all(getattr(parsed, name).shape == (rows,) for name in _ARRAYS if name != "summary_steps")
        and parsed.summary_steps.ndim == 2 and parsed.summary_steps.shape[1] == 2
        and bool(np.all((parsed.tag >= 0) & (parsed.tag < len(parsed.tags))))
        and bool(np.all((parsed.record >= 0) & (parsed.record < max(parsed.records, 1))))
        and bool(np.all((parsed.kind == _SIMPLE) | (parsed.kind == _TENSOR)))
    )  # fmt: skip


def _store(path: Path, parsed: FileScalars, size: int, mtime_ns: int) -> None:
    meta = {
        "version": CACHE_VERSION, "path": str(path.resolve()), "size": size, "mtime_ns": mtime_ns,
        "tags": parsed.tags, "first_plugin": parsed.first_plugin, "restarts": parsed.restarts,
        "file_version": parsed.file_version, "records": parsed.records, "offset": parsed.offset,
        "skipped": parsed.skipped, "first_bad_offset": parsed.first_bad_offset, "fingerprint": parsed.fingerprint,
        "others": parsed.others,
    }  # fmt: skip
    target = _cache_path(path)
    with contextlib.suppress(OSError):  # the cache is an optimisation: never fail a read over it
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(json.dumps(meta).encode() + b"\n")
            for name in _ARRAYS:
                np.save(f, getattr(parsed, name), allow_pickle=False)
        os.replace(tmp, target)


def file_scalars(path: Path, use_cache: bool = True, inside: Path | None = None) -> FileScalars:
    """The scalars of one event file, from the cache when the file has not changed, parsing only the
    new tail when it grew (the part already parsed unchanged), and all of it when it was replaced.
    Raises OSError when the file cannot be read, or (with ``inside``, a logdir) lies outside it."""
    with open_inside(path, inside, links=True) as file:
        info = os.fstat(file.fileno())
        cached = _load_cached(path) if use_cache else None
        if cached is None:
            parsed = parse_file(path, file=file)
        else:
            parsed, meta = cached
            if meta["size"] == info.st_size and meta["mtime_ns"] == info.st_mtime_ns:
                with contextlib.suppress(OSError):
                    os.utime(_cache_path(path))  # used now: the last to go when the cache is pruned
                return parsed
            if info.st_size >= parsed.offset and _fingerprint(file, parsed.offset) == parsed.fingerprint:
                parsed.extend(parse_file(path, parsed.offset, parsed.records, file))
            else:
                parsed = parse_file(path, file=file)
    if use_cache:
        _store(path, parsed, info.st_size, info.st_mtime_ns)
    return parsed


def _cached_source(entry: Path) -> str | None:
    """The event file a cache entry is of, or None for an entry that is damaged."""
    try:
        with open_inside(entry, None) as f:
            source = json.loads(f.readline(_MAX_META_BYTES)).get("path")
    except Exception:  # a damaged entry: useless, and pruned
        return None
    return source if isinstance(source, str) else None


def prune_cache(max_bytes: int | None = None) -> int:
    """Delete the scalars cache's entries that are of no use: damaged ones, those of event files that no
    longer exist, and then the least recently used until the cache holds at most ``max_bytes``
    (default ``CACHE_MAX_BYTES``). Returns the bytes freed. ``read_scalars`` calls it at most once
    every ``PRUNE_EVERY_SECONDS``.

    Example:
        >>> freed = prune_cache(max_bytes=100 * 2**20)  # keep at most 100 MB of parsed event files
    """
    limit = CACHE_MAX_BYTES if max_bytes is None else max_bytes
    try:
        listing = list(os.scandir(cache_dir()))
    except OSError:
        return 0
    kept: list[tuple[float, int, str]] = []
    freed = 0
    now = time.time()
    for item in listing:
        try:
            info = item.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode):
            continue
        if item.name.endswith(".scalars"):
            source = _cached_source(Path(item.path))
            if source is not None and os.path.exists(source):
                kept.append((info.st_mtime, info.st_size, item.path))
                continue
        elif not (item.name.endswith(".tmp") and now - info.st_mtime > PRUNE_EVERY_SECONDS):
            continue  # not an entry, or one being written now
        with contextlib.suppress(OSError):
            os.unlink(item.path)
            freed += info.st_size
    total = sum(size for _, size, _ in kept)
    for _, size, entry in sorted(kept):  # least recently used first
        if total <= limit:
            break
        with contextlib.suppress(OSError):
            os.unlink(entry)
            freed += size
            total -= size
    return freed


def _prune_cache_now_and_then() -> None:
    stamp = cache_dir() / _PRUNED_STAMP
    try:
        if time.time() - stamp.stat().st_mtime < PRUNE_EVERY_SECONDS:
            return
    except FileNotFoundError:
        pass
    except OSError:
        return
    with contextlib.suppress(OSError):
        stamp.touch()
        os.utime(stamp)
        prune_cache()


# -- a run --------------------------------------------------------------------------------------------


def _purged(files: list[FileScalars], keep: np.ndarray, position: np.ndarray, step: np.ndarray,
            tag: np.ndarray) -> np.ndarray:  # fmt: skip
    """Which rows TensorBoard's EventAccumulator keeps: a SessionLog.START at step s hides the rows
    written before it at step >= s (files of version 2 and later); in older files, an event whose step
    goes back hides the earlier rows of its tags at or after that step."""
    base = np.cumsum([0] + [f.records for f in files])
    if any(f.file_version >= 2 for f in files):
        restarts = sorted((base[i] + o, s) for i, f in enumerate(files) for o, s in f.restarts)
        if restarts:
            at = np.array([r[0] for r in restarts])
            suffix_min = np.minimum.accumulate(np.array([r[1] for r in restarts])[::-1])[::-1]
            later = np.searchsorted(at, position, side="right")
            has_later = later < len(at)
            keep &= ~(has_later & (step >= suffix_min[np.minimum(later, len(at) - 1)]))
        return keep
    most_recent = None
    for i, f in enumerate(files):
        for ordinal, event_step in f.summary_steps.tolist():
            if most_recent is not None and event_step < most_recent:
                here = position == base[i] + ordinal
                for t in np.unique(tag[here]):
                    keep &= ~((tag == t) & (step >= event_step) & (position < base[i] + ordinal))
            most_recent = event_step
    return keep


@dataclass
class RunScalars:
    """One run's scalar rows, tags as codes into ``tags``."""

    tags: list[str]
    tag: np.ndarray
    step: np.ndarray
    wall_time: np.ndarray
    value: np.ndarray


def run_scalars(paths: list[Path], tags: Selection, purge: bool, use_cache: bool,
                progress: Callable[[Path], None], inside: Path | None = None) -> RunScalars:  # fmt: skip
    """The scalars of one run, from its event files in name order (inside the logdir ``inside``, when
    given); a file that cannot be read is skipped with a warning."""
    files = []
    for path in paths:
        try:
            parsed = file_scalars(path, use_cache, inside)
        except OSError as err:
            warn_skipped(path, err.strerror or str(err))
            continue
        finally:
            progress(path)
        if parsed.skipped:
            record.warn_skipped(record.ReadReport(str(path), parsed.skipped, parsed.first_bad_offset))
        files.append(parsed)
    if not files:
        return RunScalars([], np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0), np.zeros(0))
    names: dict[str, int] = {}
    plugin: dict[str, str] = {}
    parts = []
    base = 0
    for f in files:
        remap = np.array([names.setdefault(t, len(names)) for t in f.tags], dtype=np.int32)
        for t, p in f.first_plugin.items():
            plugin.setdefault(t, p)
        codes = remap[f.tag] if len(f.tag) else f.tag.astype(np.int32)
        parts.append((codes, f.step, f.wall_time, f.value, f.kind, f.record + base))
        base += f.records
    tag_list = list(names)
    tag, step, wall_time, value, kind, position = (np.concatenate(cols) for cols in zip(*parts, strict=True))
    is_scalar_tag = np.array([plugin.get(t, "scalars") == "scalars" for t in tag_list] or [True])
    keep = (kind == _SIMPLE) | is_scalar_tag[tag]
    if purge:
        keep = _purged(files, keep, position, step, tag)
    if tags is not None:
        wanted = np.array([_selected(t, tags) for t in tag_list] or [False])
        keep &= wanted[tag]
    return RunScalars(tag_list, tag[keep], step[keep], wall_time[keep], value[keep])


class _Progress:
    """A progress line on a terminal for reads that take more than a second; nothing when piped."""

    def __init__(self, total_bytes: int, files: int) -> None:
        self.total, self.files, self.done, self.count = total_bytes, files, 0, 0
        self.started = time.monotonic()
        self.shown = False
        self.enabled = sys.stderr.isatty()

    def __call__(self, path: Path) -> None:
        with contextlib.suppress(OSError):
            self.done += path.stat().st_size
        self.count += 1
        if self.enabled and time.monotonic() - self.started > PROGRESS_AFTER_SECONDS:
            share = self.done / self.total if self.total else 1.0
            bar = "#" * int(share * 30)
            sys.stderr.write(f"\rtbscope: reading [{bar:<30}] {self.count}/{self.files} files")
            sys.stderr.flush()
            self.shown = True

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\n")


def read_scalars(
    path: str | os.PathLike[str],
    runs: Selection = None,
    tags: Selection = None,
    purge: bool = True,
    cache: bool = True,
) -> pd.DataFrame:
    """Every scalar under ``path`` as a DataFrame with columns run, tag, step, wall_time, value.

    ``run`` is the directory holding the event files, relative to ``path`` ("." for ``path``
    itself), as TensorBoard names runs. ``runs`` and ``tags`` select by a regular expression
    (searched) or a collection of exact names. Every encoding is read: ``simple_value``, and
    float, double and half tensors (``float_val``, ``double_val``, ``half_val`` or
    ``tensor_content``) of tags whose plugin is "scalars", even when the plugin metadata came only
    with a tag's first value in an earlier file. Nothing is sampled away. With ``purge`` (the
    default, as in TensorBoard), a restart hides the points written before it at later steps.
    Damaged records are skipped, with one warning per file; reading never fails on bad bytes. What
    cannot be read (a file without permission, a dangling symlink, one that leads outside ``path``, a
    FIFO named like an event file) is skipped with one warning naming it. ``path`` may be a URL of object
    storage (``s3://bucket/runs``): it is read through a local mirror (see ``tbscope.remote``).

    Example:
        >>> import tempfile, tbscope
        >>> logdir = tempfile.mkdtemp()
        >>> with tbscope.Writer(f"{logdir}/a") as w:
        ...     for step in range(3):
        ...         w.add_scalar("loss", 1.0 / (step + 1), step)
        >>> df = tbscope.read_scalars(logdir, cache=False)
        >>> df[["run", "tag", "step"]].to_dict("list")
        {'run': ['a', 'a', 'a'], 'tag': ['loss', 'loss', 'loss'], 'step': [0, 1, 2]}
        >>> df["value"].round(4).tolist()
        [1.0, 0.5, 0.3333]
    """
    if isinstance(path, str) and remote.is_url(path):
        path = remote.mirror(path)
    found = {run: paths for run, paths in find_event_files(path).items() if _selected(run, runs)}
    all_files = [p for paths in found.values() for p in paths]
    total = 0
    for p in all_files:
        with contextlib.suppress(OSError):
            total += p.stat().st_size
    progress = _Progress(total, len(all_files))
    try:
        inside = Path(path) if Path(path).is_dir() else None
        per_run = {
            run: run_scalars(paths, tags, purge, cache, progress, inside) for run, paths in sorted(found.items())
        }
    finally:
        progress.close()
    if cache:
        _prune_cache_now_and_then()
    tag_names: dict[str, int] = {}
    run_codes, tag_codes = [], []
    for i, part in enumerate(per_run.values()):
        remap = np.array([tag_names.setdefault(t, len(tag_names)) for t in part.tags] or [0], dtype=np.int32)
        tag_codes.append(remap[part.tag])
        run_codes.append(np.full(len(part.tag), i, dtype=np.int32))

    def joined(name: str, dtype: type) -> np.ndarray:
        column = np.concatenate([getattr(p, name) for p in per_run.values()] or [np.zeros(0, dtype)])
        for part in per_run.values():
            setattr(part, name, None)  # the runs' copy goes as soon as the joined one exists
        return column

    return pd.DataFrame(
        {  # copy=False: the arrays are new, and copying them would double the peak memory
            "run": pd.Categorical.from_codes(np.concatenate(run_codes or [np.zeros(0, np.int32)]), list(per_run)),
            "tag": pd.Categorical.from_codes(np.concatenate(tag_codes or [np.zeros(0, np.int32)]), list(tag_names)),
            "step": joined("step", np.int64),
            "wall_time": joined("wall_time", np.float64),
            "value": joined("value", np.float64),
        },
        copy=False,
    )


def iter_events(path: Path, plain_scalars: bool = True) -> Iterator[Event]:
    """Every event of one event file, through TensorBoard's protos; damaged records are skipped
    with one warning. Raises OSError when the file cannot be read. With ``plain_scalars=False`` the
    events that hold nothing but ``simple_value`` scalars (most of a training run's records) are
    passed over without being decoded: what reads images, PR curves or text never looks at them; when the
    scalars cache knows the file as it is, only the records it noted as holding more than scalars are read."""
    report = record.ReadReport(str(path))
    if plain_scalars:
        for offset, data in record.iter_records(path, report=report):
            event = _event(data, offset, report)
            if event is not None:
                yield event
    elif (others := _cached_others(path)) is not None:
        with open_inside(path, None) as file:
            for offset in others:
                found = record.read_at(file, offset)
                event = _event(found, offset, report) if found is not None else None
                if event is not None:
                    yield event
    else:
        with open_inside(path, None) as file:
            buf = file.read()
        starts, lengths, _ = record.scan(buf, 0, report)
        starts_array, lengths_array = np.asarray(starts), np.asarray(lengths)
        raw = np.frombuffer(buf, dtype=np.uint8)
        for chunk in range(0, len(starts), _CHUNK_RECORDS):
            part = slice(chunk, chunk + _CHUNK_RECORDS)
            plain = scalar.decode_simple_events(raw, starts_array[part], lengths_array[part]).decoded
            for i in (np.flatnonzero(~plain) + chunk).tolist():
                event = _event(buf[starts[i] : starts[i] + lengths[i]], starts[i] - record.HEADER_SIZE, report)
                if event is not None:
                    yield event
    if report.skipped:
        record.warn_skipped(report)


def _cached_others(path: Path) -> list[int] | None:
    """The offsets of the records of ``path`` that hold more than scalars, when the scalars cache has the
    file as it is now (its size and modification time); else None."""
    try:
        info = os.stat(path)
        with open_inside(_cache_path(path), None) as f:
            meta = json.loads(f.readline(_MAX_META_BYTES))
        fresh = meta.get("version") == CACHE_VERSION and meta.get("path") == str(path.resolve())
        if fresh and meta["size"] == info.st_size and meta["mtime_ns"] == info.st_mtime_ns:
            others = meta["others"]
            if isinstance(others, list) and all(type(n) is int and 0 <= n < info.st_size for n in others):
                return others
    except Exception:  # no entry, or a damaged one: the file is read whole
        return None
    return None


def _event(data: bytes, offset: int, report: record.ReadReport) -> Event | None:
    try:
        return Event.FromString(data)
    except Exception:  # a record that checksums but is no Event: written by something else
        report.skip(offset)
        return None


class _Undecodable:
    """Values of one file that could not be decoded (TensorBoard's own decoders refused them): counted,
    and told in one warning naming the file and the first of them."""

    def __init__(self, path: Path) -> None:
        self.path, self.count, self.first = path, 0, ""

    def add(self, tag: str, err: Exception) -> None:
        self.count += 1
        self.first = self.first or f"tag {tag!r}: {err}"

    def warn(self) -> None:
        if self.count:
            warn_skipped(self.path, f"{self.count} value(s) that could not be decoded (first: {self.first})")


KINDS = ("images", "histograms", "text", "hparams", "pr_curves")


def read_events(
    path: str | os.PathLike[str], kind: str, runs: Selection = None, tags: Selection = None
) -> pd.DataFrame:
    """Images, histograms, text, hparams or PR curves under ``path``, one row per value, through the same
    per-kind modules that write them.

    Columns: run, tag, step, wall_time, and for ``"images"`` width, height, encoded (the PNG/GIF
    bytes); for ``"histograms"`` min, max, num, sum, sum_squares, bucket_limit, bucket; for
    ``"text"`` text; for ``"pr_curves"`` precision and recall (arrays, a point per threshold); for
    ``"hparams"`` one row per run with hparams (a dict) and status.

    Example:
        >>> import tempfile, tbscope
        >>> logdir = tempfile.mkdtemp()
        >>> with tbscope.Writer(logdir) as w:
        ...     w.add_text("notes", "hello", 3)
        >>> tbscope.read_events(logdir, "text")[["run", "tag", "step", "text"]].values.tolist()
        [['.', 'notes', 3, 'hello']]
    """
    return read_kinds(path, (kind,), runs, tags)[kind]


_COLUMNS = {
    "images": ["run", "tag", "step", "wall_time", "width", "height", "encoded"],
    "histograms": ["run", "tag", "step", "wall_time", "min", "max", "num", "sum", "sum_squares",
                   "bucket_limit", "bucket"],
    "text": ["run", "tag", "step", "wall_time", "text"],
    "pr_curves": ["run", "tag", "step", "wall_time", "precision", "recall"],
    "hparams": ["run", "hparams", "status", "wall_time"],
}  # fmt: skip


def read_kinds(
    path: str | os.PathLike[str], kinds: Sequence[str], runs: Selection = None, tags: Selection = None
) -> dict[str, pd.DataFrame]:
    """``read_events`` of several kinds in one pass over the files: ``{kind: frame}``."""
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown:
        raise ValueError(f"read_events: kind must be one of {', '.join(KINDS)}, got {unknown[0]!r}")
    rows: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    for run, paths in sorted(find_event_files(path).items()):
        if not _selected(run, runs):
            continue
        plugin: dict[str, str] = {}
        session: dict[str, Any] = {}
        for file in paths:
            try:
                _file_rows(run, file, kinds, tags, plugin, session, rows)
            except OSError as err:
                warn_skipped(file, err.strerror or str(err))
        if "hparams" in rows and "hparams" in session:
            rows["hparams"].append({"run": run, "hparams": session["hparams"], "wall_time": session["wall_time"],
                                    "status": session.get("status", "running")})  # fmt: skip
    return {kind: pd.DataFrame(found, columns=_COLUMNS[kind]) for kind, found in rows.items()}


def _file_rows(run: str, file: Path, kinds: Sequence[str], tags: Selection, plugin: dict[str, str],
               session: dict[str, Any], rows: dict[str, list[dict[str, Any]]]) -> None:  # fmt: skip
    """Add the rows of one event file to ``rows`` (by kind); ``plugin`` (each tag's first plugin) and
    ``session`` (the run's hparams and status) carry over from the run's earlier files."""
    undecodable = _Undecodable(file)
    values = [kind for kind in kinds if kind != "hparams"]
    for event in iter_events(file, plain_scalars=False):
        if not event.HasField("summary"):
            continue
        for value in event.summary.value:
            if value.HasField("metadata") and value.tag not in plugin:
                plugin[value.tag] = value.metadata.plugin_data.plugin_name
            try:
                if "hparams" in rows:
                    said = hparams.session_of(value)
                    if said is not None:
                        session["hparams" if said[0] == "start" else "status"] = said[1]
                        session.setdefault("wall_time", event.wall_time)
                        continue
                if values and _selected(value.tag, tags):
                    base = {"run": run, "tag": value.tag, "step": event.step, "wall_time": event.wall_time}
                    for kind in values:
                        rows[kind].extend(_decoded(kind, value, plugin.get(value.tag), base))
            except Exception as err:  # TensorBoard's decoders refuse damaged values in many ways
                undecodable.add(value.tag, err)
    undecodable.warn()


def _decoded(kind: str, value: Any, plugin: str | None, base: dict[str, Any]) -> list[dict[str, Any]]:
    if kind == "images":
        return [{**base, "width": w, "height": h, "encoded": data} for w, h, data in image.images_of(value, plugin)]
    if kind == "histograms":
        histo = histogram.histogram_of(value, plugin)
        if histo is None:
            return []
        return [{**base, "min": histo.min, "max": histo.max, "num": histo.num, "sum": histo.sum,
                 "sum_squares": histo.sum_squares, "bucket_limit": list(histo.bucket_limit),
                 "bucket": list(histo.bucket)}]  # fmt: skip
    if kind == "pr_curves":
        curve = pr_curve.pr_curve_of(value, plugin)
        return [] if curve is None else [{**base, "precision": curve[0], "recall": curve[1]}]
    said = text.text_of(value, plugin)
    return [] if said is None else [{**base, "text": said}]


# -- where the bytes go ---------------------------------------------------------------------------------

_PLUGIN_KINDS = {"scalars", "images", "histograms", "audio", "text", "pr_curves", "hparams", "mesh", "custom_scalars"}
_VALUE_KINDS = {"simple_value": "scalars", "image": "images", "histo": "histograms", "audio": "audio"}


def _file_kind(name: str) -> str:
    if name == "run.json":
        return "run metadata"
    if name in ("tensors.tsv", "metadata.tsv", "sprite.png", "projector_config.pbtxt"):
        return "embeddings"
    if is_trace_file(name):
        return "profile"
    return "other files"


def disk_usage(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Bytes on disk under ``path`` by run, kind (scalars, images, histograms, ...) and tag.

    An event's bytes (its framing included) are shared among its values in proportion to their
    encoded size; files that are not event files count by what they are (embeddings, run metadata,
    profile traces). Columns: run, kind, tag, bytes.
    """
    root = Path(path)
    found = find_event_files(root)
    rows: dict[tuple[str, str, str], float] = {}

    def add(run: str, kind: str, tag: str, size: float) -> None:
        rows[run, kind, tag] = rows.get((run, kind, tag), 0.0) + size

    all_files = [p for paths in found.values() for p in paths]
    progress = _Progress(sum(_size(p) for p in all_files), len(all_files))
    try:
        for run, paths in found.items():
            for file in paths:
                try:
                    _event_file_usage(run, file, add)
                except OSError as err:
                    warn_skipped(file, err.strerror or str(err))
                    add(run, "other files", file.name, _size(file))
                progress(file)
    finally:
        progress.close()
    runs_by_depth = sorted(found, key=lambda r: -len(Path(r).parts))
    for folder, _, files in os.walk(root):
        rel = os.path.relpath(folder, root)
        owner = next((r for r in runs_by_depth if r == "." or rel == r or rel.startswith(r + os.sep)), None)
        for name in files:
            if not is_event_file(name):
                with contextlib.suppress(OSError):
                    size = os.lstat(os.path.join(folder, name)).st_size
                    if owner is None and size == 0:
                        continue  # an empty file of no run (tbscope's lock file) is no run to show
                    tag = os.path.relpath(os.path.join(folder, name), root / (owner or rel))
                    add(owner or rel, _file_kind(name), tag, size)
    frame = pd.DataFrame([(*key, round(size)) for key, size in rows.items()],
                         columns=["run", "kind", "tag", "bytes"])  # fmt: skip
    return frame.sort_values("bytes", ascending=False, ignore_index=True)


def _size(path: Path) -> int:
    try:
        return os.lstat(path).st_size
    except OSError:
        return 0


def _event_file_usage(run: str, file: Path, add: Callable[[str, str, str, float], None]) -> None:
    buf = record.read_file(file)
    report = record.ReadReport(str(file))
    starts, lengths, _ = record.scan(buf, 0, report)
    if report.skipped:
        record.warn_skipped(report)
    unread = len(buf) - sum(lengths) - len(starts) * (record.HEADER_SIZE + record.FOOTER_SIZE)
    if unread:
        add(run, "other", "(damaged or partly written records)", unread)
    bulk = scalar.decode_simple_events(np.frombuffer(buf, dtype=np.uint8), np.asarray(starts), np.asarray(lengths))
    if len(bulk.record):
        framed = np.asarray(lengths, dtype=np.float64)[bulk.record] + record.HEADER_SIZE + record.FOOTER_SIZE
        per_record = np.bincount(bulk.record, minlength=len(starts))[bulk.record]
        shares = np.bincount(bulk.tag, weights=framed / per_record, minlength=len(bulk.tags))
        for code, size in enumerate(shares):
            add(run, "scalars", bulk.tags[code], float(size))
    plugin: dict[str, str] = {}
    for i in np.flatnonzero(~bulk.decoded):
        framed_size = lengths[i] + record.HEADER_SIZE + record.FOOTER_SIZE
        try:
            event = Event.FromString(buf[starts[i] : starts[i] + lengths[i]])
        except Exception:
            add(run, "other", "(unreadable records)", framed_size)
            continue
        if event.HasField("summary") and event.summary.value:
            sizes = [v.ByteSize() or 1 for v in event.summary.value]
            for value, size in zip(event.summary.value, sizes, strict=True):
                if value.HasField("metadata") and value.tag not in plugin:
                    plugin[value.tag] = value.metadata.plugin_data.plugin_name
                which = value.WhichOneof("value") or ""
                kind = _VALUE_KINDS.get(which) or (
                    plugin.get(value.tag, "") if plugin.get(value.tag, "") in _PLUGIN_KINDS else "tensors"
                )
                add(run, kind, value.tag, framed_size * size / sum(sizes))
        elif event.HasField("graph_def") or event.HasField("meta_graph_def") or event.HasField("tagged_run_metadata"):
            add(run, "graph", "(graph)", framed_size)
        else:
            add(run, "other", "(" + (event.WhichOneof("what") or "event") + ")", framed_size)
