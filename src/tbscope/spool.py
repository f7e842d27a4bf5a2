"""Runs written to object storage (``s3://bucket/runs``, any fsspec URL) through a local spool.

Object stores have no append. A writer whose log_dir is a URL writes its files as it would locally, into a
spool folder under tbscope's cache directory, and an ``Upload`` thread sends them to the URL:

- each event file as numbered segment objects, ``<event file>.000000``, ``.000001``...: whole records only;
  a segment is replaced by a longer version of itself (a PUT is atomic) until it holds ``SEGMENT_BYTES``,
  then the next one starts. TensorBoard reads a run's event files in the order of their names, so it reads
  the segments in order, and a live TensorBoard sees a segment grow as it sees a local file grow;
- every other file (run.json, profiles, embeddings' assets) whole, when its size or time changed;
- a file deleted in the spool is deleted in the store.

A round runs every ``UPLOAD_SECONDS``, on ``flush()`` and at ``close()``; the training loop never waits on
the network. While the store does not answer, the files wait in the spool and rounds are retried with a
backoff; past ``MAX_BACKLOG`` bytes not yet sent the writer treats the spool as a full disk (heavy values
shed, and counted; scalars kept). ``close()`` waits ``CLOSE_SECONDS`` at most for the last round: what is
not sent then stays in the spool, with a warning, and ``tbscope sync`` (or the next writer to any URL)
sends it. A spool left by a process that died (SIGKILL) is sent the same way: a spool whose lock file no
process holds is abandoned. Everything sent is recorded in the spool's state file after each object, and
every PUT is the same for the same state, so a sync after a SIGKILL never duplicates a record.

Example (any fsspec URL works, ``file://`` too):
    >>> import pathlib, tempfile, tbscope
    >>> target = "file://" + tempfile.mkdtemp()
    >>> with tbscope.Writer(target + "/run") as w:
    ...     w.add_scalar("loss", 0.5, 0)
    >>> sorted(p.name.rsplit(".", 1)[1] for p in pathlib.Path(target[7:], "run").iterdir())
    ['000000']
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from tbscope import atomic, cache, record, remote

# How often a round sends what the spool holds: a live TensorBoard sees progress within this.
UPLOAD_SECONDS = 5.0
# The size past which an event file's next bytes start a new segment object.
SEGMENT_BYTES = 8 << 20
# Bytes in the spool not yet sent past which the writer treats the spool as a full disk.
MAX_BACKLOG = 1 << 30
# How long close() waits for the last round before it leaves the rest to ``tbscope sync``.
CLOSE_SECONDS = 60.0
# Seconds between tries while the store refuses (the last one repeats).
_BACKOFF = (1.0, 2.0, 4.0, 8.0)
_STATE = ".tbscope-spool.json"
_LOCK = ".tbscope-spool.lock"
_HOME = ".tbscope"  # a runs root's own folder (its lock): local plumbing, not sent


def spools() -> Path:
    """The folder that holds every spool (under tbscope's cache directory)."""
    return cache.directory("spool")


def reachable(url: str) -> tuple[Any, str]:
    """The filesystem and path of ``url``, once it is known to answer: FileNotFoundError (no such bucket),
    PermissionError (credentials refused) or ConnectionError, each naming the URL and never a secret."""
    fs, root = remote.filesystem(url)
    try:
        if getattr(fs, "root_marker", "") == "/":  # a filesystem with folders: make the target
            fs.makedirs(root, exist_ok=True)
        else:  # an object store: its bucket (container) must exist and let us in
            fs.info(root.split("/", 1)[0])
    except FileNotFoundError:
        raise FileNotFoundError(f"{url}: no such bucket ({root.split('/', 1)[0]!r})") from None
    except PermissionError as err:
        raise PermissionError(
            f"{url}: access denied ({remote.quiet(err)}); check the credentials (AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or ~/.aws) and S3_ENDPOINT for an S3-compatible server"
        ) from None
    except Exception as err:
        raise ConnectionError(f"{url}: the store does not answer ({remote.quiet(err)})") from None
    return fs, root


class Upload:
    """Send a spool folder to ``url``: in rounds on a thread of its own (``start``), or one round (``send``).

    ``folder`` is an existing spool to resume (``sync``); without it a new, empty one is made. ``committed``
    gives, for the event files a writer still appends to, the bytes known whole on disk (see
    ``Pipeline.committed``): what a write in progress may still cut back is never sent.
    """

    def __init__(self, url: str, folder: Path | None = None) -> None:
        self.url = url.rstrip("/")
        self._pid = os.getpid()  # a forked child (a DataLoader worker) leaves the sending to its parent
        self._fs, self._root = remote.filesystem(self.url)  # nothing asked of the store yet: see ``reachable``
        self._held = contextlib.ExitStack()
        if folder is None:
            folder = spools() / f"{os.getpid()}-{secrets.token_hex(4)}"
            folder.mkdir(parents=True)
        self.dir = folder
        self._held.enter_context(atomic.locked(folder / _LOCK, timeout=0))  # TimeoutError: a live owner
        self._state: dict[str, Any] = {"url": self.url, "events": {}, "files": {}}
        with contextlib.suppress(OSError, ValueError):
            state = json.loads((folder / _STATE).read_text())
            if isinstance(state, dict) and isinstance(state.get("events"), dict):
                self._state.update(events=state["events"], files=state.get("files") or {})
        self._save_state()
        self.committed: Callable[[], Mapping[str, int]] = dict
        self.backlog = 0  # bytes in the spool not yet sent, as of the last round
        self.error: str | None = None  # why the last round failed, while it fails
        self._wake = threading.Event()
        self._stopping = False
        self._ended = False  # close() is done
        self._abandoned = False  # close() stopped waiting: the thread ends after the round under way
        self._thread: threading.Thread | None = None
        self._adopter: threading.Thread | None = None

    # -- the owner's side -----------------------------------------------------------------------------

    def start(self) -> None:
        """Send rounds in the background until ``close``; beside them, once a process, the spools other
        processes left behind."""
        if os.getpid() != self._pid:
            return
        self._adopter = threading.Thread(target=adopt_left_spools, name="tbscope-adopt", daemon=True)
        self._adopter.start()
        self._thread = threading.Thread(target=self._run, name="tbscope-upload", daemon=True)
        self._thread.start()

    def kick(self) -> None:
        """Start a round now (``flush``), without waiting for it."""
        self._wake.set()

    def full(self) -> bool:
        """Whether the spool holds more than ``MAX_BACKLOG`` bytes not yet sent: as of the last round, or now
        in the event files a writer appends to (a round may hang for a while on a store that is down)."""
        events = self._state["events"]
        growing = 0
        for path, size in self.committed().items():
            with contextlib.suppress(ValueError):
                growing += size - events.get(Path(path).relative_to(self.dir).as_posix(), [0, 0, 0])[2]
        return max(self.backlog, growing) > MAX_BACKLOG

    def close(self, timeout: float = CLOSE_SECONDS) -> bool:
        """Send what is left (waiting ``timeout`` seconds at most) and stop. The spool is deleted when all
        of it went up; otherwise it is kept for ``tbscope sync``, with a warning. Whether all went up."""
        if self._ended or os.getpid() != self._pid:  # a forked child's copy: the parent sends and ends it
            return self.error is None
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            deadline = time.monotonic() + timeout
            self._thread.join(timeout)
            done = not self._thread.is_alive() and self.error is None
            self._abandoned = True
            if self._adopter is not None:  # what earlier runs left goes up before this process ends, too
                self._adopter.join(max(0.0, deadline - time.monotonic()))
        else:
            done = _attempt(self.send) is None
        if self._ended:  # a second close (a SIGTERM during the first) did the rest
            return done
        self._ended = True
        self._held.close()
        if done:
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            warnings.warn(
                f"tbscope: {self.url}: {_size(self.backlog)} not uploaded ({self.error or 'timed out'}); kept in "
                f"{self.dir}: run `tbscope sync` to send it when the store answers",
                RuntimeWarning,
                stacklevel=3,
            )
        return done

    def _run(self) -> None:
        failures = 0
        while True:
            self._wake.wait(UPLOAD_SECONDS if not failures else _BACKOFF[min(failures, len(_BACKOFF)) - 1])
            self._wake.clear()
            stopping = self._stopping
            error = _attempt(self.send)
            if error is None:
                if failures:
                    warnings.warn(f"tbscope: {self.url}: uploads go on again", RuntimeWarning, stacklevel=1)
                failures, self.error = 0, None
                if stopping:
                    return
                continue
            if not failures:
                warnings.warn(
                    f"tbscope: cannot upload to {self.url}: {error}. Training goes on: the values wait in the spool "
                    f"{self.dir} (up to {_size(MAX_BACKLOG)}) and go up when the store answers",
                    RuntimeWarning,
                    stacklevel=1,
                )
            failures, self.error = failures + 1, error
            if self._abandoned:
                return

    # -- a round ----------------------------------------------------------------------------------------

    def send(self) -> None:
        """One round: send what changed in the spool since the last one. Raises on the first refusal."""
        committed = self.committed()
        files = list(self._files())
        self.backlog = sum(self._unsent(path, relative) for path, relative in files)
        events, whole = self._state["events"], self._state["files"]
        for path, relative in files:
            if "tfevents" in path.name:  # TensorBoard's rule for an event file
                self._send_events(path, relative, committed.get(str(path)))
            else:
                self._send_whole(path, relative)
        present = {relative for _, relative in files}
        for relative in [r for r in events if r not in present]:
            self._delete([f"{relative}.{k:06d}" for k in range(events[relative][0] + 1)])
            del events[relative]
            self._save_state()
        for relative in [r for r in whole if r not in present]:
            self._delete([relative])
            del whole[relative]
            self._save_state()
        self.backlog = sum(self._unsent(path, relative) for path, relative in files)

    def _files(self) -> Iterator[tuple[Path, str]]:
        """The spool's regular files to send, with their path relative to it, in name order (never through a
        link; hidden files, such as the state and temporary files being renamed into place, left out)."""
        for folder, names, files in os.walk(self.dir):
            names.sort()
            if folder == str(self.dir) and _HOME in names:
                names.remove(_HOME)
            for name in sorted(files):
                path = Path(folder) / name
                if not name.startswith(".") and path.is_file() and not path.is_symlink():
                    yield path, path.relative_to(self.dir).as_posix()

    def _unsent(self, path: Path, relative: str) -> int:
        with contextlib.suppress(OSError):
            size = path.stat().st_size
            if "tfevents" in path.name:
                return max(0, size - self._state["events"].get(relative, [0, 0, 0])[2])
            return 0 if self._state["files"].get(relative) == _signature(path) else size
        return 0

    def _send_events(self, path: Path, relative: str, committed: int | None) -> None:
        """Send the whole records of an event file not sent yet: the current segment again, longer, up to
        ``SEGMENT_BYTES``, then new ones (a backlog after an outage goes up a segment at a time, never read
        into memory whole). Each choice follows from the state and the file alone, so a round resumed after
        a SIGKILL cuts the segments where the lost one did."""
        segment, start, sent = self._state["events"].get(relative, [0, 0, 0])
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < sent:  # rewritten, not appended to: sent again from the start
                self._delete([f"{relative}.{k:06d}" for k in range(segment + 1)])
                segment, start, sent = 0, 0, 0
            if committed is not None:
                end = min(committed, size)
            else:  # a file no writer here appends to (a dead process's, a forked child's): whole records only
                f.seek(sent)
                end = sent + record.scan(f.read())[2]
            while sent < end:
                if sent - start >= SEGMENT_BYTES:
                    segment, start = segment + 1, sent
                limit = start + SEGMENT_BYTES
                stop = end if end <= limit else _whole_records(f, sent, limit)
                if stop == sent:  # the next record does not fit in this segment
                    if sent > start:
                        segment, start = segment + 1, sent
                        continue
                    stop = min(end, _record_end(f, sent))  # one record larger than a segment: alone
                f.seek(start)
                self._fs.pipe_file(f"{self._root}/{relative}.{segment:06d}", f.read(stop - start))
                sent = stop
                self._state["events"][relative] = [segment, start, sent]
                self._save_state()

    def _send_whole(self, path: Path, relative: str) -> None:
        signature = _signature(path)
        if self._state["files"].get(relative) == signature:
            return
        self._fs.put_file(str(path), f"{self._root}/{relative}")
        self._state["files"][relative] = signature
        self._save_state()

    def _delete(self, relatives: list[str]) -> None:
        for relative in relatives:
            with contextlib.suppress(FileNotFoundError):
                self._fs.rm_file(f"{self._root}/{relative}")

    def _save_state(self) -> None:
        atomic.write_text(self.dir / _STATE, json.dumps(self._state))


def _whole_records(f: BinaryIO, offset: int, limit: int) -> int:
    """The end of the last whole record of ``f`` that starts at ``offset`` or later and ends by ``limit``."""
    f.seek(offset)
    return offset + record.scan(f.read(limit - offset))[2]


def _record_end(f: BinaryIO, offset: int) -> int:
    """The end of the record that starts at ``offset`` of ``f``, from its length header."""
    f.seek(offset)
    (length,) = record.LENGTH.unpack(f.read(record.LENGTH.size))
    return offset + record.HEADER_SIZE + int(length) + record.FOOTER_SIZE


def _signature(path: Path) -> list[int]:
    info = path.stat()
    return [info.st_size, info.st_mtime_ns]


def _attempt(work: Callable[[], None]) -> str | None:
    """Run ``work``; None when it succeeded, else why it failed in one line (no secret in it)."""
    try:
        work()
    except Exception as err:  # each storage library raises its own kinds: all mean "not sent"
        return remote.quiet(err)
    return None


def _size(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def left_spools() -> list[Path]:
    """Spools that no live process owns (its owner ended before all of it went up, or was killed)."""
    found = []
    with contextlib.suppress(OSError):
        for folder in sorted(spools().iterdir()):
            if (folder / _STATE).is_file():
                with contextlib.suppress(OSError), atomic.locked(folder / _LOCK, timeout=0):
                    found.append(folder)
    return found


def sync(progress: Callable[[str], None] | None = None) -> list[tuple[str, str | None]]:
    """Send every spool left behind and delete those sent whole: ``[(url, None or why it failed)]``.

    Example:
        >>> sync()  # nothing left behind
        []
    """
    results: list[tuple[str, str | None]] = []
    for folder in left_spools():
        try:
            url = str(json.loads((folder / _STATE).read_text())["url"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not a spool this version can read
        if progress is not None:
            progress(f"sending {url} (from {folder})")
        try:
            upload = Upload(url, folder)
        except (OSError, ValueError) as err:  # the store refuses, or another process took this spool
            results.append((url, str(err)))
            continue
        error = _attempt(upload.send)
        upload._held.close()
        if error is None:
            shutil.rmtree(folder, ignore_errors=True)
        results.append((url, error))
    return results


_adopting = threading.Lock()


def adopt_left_spools() -> None:
    """Send spools that earlier processes left behind, once per process, quietly: what fails is left to
    ``tbscope sync`` and told in one warning."""
    if not _adopting.acquire(blocking=False):
        return
    failed = [url for url, error in sync() if error is not None]
    if failed:
        warnings.warn(
            f"tbscope: {len(failed)} spool(s) left by earlier runs could not be sent yet (e.g. to {failed[0]}); "
            "`tbscope sync` sends them",
            RuntimeWarning,
            stacklevel=1,
        )
